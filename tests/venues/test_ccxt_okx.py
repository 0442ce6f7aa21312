"""Market data feeds end to end on OKX: the real service (a uvicorn process) follows OKX
through the real ccxt, pointed at a fake OKX on 127.0.0.1 (harness/fake_okx.py) by
MARKET_DATA_URL_OKX. Books and trades the fake pushes fill orders as posted ones would;
a symbol the fake does not list is named; a lost book update is recovered by
subscribing again; a dropped connection is made again and orders fill again.

OKX differs from Binance where ccxt meets it: every channel of every instrument runs on
one websocket, a book's snapshot comes in answer to the subscription (no REST snapshot),
updates are chained by seqId/prevSeqId, and the keepalive is a "ping" text answered
"pong". tests/venues/test_ccxt_feeds.py does the same on Binance."""

import asyncio
import importlib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from app.venues.ccxt_exchange import OPTIONS
from app.venues.urls import rebase
from harness.fake_okx import DEPTH, TRADE, FakeOkx, checksum, moving, running
from harness.fake_venue import until
from tests.uvicorn_server import Server
from tests.venues import fed_service
from tests.venues.fed_service import capabilities, fills, order_status

UNLISTED = "SOL/USDT"  # allowlisted, but the fake exchange does not list it


def feed_env(fake: FakeOkx, symbols: str, **extra: str) -> dict[str, str]:
    return fed_service.feed_env("okx", fake, symbols, **extra)


def fed_server(
    tmp_path: Path, fake: FakeOkx, symbols: str = f"BTC/USDT,ETH/USDT,{UNLISTED}", **env: str
) -> AbstractContextManager[Server]:
    return fed_service.fed_server(tmp_path, "okx", fake, symbols, (DEPTH, TRADE), **env)


def sample(server: Server, name: str, symbol: str = "BTC/USDT", **labels: str) -> float | None:
    return fed_service.sample(server, name, "okx", symbol, **labels)


def post_limit_buy(server: Server, key: str, price: float, qty: float, symbol: str = "BTC/USDT") -> dict[str, Any]:
    return fed_service.post_limit_buy(server, key, price, qty, symbol, exchange="okx")


def books_taken(server: Server, symbol: str) -> float:
    return sample(server, "execution_market_data_messages_total", symbol, kind="book") or 0.0


def test_the_checksum_is_okxs() -> None:
    """OKX's documented examples: an even book, and one with more asks than bids."""
    assert checksum([(3366.1, 7.0), (3366.0, 6.0)], [(3366.8, 9.0), (3368.0, 8.0)]) == -1881014294
    assert checksum([(3366.1, 7.0)], [(3366.8, 9.0), (3368.0, 8.0), (3372.0, 8.0)]) == 831078360


def ccxt_checksum(exchange: Any, book: Any) -> int:
    """The checksum of the book ccxt holds, computed as ccxt's okx verified it until
    OKX deprecated the field (ccxt 4.5.90 checks seqId/prevSeqId only)."""
    parts: list[str] = []
    for n in range(25):
        for side in (book["bids"], book["asks"]):
            if n < len(side):
                parts += [exchange.number_to_string(side[n][0]), exchange.number_to_string(side[n][1])]
    return int(exchange.crc32(":".join(parts), True))


