"""Market data feeds end to end: the real service (a uvicorn process) follows Binance
through the real ccxt, pointed at a fake Binance on 127.0.0.1 (harness.fake_binance.py)
by MARKET_DATA_URL_BINANCE. Books and trades the fake pushes fill orders as posted ones
would; a symbol the fake does not list is named; a feed cut off degrades the service
under MAX_QUOTE_AGE_MS and comes back when the exchange does.

tests/venues/test_feeds.py tests the feeds' logic with a stand-in for ccxt; these test
that what ccxt really sends and reads fits it."""

import asyncio
import importlib
import os
import signal
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from app.venues.ccxt_exchange import OPTIONS
from app.venues.urls import rebase
from harness.fake_binance import DEPTH, TRADE, FakeBinance, moving, running
from harness.fake_venue import until
from tests.uvicorn_server import Server
from tests.venues import fed_service
from tests.venues.fed_service import capabilities, fills, order_status, post_limit_buy

UNLISTED = "SOL/USDT"  # allowlisted, but the fake exchange does not list it


def feed_env(fake: FakeBinance, symbols: str, **extra: str) -> dict[str, str]:
    return fed_service.feed_env("binance", fake, symbols, **extra)


def fed_server(
    tmp_path: Path, fake: FakeBinance, symbols: str = f"BTC/USDT,ETH/USDT,{UNLISTED}", **env: str
) -> AbstractContextManager[Server]:
    return fed_service.fed_server(tmp_path, "binance", fake, symbols, (DEPTH, TRADE), **env)


def sample(server: Server, name: str, symbol: str = "BTC/USDT", **labels: str) -> float | None:
    return fed_service.sample(server, name, "binance", symbol, **labels)


def books_taken(server: Server, symbol: str) -> float:
    return sample(server, "execution_market_data_messages_total", symbol, kind="book") or 0.0


def test_the_fake_speaks_what_ccxt_binance_reads() -> None:
    """The fake itself, driven by ccxt.pro's binance as the service builds it: the
    markets, a book (snapshot, then a diff), a trade, a dropped connection."""

    async def drive(fake: FakeBinance) -> None:
        # Imported here, as the service does (app.venues.ccxt_exchange): ccxt is untyped, and heavy.
        ccxt = importlib.import_module("ccxt.pro")
        exchange = ccxt.binance({"enableRateLimit": True, "options": OPTIONS["binance"]})
        exchange.urls["api"] = rebase(exchange.urls["api"], fake.base_url)
        try:
            markets = await exchange.load_markets()
            assert sorted(markets) == ["BTC/USDT", "ETH/USDT"]
            assert markets["BTC/USDT"]["spot"]
            assert markets["BTC/USDT"]["active"]
            book = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 10)
            assert (book["bids"], book["asks"]) == ([[98.0, 1.0], [97.0, 2.0]], [[99.0, 1.0], [100.0, 1.0]])
            pushed = asyncio.ensure_future(exchange.watch_order_book("BTC/USDT"))
            await asyncio.to_thread(fake.wait_for_subscribers, "BTC/USDT", DEPTH)
            assert await asyncio.to_thread(fake.push_depth, "BTC/USDT", [(98.5, 3.0)], [(99.0, 0.0)]) == 1
            book = await asyncio.wait_for(pushed, 10)
            assert (book["bids"], book["asks"]) == ([[98.5, 3.0], [98.0, 1.0], [97.0, 2.0]], [[100.0, 1.0]])
            assert book["timestamp"] is not None

            traded = asyncio.ensure_future(exchange.watch_trades("BTC/USDT"))
            await asyncio.to_thread(fake.wait_for_subscribers, "BTC/USDT", TRADE)
            await asyncio.to_thread(fake.push_trade, "BTC/USDT", 99.5, 0.25, buyer_is_maker=True)
            [trade] = await asyncio.wait_for(traded, 10)
            assert (trade["symbol"], trade["price"], trade["amount"], trade["side"]) == ("BTC/USDT", 99.5, 0.25, "sell")

            cut = asyncio.ensure_future(exchange.watch_order_book("BTC/USDT"))
            assert await asyncio.to_thread(fake.drop_connections) == 2  # the book's and the trades'
            with pytest.raises(ccxt.NetworkError):
                await asyncio.wait_for(cut, 10)
        finally:
            await exchange.close()

    with running() as fake:
        fake.set_book("BTC/USDT", bids=[(98.0, 1.0), (97.0, 2.0)], asks=[(99.0, 1.0), (100.0, 1.0)])
        asyncio.run(drive(fake))
        assert fake.connections == 2
        assert "/api/v3/depth" in fake.requests


def test_pushed_books_and_trades_fill_orders_as_posted_ones_do(tmp_path: Path) -> None:
    with running() as fake:
        fake.set_book("BTC/USDT", bids=[(98.0, 1.0)], asks=[(105.0, 1.0)])
        fake.set_book("ETH/USDT", bids=[(10.0, 2.0)], asks=[(11.0, 2.0)])
        with fed_server(tmp_path, fake) as server:
            until(lambda: books_taken(server, "BTC/USDT") and books_taken(server, "ETH/USDT"), "the snapshots taken")

            # A book: the order rests below the ask, then a diff brings asks it reaches;
            # resting, it fills at its own price, once per level it reaches.
            order = post_limit_buy(server, "b-1", price=100.0, qty=1.5)
            assert order_status(server, order["order_id"]) == "NEW"
            fake.push_depth("BTC/USDT", asks=[(99.0, 1.0), (100.0, 1.0), (105.0, 0.0)])
            until(lambda: order_status(server, order["order_id"]) == "FILLED", "the pushed book fills the order")
            assert fills(server, order["order_id"]) == [(1.0, 100.0, "book", 99.0), (0.5, 100.0, "book", 100.0)]

            # A trade: 2 are ahead of the resting order at 10; a sell of 2.5 there takes
            # the queue, then half of the order.
            resting = post_limit_buy(server, "t-1", price=10.0, qty=1.0, symbol="ETH/USDT")
            assert fake.push_trade("ETH/USDT", 10.0, 2.5, buyer_is_maker=True) == 1
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
            {"exchange": "binance", "symbols": ["BTC/USDT", "ETH/USDT"], "unlisted": [UNLISTED], "markets_loaded": True}
        ]
        assert fake.requests.count("/api/v3/exchangeInfo") == 1
        log = server.log()
    [line] = [line for line in log.splitlines() if "Market data feed: symbol not listed" in line]
    assert UNLISTED in line
    assert "BTC/USDT" not in line


