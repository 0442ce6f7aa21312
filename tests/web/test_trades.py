"""Trades through HTTP: POST /execution/market-data/trades fills resting LIMIT orders by
their queue position; a bad print is a 400 that changes nothing; the fills it makes
show where they came from."""

from typing import Any

from fastapi.testclient import TestClient

from tests.web.test_books import post_book
from tests.web.test_fills import fills, order, read

TRADES = "/execution/market-data/trades"


def post_trade(client: TestClient, price: float, qty: float, aggressor_side: str, **extra: Any) -> Any:
    body = {"exchange": "binance", "symbol": "BTC/USDT", "price": price, "qty": qty, **extra}
    return client.post(TRADES, json={**body, "aggressor_side": aggressor_side})


def test_a_resting_limit_fills_once_prints_have_consumed_the_queue_ahead(client: TestClient) -> None:
    post_book(client, [[100, 1.5], [99.5, 3]], [[100.5, 2]])
    resting = order(client, "queued", side="BUY", type="LIMIT", limit_price=100.0, qty=1.0)
    first = post_trade(client, 100, 1, "SELL", ts_utc="2099-01-01T00:00:00Z")
    assert (first.status_code, first.json()["code"]) == (400, "FUTURE_MARKET_DATA")
    assert post_trade(client, 100, 1, "SELL").json() == {"items": []}  # 0.5 of 1.5 left ahead
    filled = post_trade(client, 100, 1, "SELL").json()["items"]
    assert [(f["order_id"], f["qty"], f["price"], f["liquidity"]) for f in filled] == [(resting, 0.5, 100.0, "MAKER")]
    provenance = filled[0]["provenance"]
    assert {k: provenance[k] for k in ("source", "level_price", "level_size", "queue_ahead")} == {
        "source": "trade",
        "level_price": 100.0,
        "level_size": 1.0,
        "queue_ahead": 0.5,
    }
    assert fills(client, resting)[0]["provenance"] == provenance
    assert read(client, resting)["status"] == "PARTIALLY_FILLED"


def test_a_bad_print_is_a_400_and_changes_nothing(client: TestClient) -> None:
    post_book(client, [[100, 1]], [[100.5, 2]])
    resting = order(client, "queued", side="BUY", type="LIMIT", limit_price=100.0, qty=1.0)
    for why, body in {
        "no aggressor": {"exchange": "binance", "symbol": "BTC/USDT", "price": 100, "qty": 1},
        "a bad aggressor": {"exchange": "binance", "symbol": "BTC/USDT", "price": 100, "qty": 1, "aggressor_side": "X"},
        "a zero qty": {"exchange": "binance", "symbol": "BTC/USDT", "price": 100, "qty": 0, "aggressor_side": "SELL"},
        "a price as text": {
            "exchange": "binance", "symbol": "BTC/USDT", "price": "100", "qty": 1, "aggressor_side": "SELL",
        },
        "an unknown field": {
            "exchange": "binance", "symbol": "BTC/USDT", "price": 100, "qty": 1, "aggressor_side": "SELL", "id": 7,
        },
    }.items():  # fmt: skip
        refused = client.post(TRADES, json=body)
        assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR"), why
    not_allowed = post_trade(client, 100, 5, "SELL", symbol="DOGE/USDT")
    assert (not_allowed.status_code, not_allowed.json()["code"]) == (400, "SYMBOL_NOT_ALLOWED")
    # The queue ahead is still the 1 shown: a print of 1.5 fills 0.5.
    assert [f["qty"] for f in post_trade(client, 100, 1.5, "SELL").json()["items"]] == [0.5]
    assert read(client, resting)["filled_qty"] == 0.5