def test_the_fake_speaks_what_ccxt_okx_reads() -> None:
    """The fake itself, driven by ccxt.pro's okx as the service builds it: the markets,
    a book (the snapshot its subscription brings, then an update), a trade, the
    keepalive, a dropped connection."""

    async def drive(fake: FakeOkx) -> None:
        # Imported here, as the service does (app.venues.ccxt_exchange): ccxt is untyped, and heavy.
        ccxt = importlib.import_module("ccxt.pro")
        exchange = ccxt.okx({"enableRateLimit": True, "options": OPTIONS.get("okx", {})})
        exchange.urls["api"] = rebase(exchange.urls["api"], fake.base_url)
        exchange.streaming["keepAlive"] = 200  # ms: a "ping" within the test (18 s by default)
        try:
            markets = await exchange.load_markets()
            assert sorted(markets) == ["BTC/USDT", "ETH/USDT"]
            assert markets["BTC/USDT"]["spot"]
            assert markets["BTC/USDT"]["active"]
            assert markets["BTC/USDT"]["id"] == "BTC-USDT"
            book = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 10)
            assert (book["bids"], book["asks"]) == ([[98.0, 1.0], [97.0, 2.0]], [[99.0, 1.0], [100.0, 1.0]])
            assert book["nonce"] is not None
            assert ccxt_checksum(exchange, book) == fake.last_checksum("BTC/USDT")

            pushed = asyncio.ensure_future(exchange.watch_order_book("BTC/USDT"))
            assert await asyncio.to_thread(fake.push_depth, "BTC/USDT", [(98.5, 3.0)], [(99.0, 0.0)]) == 1
            book = await asyncio.wait_for(pushed, 10)
            assert (book["bids"], book["asks"]) == ([[98.5, 3.0], [98.0, 1.0], [97.0, 2.0]], [[100.0, 1.0]])
            assert book["timestamp"] is not None
            assert ccxt_checksum(exchange, book) == fake.last_checksum("BTC/USDT")

            traded = asyncio.ensure_future(exchange.watch_trades("BTC/USDT"))
            await asyncio.to_thread(fake.wait_for_subscribers, "BTC/USDT", TRADE)
            await asyncio.to_thread(fake.push_trade, "BTC/USDT", 99.5, 0.25, side="sell")
            [trade] = await asyncio.wait_for(traded, 10)
            assert (trade["symbol"], trade["price"], trade["amount"], trade["side"]) == ("BTC/USDT", 99.5, 0.25, "sell")

            # The keepalive: ccxt's "ping" answered, the connection kept past two missed pongs' time.
            await asyncio.sleep(0.7)
            assert fake.pings >= 2
            assert fake.open_connections == 1

            cut = asyncio.ensure_future(exchange.watch_order_book("BTC/USDT"))
            assert await asyncio.to_thread(fake.drop_connections) == 1  # books and trades share one
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(cut, 10)
        finally:
            await exchange.close()

    with running() as fake:
        fake.set_book("BTC/USDT", bids=[(98.0, 1.0), (97.0, 2.0)], asks=[(99.0, 1.0), (100.0, 1.0)])
        asyncio.run(drive(fake))
        assert fake.connections == 1
        assert "/api/v5/public/instruments?instType=SPOT" in fake.requests
        assert {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]} in fake.commands


def test_pushed_books_and_trades_fill_orders_as_posted_ones_do(tmp_path: Path) -> None:
    with running() as fake:
        fake.set_book("BTC/USDT", bids=[(98.0, 1.0)], asks=[(105.0, 1.0)])
        fake.set_book("ETH/USDT", bids=[(10.0, 2.0)], asks=[(11.0, 2.0)])
        with fed_server(tmp_path, fake) as server:
            until(lambda: books_taken(server, "BTC/USDT") and books_taken(server, "ETH/USDT"), "the snapshots taken")
            assert fake.connections == 1  # every channel of every symbol on one connection

            # A book: the order rests below the ask, then an update brings asks it
            # reaches; resting, it fills at its own price, once per level it reaches.
            order = post_limit_buy(server, "b-1", price=100.0, qty=1.5)
            assert order_status(server, order["order_id"]) == "NEW"
            fake.push_depth("BTC/USDT", asks=[(99.0, 1.0), (100.0, 1.0), (105.0, 0.0)])
            until(lambda: order_status(server, order["order_id"]) == "FILLED", "the pushed book fills the order")
            assert fills(server, order["order_id"]) == [(1.0, 100.0, "book", 99.0), (0.5, 100.0, "book", 100.0)]

            # A trade: 2 are ahead of the resting order at 10; a sell of 2.5 there takes
            # the queue, then half of the order.
            resting = post_limit_buy(server, "t-1", price=10.0, qty=1.0, symbol="ETH/USDT")
            assert fake.push_trade("ETH/USDT", 10.0, 2.5, side="sell") == 1
            until(lambda: order_status(server, resting["order_id"]) == "PARTIALLY_FILLED", "the trade reaches it")
            _, body = server.request("GET", f"/execution/orders/{resting['order_id']}/fills")
            [fill] = body["items"]
            assert (fill["qty"], fill["price"], fill["provenance"]["source"], fill["provenance"]["queue_ahead"]) == (
                0.5,
                10.0,
                "trade",
                2.0,
            )
            assert sample(server, "execution_market_data_messages_total", "ETH/USDT", kind="trade") == 1
            assert sample(server, "execution_market_data_messages_total", "BTC/USDT", kind="refused") == 0