def test_a_lost_depth_update_is_recovered_from_a_new_snapshot(tmp_path: Path) -> None:
    """A diff whose U does not follow the book's last u (updates were lost): ccxt drops
    the book, the feed asks again, and ccxt takes a new snapshot, which has what was lost."""
    with running(["ETH/USDT"]) as fake:
        fake.set_book("ETH/USDT", bids=[(10.0, 2.0)], asks=[(11.0, 2.0)])
        with fed_server(tmp_path, fake, symbols="ETH/USDT") as server:
            until(lambda: books_taken(server, "ETH/USDT"), "the snapshot taken")
            order = post_limit_buy(server, "g-1", price=10.5, qty=1.0, symbol="ETH/USDT")
            assert fake.requests.count("/api/v3/depth") == 1
            fake.push_depth("ETH/USDT", asks=[(10.5, 1.0)], skip=3)  # the ask that fills it, after a gap
            until(lambda: order_status(server, order["order_id"]) == "FILLED", "the new snapshot fills it")
            assert fills(server, order["order_id"]) == [(1.0, 10.5, "book", 10.5)]
            assert fake.requests.count("/api/v3/depth") == 2
            assert fake.connections == 2  # on the same connections


def test_a_feed_cut_off_degrades_the_service_and_comes_back(tmp_path: Path) -> None:
    with running() as fake:
        fake.set_book("BTC/USDT", bids=[(98.0, 1.0)], asks=[(101.0, 5.0)])
        with fed_server(tmp_path, fake, symbols=f"BTC/USDT,{UNLISTED}", MAX_QUOTE_AGE_MS="1000") as server:
            with moving(fake, "BTC/USDT"):
                until(lambda: capabilities(server)["status"] == "ok", "fresh books")
                fresh = post_limit_buy(server, "c-1", price=101.0, qty=1.0)
                until(lambda: order_status(server, fresh["order_id"]) == "FILLED", "a fresh book fills")
            connected = fake.connections

            # The exchange goes away: no connection, no data.
            fake.refuse_connections(True)
            assert fake.drop_connections() == 2  # the book's and the trades'
            degraded = until(lambda: (found := capabilities(server))["status"] == "degraded" and found, "degraded")
            assert "binance:BTC/USDT" in degraded["degraded_reason"]
            assert "binance:BTC/USDT" in degraded["stale_market_data"]
            waiting = post_limit_buy(server, "c-2", price=101.0, qty=1.0)
            assert order_status(server, waiting["order_id"]) == "NEW"
            assert fills(server, waiting["order_id"]) == []
            until(lambda: fake.refused >= 1, "the feed tries to connect again")
            assert order_status(server, waiting["order_id"]) == "NEW"

            # It comes back: the feed connects again, its fresh book fills what waited.
            fake.refuse_connections(False)
            with moving(fake, "BTC/USDT"):
                until(lambda: fake.connections >= connected + 2, "the feed connected again", timeout=15)
                until(lambda: order_status(server, waiting["order_id"]) == "FILLED", "a fresh book fills again")
                assert fills(server, waiting["order_id"]) == [(1.0, 101.0, "book", 101.0)]
                until(lambda: capabilities(server)["status"] == "ok", "fresh books again")
                reconnects = sample(server, "execution_market_data_reconnects_total")
                assert reconnects is not None
                assert reconnects >= 1
                again = post_limit_buy(server, "c-3", price=101.0, qty=1.0)
                until(lambda: order_status(server, again["order_id"]) == "FILLED", "orders fill again")
        log = server.log()
    assert "Market data feed interrupted" in log


def test_a_feed_process_that_dies_is_started_again(tmp_path: Path) -> None:
    """ccxt runs in a process of its own beside the service: killed, it is started
    again, follows the books again, and orders fill again."""
    with running(["ETH/USDT"]) as fake:
        fake.set_book("ETH/USDT", bids=[(10.0, 2.0)], asks=[(11.0, 2.0)])
        with fed_server(tmp_path, fake, symbols="ETH/USDT") as server:
            found = subprocess.run(
                ["pgrep", "-P", str(server.process.pid), "-f", "app.venues.feed_process"],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            )
            [child] = found.stdout.split()
            os.kill(int(child), signal.SIGKILL)
            until(lambda: "Market data feed process ended" in server.log(), "the service sees it end")
            until(lambda: fake.connections >= 4, "a new feed process subscribes again")  # a book's and a trade's each
            fake.wait_for_subscribers("ETH/USDT", DEPTH)
            order = post_limit_buy(server, "again-1", price=10.5, qty=1.0, symbol="ETH/USDT")
            fake.push_depth("ETH/USDT", asks=[(10.5, 1.0)])
            until(lambda: order_status(server, order["order_id"]) == "FILLED", "the new process's book fills it")
