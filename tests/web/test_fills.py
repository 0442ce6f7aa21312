"""Quotes, the fill model, fills, cancel and positions, through HTTP."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import URL, intent

QUOTES = "/execution/market-data/quotes"
ORDERS = "/execution/orders"


def quote(client: TestClient, bid: float, ask: float, **extra: Any) -> list[dict[str, Any]]:
    body = {"exchange": "binance", "symbol": "BTC/USDT", "bid": bid, "ask": ask, **extra}
    response = client.post(QUOTES, json=body)
    assert response.status_code == 200, response.text
    fills: list[dict[str, Any]] = response.json()["items"]
    return fills


def order(client: TestClient, key: str, **fields: Any) -> str:
    response = client.post(URL, json=intent(idempotency_key=key, **fields))
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order_id"]
    return order_id


def read(client: TestClient, order_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{ORDERS}/{order_id}").json()
    return body


def fills(client: TestClient, order_id: str) -> list[dict[str, Any]]:
    response = client.get(f"{ORDERS}/{order_id}/fills")
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# -- quotes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"exchange": "kraken", "symbol": "BTC/USDT", "bid": 1, "ask": 2},
        {"exchange": "binance", "symbol": "DOGE/USDT", "bid": 1, "ask": 2},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": 2, "ask": 1},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": 0, "ask": 1},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": -1, "ask": 1},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": "1", "ask": 2},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": 1, "ask": 2, "ask_size": 0},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": 1, "ask": 2, "bid_size": -3},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": 1, "ask": 2, "last": True},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": 1, "ask": 2, "ts_utc": "yesterday"},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": 1, "ask": 2, "depth": []},
        {"exchange": "binance", "symbol": "BTC/USDT", "bid": 1},
    ],
)
def test_an_invalid_quote_is_400(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post(QUOTES, json=body)
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_quote_that_is_not_json_is_400(client: TestClient, content_type: str) -> None:
    order_id = order(client, "waiting")
    body = b'{"exchange": "binance", "symbol": "BTC/USDT", "bid": 1, "ask": 2}'
    response = client.post(QUOTES, content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert "Content-Type" in response.json()["detail"]
    assert read(client, order_id)["status"] == "NEW"


def test_quantities_stay_exact_across_fifteen_orders_of_magnitude(client: TestClient) -> None:
    order_id = order(client, "huge", qty=1e15)
    quote(client, 99, 100, ask_size=1e-15)
    quote(client, 99, 100)
    assert [f["qty"] for f in fills(client, order_id)] == [1e-15, 1e15 - 1e-15]
    assert read(client, order_id)["status"] == "FILLED"


def test_non_finite_quote_prices_are_400(client: TestClient) -> None:
    body = b'{"exchange": "binance", "symbol": "BTC/USDT", "bid": NaN, "ask": Infinity}'
    assert client.post(QUOTES, content=body).status_code == 400


def test_a_quote_with_every_field_is_taken(client: TestClient) -> None:
    fills_made = quote(client, 100, 101, bid_size=2, ask_size=3, last=100.5, ts_utc="2024-01-15T10:30:00Z")
    assert fills_made == []


# -- MARKET -------------------------------------------------------------------------------


def test_the_201_shows_the_order_as_accepted_even_when_it_fills_at_once(client: TestClient) -> None:
    quote(client, 100, 101)
    response = client.post(URL, json=intent(idempotency_key="m"))
    assert (response.json()["status"], response.json()["filled_qty"]) == ("NEW", 0.0)
    later = read(client, response.json()["order_id"])
    assert (later["status"], later["filled_qty"], later["avg_fill_price"]) == ("FILLED", 0.01, 101.0)


def test_market_buys_at_the_ask_and_sells_at_the_bid(client: TestClient) -> None:
    quote(client, 100, 101)
    buy, sell = order(client, "b", side="BUY", qty=1), order(client, "s", side="SELL", qty=2)
    assert [(f["qty"], f["price"], f["liquidity"]) for f in fills(client, buy)] == [(1.0, 101.0, "TAKER")]
    assert [(f["qty"], f["price"], f["liquidity"]) for f in fills(client, sell)] == [(2.0, 100.0, "TAKER")]


def test_slippage_moves_market_fills_against_the_taker(make_client: Callable[..., TestClient]) -> None:
    client = make_client(slippage_bps="10")
    quote(client, 100, 200)
    buy, sell = order(client, "b", side="BUY"), order(client, "s", side="SELL")
    assert fills(client, buy)[0]["price"] == 200.2  # 200 + 10 bp
    assert fills(client, sell)[0]["price"] == 99.9  # 100 - 10 bp


def test_a_market_order_waits_for_the_first_quote(client: TestClient) -> None:
    order_id = order(client, "early", qty=0.5)
    assert read(client, order_id)["status"] == "NEW"
    produced = quote(client, 99, 100)
    assert [(f["order_id"], f["qty"], f["price"]) for f in produced] == [(order_id, 0.5, 100.0)]
    assert read(client, order_id)["status"] == "FILLED"
    assert quote(client, 98, 99) == []  # filled orders do not fill again


def test_quotes_reach_only_their_own_instrument(client: TestClient) -> None:
    order_id = order(client, "eth", symbol="ETH/USDT")
    assert quote(client, 99, 100) == []  # a BTC/USDT quote
    assert read(client, order_id)["status"] == "NEW"


# -- LIMIT --------------------------------------------------------------------------------


def test_a_marketable_limit_takes_the_quote(client: TestClient) -> None:
    quote(client, 99, 100)
    order_id = order(client, "l", type="LIMIT", side="BUY", limit_price=105, qty=1)
    assert [(f["price"], f["liquidity"]) for f in fills(client, order_id)] == [(100.0, "TAKER")]


def test_a_limit_rests_and_fills_as_maker_at_its_price(client: TestClient) -> None:
    quote(client, 99, 100)
    buy = order(client, "buy", type="LIMIT", side="BUY", limit_price=95, qty=1)
    sell = order(client, "sell", type="LIMIT", side="SELL", limit_price=110, qty=1)
    assert quote(client, 96, 97) == []  # crosses neither
    assert read(client, buy)["status"] == read(client, sell)["status"] == "NEW"
    produced = quote(client, 93, 94.5)  # ask below the buy limit
    assert [(f["order_id"], f["price"], f["liquidity"]) for f in produced] == [(buy, 95.0, "MAKER")]
    produced = quote(client, 111, 112)  # bid above the sell limit
    assert [(f["order_id"], f["price"], f["liquidity"]) for f in produced] == [(sell, 110.0, "MAKER")]


def test_a_limit_placed_before_any_quote_takes_the_first_quote_that_reaches_it(client: TestClient) -> None:
    far = order(client, "far", type="LIMIT", side="BUY", limit_price=1_000_000, qty=1)
    produced = quote(client, 99, 100)
    assert [(f["order_id"], f["price"], f["liquidity"]) for f in produced] == [(far, 100.0, "TAKER")]


def test_the_rest_of_a_marketable_limit_keeps_taking_at_the_touch(client: TestClient) -> None:
    quote(client, 99, 100, ask_size=1)
    order_id = order(client, "l", type="LIMIT", side="BUY", limit_price=105, qty=2)
    produced = quote(client, 99, 100, ask_size=5)
    assert [(f["qty"], f["price"], f["liquidity"]) for f in produced] == [(1.0, 100.0, "TAKER")]
    assert [f["price"] for f in fills(client, order_id)] == [100.0, 100.0]


def test_a_limit_a_quote_passed_by_becomes_passive(client: TestClient) -> None:
    buy = order(client, "b", type="LIMIT", side="BUY", limit_price=95, qty=1)  # no quote yet
    assert quote(client, 99, 100) == []  # passes it by
    produced = quote(client, 90, 92)
    assert [(f["order_id"], f["price"], f["liquidity"]) for f in produced] == [(buy, 95.0, "MAKER")]


def test_a_limit_exactly_at_the_touch_crosses(client: TestClient) -> None:
    buy = order(client, "buy", type="LIMIT", side="BUY", limit_price=100, qty=1)
    assert [f["order_id"] for f in quote(client, 99, 100)] == [buy]


# -- sizes --------------------------------------------------------------------------------


def test_sizes_are_shared_oldest_first_leaving_partial_fills(client: TestClient) -> None:
    first = order(client, "1", type="LIMIT", limit_price=100, qty=2)
    second = order(client, "2", type="LIMIT", limit_price=101, qty=2)  # better price, but later
    third = order(client, "3", type="LIMIT", limit_price=100, qty=2)
    produced = quote(client, 98, 99, ask_size=3)
    assert [(f["order_id"], f["qty"]) for f in produced] == [(first, 2.0), (second, 1.0)]
    statuses = [read(client, o)["status"] for o in (first, second, third)]
    assert statuses == ["FILLED", "PARTIALLY_FILLED", "NEW"]
    assert read(client, second)["filled_qty"] == 1.0
    produced = quote(client, 98, 99, ask_size=10)
    assert [(f["order_id"], f["qty"]) for f in produced] == [(second, 1.0), (third, 2.0)]


def test_an_arriving_order_gets_only_the_size_left(client: TestClient) -> None:
    order(client, "resting", type="LIMIT", limit_price=100, qty=2)
    quote(client, 98, 99, ask_size=3)  # the resting order takes 2 of the 3
    late = order(client, "late", qty=5)
    assert [f["qty"] for f in fills(client, late)] == [1.0]
    assert read(client, late)["status"] == "PARTIALLY_FILLED"


def test_without_sizes_every_crossing_order_fills_completely(client: TestClient) -> None:
    ids = [order(client, f"k{n}", qty=1000) for n in range(3)]
    assert [f["order_id"] for f in quote(client, 1, 2)] == ids
    assert {read(client, o)["status"] for o in ids} == {"FILLED"}


def test_quantities_never_drift(client: TestClient) -> None:
    order_id = order(client, "drift", qty=0.3)
    quote(client, 99, 100, ask_size=0.1)
    quote(client, 99, 100, ask_size=0.2)
    body = read(client, order_id)
    assert (body["status"], body["filled_qty"]) == ("FILLED", 0.3)
    assert [f["qty"] for f in fills(client, order_id)] == [0.1, 0.2]


# -- fees ---------------------------------------------------------------------------------


def test_taker_and_maker_fees(make_client: Callable[..., TestClient]) -> None:
    client = make_client(taker_fee_bps="7.5", maker_fee_bps="2")
    quote(client, 99, 100)
    taker = order(client, "t", qty=2)  # 2 * 100 * 7.5 bp = 0.15
    maker = order(client, "m", type="LIMIT", limit_price=90, qty=3)
    quote(client, 80, 85)  # 3 * 90 * 2 bp = 0.054
    assert fills(client, taker)[0]["fee"] == 0.15
    assert fills(client, maker)[0]["fee"] == 0.054
    assert (read(client, taker)["fees"], read(client, maker)["fees"]) == (0.15, 0.054)


# -- cancel -------------------------------------------------------------------------------


def test_cancel_an_open_order(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    order_id = order(client, "c")
    response = client.post(f"{ORDERS}/{order_id}/cancel")
    assert response.status_code == 200
    assert (response.json()["order_id"], response.json()["status"]) == (order_id, "CANCELED")
    assert read(client, order_id)["status"] == "CANCELED"
    assert quote(client, 99, 100) == []  # a canceled order never fills
    [line] = [r for r in caplog.records if r.getMessage() == "Order canceled"]
    assert (line.previous_status, line.status) == ("NEW", "CANCELED")  # type: ignore[attr-defined]


def test_cancel_after_a_partial_fill_keeps_the_filled_part(client: TestClient) -> None:
    order_id = order(client, "p", qty=2)
    quote(client, 99, 100, ask_size=0.5)
    canceled = client.post(f"{ORDERS}/{order_id}/cancel").json()
    assert (canceled["status"], canceled["filled_qty"]) == ("CANCELED", 0.5)
    assert len(fills(client, order_id)) == 1


def test_cancel_of_a_finished_order_is_409(client: TestClient) -> None:
    quote(client, 99, 100)
    filled = order(client, "f")
    response = client.post(f"{ORDERS}/{filled}/cancel")
    assert response.status_code == 409
    assert "FILLED" in response.json()["detail"]
    open_one = order(client, "o", type="LIMIT", limit_price=1)
    assert client.post(f"{ORDERS}/{open_one}/cancel").status_code == 200
    assert client.post(f"{ORDERS}/{open_one}/cancel").status_code == 409


def test_cancel_of_an_unknown_order_is_404(client: TestClient) -> None:
    response = client.post(f"{ORDERS}/paper-a1b2c3d4-e5f6-4890-abcd-ef1234567890/cancel")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_fills_of_an_unknown_order_is_404(client: TestClient) -> None:
    assert client.get(f"{ORDERS}/nope/fills").status_code == 404


def test_an_order_s_fills_come_in_pages(client: TestClient) -> None:
    """limit and after page an order's fills, oldest first: next_cursor is the seq to
    pass as `after`, and null on the last page."""
    order_id = order(client, "many", qty=5)
    for _ in range(5):
        quote(client, 99, 100, ask_size=1)
    pages, params = [], {"limit": 2}
    while True:
        response = client.get(f"{ORDERS}/{order_id}/fills", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page["items"])
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["items"][-1]["seq"]
        params = {"limit": 2, "after": page["next_cursor"]}
    assert [len(items) for items in pages] == [2, 2, 1]
    every = [fill for items in pages for fill in items]
    assert every == fills(client, order_id)  # the default page holds them all
    assert [fill["seq"] for fill in every] == sorted(fill["seq"] for fill in every)
    whole = client.get(f"{ORDERS}/{order_id}/fills", params={"limit": 5}).json()
    assert (len(whole["items"]), whole["next_cursor"]) == (5, None)
    after_all = client.get(f"{ORDERS}/{order_id}/fills", params={"after": every[-1]["seq"]}).json()
    assert after_all == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "1001"}, {"after": "-1"}, {"after": "x"}, {"cursor": "1"}, {"afer": "1"}],
)
def test_a_bad_fills_query_is_a_400(client: TestClient, params: dict[str, str]) -> None:
    order_id = order(client, "k")
    response = client.get(f"{ORDERS}/{order_id}/fills", params=params)
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)


# -- positions ----------------------------------------------------------------------------


def test_positions_average_cost_through_a_flip(make_client: Callable[..., TestClient]) -> None:
    client = make_client(taker_fee_bps="10")
    quote(client, 99, 100)
    order(client, "b1", side="BUY", qty=1)  # long 1 @ 100
    quote(client, 109, 110)
    order(client, "b2", side="BUY", qty=1)  # long 2 @ 105
    quote(client, 120, 121)
    order(client, "s1", side="SELL", qty=3)  # sells 2 (realizes 2 * 15 = 30), then short 1 @ 120
    quote(client, 118, 122)
    [position] = client.get("/execution/positions").json()["items"]
    assert position == {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "qty": -1.0,
        "avg_entry_price": 120.0,
        "realized_pnl": 30.0,
        "fees": 0.57,  # 10 bp of 100, of 110 and of 3 * 120
        "mark_price": 120.0,
        "unrealized_pnl": 0.0,
    }


def test_positions_show_no_mark_without_a_quote_and_close_to_zero(client: TestClient) -> None:
    assert client.get("/execution/positions").json() == {"items": []}
    quote(client, 99, 100)
    order(client, "b", side="BUY", qty=1)
    order(client, "s", side="SELL", qty=1)
    [position] = client.get("/execution/positions").json()["items"]
    assert (position["qty"], position["avg_entry_price"], position["realized_pnl"]) == (0.0, None, -1.0)


def test_closing_a_short_realizes_its_profit_and_loss(client: TestClient) -> None:
    quote(client, 100, 101)
    order(client, "s1", side="SELL", qty=2)  # short 2 @ 100
    quote(client, 89, 90)
    order(client, "b1", side="BUY", qty=1)  # covers 1 @ 90: +10
    [position] = client.get("/execution/positions").json()["items"]
    assert (position["qty"], position["avg_entry_price"], position["realized_pnl"]) == (-1.0, 100.0, 10.0)
    assert (position["mark_price"], position["unrealized_pnl"]) == (89.5, 10.5)
    quote(client, 104, 105)
    order(client, "b2", side="BUY", qty=1)  # covers 1 @ 105: -5
    [position] = client.get("/execution/positions").json()["items"]
    assert (position["qty"], position["avg_entry_price"], position["realized_pnl"]) == (0.0, None, 5.0)


def test_a_partial_close_keeps_the_average_entry(client: TestClient) -> None:
    quote(client, 99, 100)
    order(client, "b1", qty=3)
    quote(client, 101, 102)
    order(client, "s1", side="SELL", qty=1)
    [position] = client.get("/execution/positions").json()["items"]
    assert (position["qty"], position["avg_entry_price"], position["realized_pnl"]) == (2.0, 100.0, 1.0)


def test_profit_does_not_drift_when_averages_repeat(client: TestClient) -> None:
    for bid, side, qty in ((100, "BUY", 0.1), (101, "BUY", 0.2), (100, "SELL", 0.1), (101, "SELL", 0.2)):
        quote(client, bid, bid)
        order(client, f"{side}-{bid}-{qty}", side=side, qty=qty)
    [position] = client.get("/execution/positions").json()["items"]
    assert (position["qty"], position["realized_pnl"]) == (0.0, 0.0)
    assert '"realized_pnl":0.0' in client.get("/execution/positions").text


def test_a_short_marked_at_its_entry_shows_zero_not_minus_zero(client: TestClient) -> None:
    quote(client, 100, 100)
    order(client, "s", side="SELL", qty=1)
    assert '"unrealized_pnl":0.0' in client.get("/execution/positions").text


# -- logging ------------------------------------------------------------------------------


def test_each_fill_is_logged_with_its_transition(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    order_id = order(client, "log", qty=2)
    quote(client, 99, 100, ask_size=1)
    quote(client, 99, 100, ask_size=1)
    lines = [r for r in caplog.records if r.getMessage() == "Order filled"]
    assert [(r.previous_status, r.status, r.qty) for r in lines] == [  # type: ignore[attr-defined]
        ("NEW", "PARTIALLY_FILLED", 1.0),
        ("PARTIALLY_FILLED", "FILLED", 1.0),
    ]
    assert all(r.order_id == order_id and r.levelname == "INFO" for r in lines)  # type: ignore[attr-defined]
