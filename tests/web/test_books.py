"""Books with depth through HTTP: POST /execution/market-data/books replaces the
instrument's book; orders walk its levels, one fill per level; a bad book is a 400 that
changes nothing, and a book is read as market data like a quote (in order, in time)."""

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.web.test_fills import fills, order, quote, read

BOOKS = "/execution/market-data/books"


def post_book(client: TestClient, bids: list[list[float]], asks: list[list[float]], **extra: Any) -> Any:
    return client.post(BOOKS, json={"exchange": "binance", "symbol": "BTC/USDT", "bids": bids, "asks": asks, **extra})


def test_a_market_order_walks_the_book_one_fill_per_level(make_client: Any) -> None:
    client = make_client(slippage_bps="10")
    answered = post_book(client, [[99, 1]], [[100, 1], [101, 2], [102, 5]], ts_utc="2026-01-15T10:30:00Z")
    assert (answered.status_code, answered.json()) == (200, {"items": []})
    walked = order(client, "walks", qty=3.5)
    made = fills(client, walked)
    assert [(f["qty"], f["price"], f["provenance"]["level_price"], f["provenance"]["level_size"]) for f in made] == [
        (1.0, 100.1, 100.0, 1.0),
        (2.0, 101.101, 101.0, 2.0),
        (0.5, 102.102, 102.0, 5.0),
    ]
    assert {(f["provenance"]["source"], f["provenance"]["ts_utc"]) for f in made} == {
        ("arrival", "2026-01-15T10:30:00.000000Z")
    }
    assert read(client, walked)["avg_fill_price"] == (100.1 + 2 * 101.101 + 0.5 * 102.102) / 3.5


def test_liquidity_taken_is_gone_until_the_next_book_and_a_book_fills_what_waits(client: TestClient) -> None:
    post_book(client, [[99, 1]], [[100, 1], [101, 1]])
    order(client, "takes-all", qty=2.0)
    waiting = order(client, "finds-none", qty=1.0)
    assert read(client, waiting)["status"] == "NEW"
    # A new book: the waiting order walks it, and its fills name the book.
    filled = post_book(client, [[99, 1]], [[100, 0.25], [100.5, 2]]).json()["items"]
    assert [(f["order_id"], f["qty"], f["price"], f["provenance"]["source"]) for f in filled] == [
        (waiting, 0.25, 100.0, "book"),
        (waiting, 0.75, 100.5, "book"),
    ]


def test_a_quote_replaces_a_book_as_a_book_of_one_level_a_side(client: TestClient) -> None:
    post_book(client, [[99, 1]], [[100, 1], [101, 5]])
    quote(client, 99, 100, ask_size=0.5)
    walked = order(client, "one-level", qty=1.0)
    assert [(f["qty"], f["price"]) for f in fills(client, walked)] == [(0.5, 100.0)]
    assert read(client, walked)["status"] == "PARTIALLY_FILLED"


def test_a_bad_book_is_a_400_that_changes_nothing(client: TestClient) -> None:
    post_book(client, [[99, 1]], [[100, 1]])
    bad: dict[str, tuple[list[list[Any]], list[list[Any]]]] = {
        "bids not best first": ([[98, 1], [99, 1]], [[100, 1]]),
        "asks not best first": ([[99, 1]], [[101, 1], [100, 1]]),
        "a price twice": ([[99, 1]], [[100, 1], [100, 2]]),
        "crossed": ([[101, 1]], [[100, 1]]),
        "an empty side": ([], [[100, 1]]),
        "a zero size": ([[99, 0]], [[100, 1]]),
        "a level of three": ([[99, 1, 2]], [[100, 1]]),
        "a size as text": ([[99, "1"]], [[100, 1]]),
        "too many levels": ([[99 - i / 100, 1] for i in range(1001)], [[100, 1]]),
    }
    for why, (bids, asks) in bad.items():
        refused = post_book(client, bids, asks)
        assert (refused.status_code, refused.json()["code"]) == (400, "VALIDATION_ERROR"), why
        assert refused.json()["detail"], why
    not_allowed = client.post(
        BOOKS, json={"exchange": "nowhere", "symbol": "BTC/USDT", "bids": [[1, 1]], "asks": [[2, 1]]}
    )
    assert (not_allowed.status_code, not_allowed.json()["code"]) == (400, "EXCHANGE_NOT_ALLOWED")
    # The book before them all is still the instrument's.
    kept = order(client, "after-bad", qty=1.0)
    assert [(f["qty"], f["price"]) for f in fills(client, kept)] == [(1.0, 100.0)]


def test_a_book_of_a_thousand_levels_a_side_fits_and_a_larger_body_is_a_413(client: TestClient) -> None:
    # 17 significant digits per number: the widest a float is written.
    bids = [[99999.000000000001 - i * 0.12345678901234, 0.12345678901234567] for i in range(1000)]
    asks = [[100000.00000000001 + i * 0.12345678901234, 0.12345678901234567] for i in range(1000)]
    body = {"exchange": "binance", "symbol": "BTC/USDT", "bids": bids, "asks": asks}
    assert post_book(client, bids, asks).status_code == 200
    assert len(json.dumps(body)) > 64 * 1024  # more than any other body may be
    huge = client.post(BOOKS, content=b"{" + b" " * (256 * 1024) + b"}", headers={"content-type": "application/json"})
    assert (huge.status_code, huge.json()["code"]) == (413, "BODY_TOO_LARGE")


def test_a_book_older_than_the_latest_market_data_is_a_409(client: TestClient) -> None:
    quote(client, 99, 100, ts_utc="2026-01-15T10:30:00Z")
    late = post_book(client, [[50, 1]], [[51, 1]], ts_utc="2026-01-15T10:29:00Z")
    assert (late.status_code, late.json()["code"]) == (409, "OUT_OF_ORDER")