def test_a_symbol_the_exchange_does_not_list_is_named_once(tmp_path: Path) -> None:
    with running() as fake, fed_server(tmp_path, fake) as server:
        feeds = until(
            lambda: (found := capabilities(server)["market_data_feeds"])[0]["markets_loaded"] and found,
            "the markets read",
        )
        assert feeds == [
            {"exchange": "okx", "symbols": ["BTC/USDT", "ETH/USDT"], "unlisted": [UNLISTED], "markets_loaded": True}
        ]
        assert fake.requests.count("/api/v5/public/instruments?instType=SPOT") == 1
        assert not any("SOL-USDT" in str(command) for command in fake.commands)
        log = server.log()
    [line] = [line for line in log.splitlines() if "Market data feed: symbol not listed" in line]
    assert UNLISTED in line
    assert "BTC/USDT" not in line


def test_a_lost_book_update_is_recovered_by_subscribing_again(tmp_path: Path) -> None:
    """An update whose prevSeqId is not the book's last seqId (updates were lost): ccxt
    drops the book, the feed asks again, and ccxt unsubscribes and subscribes again on
    the same connection; the new snapshot has what was lost."""
    with running(["ETH/USDT"]) as fake:
        fake.set_book("ETH/USDT", bids=[(10.0, 2.0)], asks=[(11.0, 2.0)])
        with fed_server(tmp_path, fake, symbols="ETH/USDT") as server:
            until(lambda: books_taken(server, "ETH/USDT"), "the snapshot taken")
            order = post_limit_buy(server, "g-1", price=10.5, qty=1.0, symbol="ETH/USDT")
            fake.push_depth("ETH/USDT", asks=[(10.5, 1.0)], skip=3)  # the ask that fills it, after a gap
            until(lambda: order_status(server, order["order_id"]) == "FILLED", "the new snapshot fills it")
            assert fills(server, order["order_id"]) == [(1.0, 10.5, "book", 10.5)]
            books = [command["op"] for command in fake.commands if command["args"][0]["channel"] == DEPTH]
            assert books == ["subscribe", "unsubscribe", "subscribe"]
            assert fake.connections == 1  # on the same connection


def test_a_dropped_connection_is_made_again_and_orders_fill_again(tmp_path: Path) -> None:
    with running() as fake:
        fake.set_book("BTC/USDT", bids=[(98.0, 1.0)], asks=[(101.0, 5.0)])
        with fed_server(tmp_path, fake, symbols=f"BTC/USDT,{UNLISTED}", MAX_QUOTE_AGE_MS="1000") as server:
            with moving(fake, "BTC/USDT"):
                until(lambda: capabilities(server)["status"] == "ok", "fresh books")
                fresh = post_limit_buy(server, "c-1", price=101.0, qty=1.0)
                until(lambda: order_status(server, fresh["order_id"]) == "FILLED", "a fresh book fills")
            assert sample(server, "execution_market_data_reconnects_total") == 0

            # The exchange goes away: no connection, no data.
            fake.refuse_connections(True)
            assert fake.drop_connections() == 1  # the book's and the trades'
            degraded = until(lambda: (found := capabilities(server))["status"] == "degraded" and found, "degraded")
            assert "okx:BTC/USDT" in degraded["degraded_reason"]
            waiting = post_limit_buy(server, "c-2", price=101.0, qty=1.0)
            until(lambda: fake.refused >= 1, "the feed tries to connect again")
            assert order_status(server, waiting["order_id"]) == "NEW"
            assert fills(server, waiting["order_id"]) == []

            # It comes back: the feed connects again, its fresh book fills what waited.
            fake.refuse_connections(False)
            with moving(fake, "BTC/USDT"):
                until(lambda: fake.connections >= 2, "the feed connected again", timeout=15)
                until(lambda: order_status(server, waiting["order_id"]) == "FILLED", "a fresh book fills again")
                assert fills(server, waiting["order_id"]) == [(1.0, 101.0, "book", 101.0)]
                until(lambda: capabilities(server)["status"] == "ok", "fresh books again")
                reconnects = sample(server, "execution_market_data_reconnects_total")
                assert reconnects is not None
                assert reconnects >= 1
                again = post_limit_buy(server, "c-3", price=101.0, qty=1.0)
                until(lambda: order_status(server, again["order_id"]) == "FILLED", "orders fill again")
                # Trades too come on the connection made again: 1 is ahead at 98.
                resting = post_limit_buy(server, "c-4", price=98.0, qty=1.0)
                fake.wait_for_subscribers("BTC/USDT", TRADE)
                assert fake.push_trade("BTC/USDT", 98.0, 1.5, side="sell") == 1
                until(lambda: order_status(server, resting["order_id"]) == "PARTIALLY_FILLED", "a trade fills again")
                assert [source for _, _, source, _ in fills(server, resting["order_id"])] == ["trade"]
        log = server.log()
    assert "Market data feed interrupted" in log
