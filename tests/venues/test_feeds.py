"""Market data feeds through the service, with a stand-in for ccxt's exchange (the real
ccxt against a fake exchange server is tests/venues/test_ccxt_feeds.py): books and
trades a feed receives fill orders as posted ones would, an interrupted feed comes
back, a symbol the exchange does not list is named, and a feed with no fresh data makes
the service degraded."""

import asyncio
import logging
import queue
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.ops.logs import EventLog, configure_logging
from app.service.orders import OrderService
from app.store.memory import InMemoryStore
from app.store.sql import SqlStore
from app.venues.feed_runner import book_levels, trade_of
from app.venues.feeds import Exchange, InProcessSource, MarketDataFeeds, book_request, trade_requests
from tests.conftest import URL, intent, make_settings
from tests.uvicorn_server import ROOT

FEED = {"allowed_exchanges": "binance,okx", "market_data_feeds": "binance"}
LISTED = {"BTC/USDT": {}, "ETH/USDT": {}}  # SOL/USDT is allowlisted but not listed


class FakeExchange:
    """What a feed calls on a ccxt exchange; the test pushes what it answers, from
    its own thread (the app's loop runs in the test client's)."""

    def __init__(self, markets: Mapping[str, Any] = LISTED, websockets: bool = True) -> None:
        self.markets = markets
        self.has = {"watchOrderBook": websockets, "watchTrades": websockets}
        self.books: dict[str, queue.Queue[Any]] = {symbol: queue.Queue() for symbol in markets}
        self.trades: dict[str, queue.Queue[Any]] = {symbol: queue.Queue() for symbol in markets}
        self.closed = False

    async def load_markets(self) -> Mapping[str, Any]:
        return self.markets

    async def watch_order_book(self, symbol: str) -> Mapping[str, Any]:
        return await self._next(self.books[symbol])

    async def watch_trades(self, symbol: str) -> Sequence[Mapping[str, Any]]:
        return await self._next(self.trades[symbol])

    async def fetch_order_book(self, symbol: str) -> Mapping[str, Any]:
        return await self._next(self.books[symbol])

    async def fetch_trades(self, symbol: str) -> Sequence[Mapping[str, Any]]:
        return await self._next(self.trades[symbol])

    async def close(self) -> None:
        self.closed = True

    @staticmethod
    async def _next(source: "queue.Queue[Any]") -> Any:
        while True:
            try:
                item = source.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.005)
                continue
            if isinstance(item, Exception):
                raise item
            return item


@contextmanager
def fed(exchange: FakeExchange, **overrides: Any) -> Iterator[TestClient]:
    made: list[tuple[str, str | None]] = []

    def factory(name: str, base_url: str | None) -> Exchange:
        made.append((name, base_url))
        return exchange

    app = create_app(make_settings(**FEED, **overrides), InMemoryStore(), exchanges=factory)
    with TestClient(app) as client:
        yield client
    assert made == [("binance", overrides.get("market_data_urls", {}).get("binance"))]
    assert exchange.closed


def book(bid: float, ask: float, size: float = 1.0, ms: int | None = None) -> dict[str, Any]:
    return {"bids": [[bid, size], [bid - 1, size]], "asks": [[ask, size], [ask + 1, size]], "timestamp": ms}


def until(check: Callable[[], Any], what: str) -> Any:
    """`check()` once it is truthy (bounded: a feed runs in the app's own thread)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"never: {what}")


def sample(client: TestClient, name: str, symbol: str = "BTC/USDT", **labels: str) -> float | None:
    """One sample's value on /metrics (binance's feed of `symbol`); None if absent."""
    wanted = {"exchange": "binance", "symbol": symbol, **labels}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for found in family.samples:
            if found.name == name and found.labels == wanted:
                return float(found.value)
    return None


def order_status(client: TestClient, order_id: str) -> str:
    status: str = client.get(f"/execution/orders/{order_id}").json()["status"]
    return status


def test_a_fed_book_fills_orders_as_a_posted_one_does() -> None:
    exchange = FakeExchange()
    with fed(exchange) as client:
        order = client.post(URL, json=intent(idempotency_key="b-1", type="LIMIT", limit_price=100.0, qty=1.5)).json()
        exchange.books["BTC/USDT"].put(book(98.0, 99.0))  # asks: 1 at 99, 1 at 100
        until(lambda: order_status(client, order["order_id"]) == "FILLED", "the book fills the order")
        fills = client.get(f"/execution/orders/{order['order_id']}/fills").json()["items"]
        assert [(f["qty"], f["price"], f["provenance"]["source"]) for f in fills] == [
            (1.0, 99.0, "book"),
            (0.5, 100.0, "book"),
        ]
        assert client.get("/capabilities").json()["market_data_feeds"] == [
            {
                "exchange": "binance",
                "symbols": ["BTC/USDT", "ETH/USDT"],
                "unlisted": ["SOL/USDT"],
                "markets_loaded": True,
            }
        ]


def test_fed_trades_fill_resting_orders_by_their_queue() -> None:
    exchange = FakeExchange()
    with fed(exchange) as client:
        now = int(time.time() * 1000)
        # The book's exchange stamp is after the print's (as a depth batch's is after the
        # trades in it): both are taken, each stamped as it arrives.
        exchange.books["ETH/USDT"].put(book(10.0, 11.0, size=2.0, ms=now + 50))
        until(lambda: sample(client, "execution_market_data_age_seconds", "ETH/USDT") is not None, "the book taken")
        resting = client.post(
            URL, json=intent(idempotency_key="t-1", symbol="ETH/USDT", type="LIMIT", limit_price=10.0, qty=1.0)
        ).json()
        # 2 ahead of it at 10: a print of 2.5 there takes the queue, then half of it.
        exchange.trades["ETH/USDT"].put([{"id": "1", "price": 10.0, "amount": 2.5, "side": "sell", "timestamp": now}])
        until(lambda: order_status(client, resting["order_id"]) == "PARTIALLY_FILLED", "the print reaches it")
        [fill] = client.get(f"/execution/orders/{resting['order_id']}/fills").json()["items"]
        assert (fill["qty"], fill["provenance"]["source"], fill["provenance"]["queue_ahead"]) == (0.5, "trade", 2.0)
        assert sample(client, "execution_market_data_messages_total", "ETH/USDT", kind="refused") == 0


def test_an_interrupted_feed_counts_a_reconnect_and_feeds_again(caplog: pytest.LogCaptureFixture) -> None:
    exchange = FakeExchange()
    with fed(exchange) as client:
        exchange.books["BTC/USDT"].put(ConnectionError("connection closed by the exchange"))
        exchange.books["BTC/USDT"].put(book(99.0, 100.0))
        until(lambda: sample(client, "execution_market_data_messages_total", kind="book") == 1, "the book counted")
        assert sample(client, "execution_market_data_reconnects_total") == 1
        age = sample(client, "execution_market_data_age_seconds")
        assert age is not None
        assert 0 <= age < 10
    [line] = [r for r in caplog.records if r.getMessage() == "Market data feed interrupted"]
    assert line.fields == {  # type: ignore[attr-defined]
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "error": "ConnectionError: connection closed by the exchange",
    }


def test_an_unlisted_symbol_is_named_once_and_the_others_run(caplog: pytest.LogCaptureFixture) -> None:
    with fed(FakeExchange()) as client:
        until(lambda: client.get("/capabilities").json()["market_data_feeds"][0]["markets_loaded"], "markets read")
    [line] = [r for r in caplog.records if r.getMessage() == "Market data feed: symbol not listed"]
    assert line.fields["symbol"] == "SOL/USDT"  # type: ignore[attr-defined]


def test_with_max_quote_age_a_feed_without_fresh_data_degrades_the_service() -> None:
    exchange = FakeExchange(markets={"BTC/USDT": {}})
    with fed(exchange, max_quote_age_ms=300, allowed_symbols="BTC/USDT") as client:
        capabilities = until(
            lambda: (c := client.get("/capabilities").json())["market_data_feeds"][0]["markets_loaded"] and c,
            "markets read",
        )
        assert capabilities["status"] == "degraded"
        assert "market data feeds behind" in capabilities["degraded_reason"]
        assert "binance:BTC/USDT" in capabilities["degraded_reason"]
        exchange.books["BTC/USDT"].put(book(99.0, 100.0, ms=int(time.time() * 1000)))
        until(lambda: client.get("/capabilities").json()["status"] == "ok", "fresh data")
        # Nothing more comes: stale again after MAX_QUOTE_AGE_MS, and orders do not fill.
        until(lambda: client.get("/capabilities").json()["status"] == "degraded", "stale again")


def test_a_polled_feed_plays_only_the_trades_after_it_started() -> None:
    exchange = FakeExchange(websockets=False)
    with fed(exchange) as client:
        old = [{"id": str(n), "price": 10.0, "amount": 1.0, "side": "buy", "timestamp": None} for n in range(3)]
        exchange.trades["BTC/USDT"].put(old)
        exchange.trades["BTC/USDT"].put([*old, {"id": "3", "price": 10.0, "amount": 1.0, "side": "buy"}])
        until(lambda: sample(client, "execution_market_data_messages_total", kind="trade") == 1, "one new trade")
        time.sleep(0.2)
        assert sample(client, "execution_market_data_messages_total", kind="trade") == 1


def test_conversions_from_ccxt() -> None:
    bids, asks = book_levels({"bids": [[1, 2, 3]], "asks": [["4", "5"]], "timestamp": 1500})
    assert (bids, asks) == ([[1.0, 2.0]], [[4.0, 5.0]])
    request = book_request({"exchange": "binance", "symbol": "BTC/USDT", "bids": bids, "asks": asks})
    assert request is not None
    # Stamped on arrival, not with the exchange's clock (see feeds.book_request).
    assert (request.bids, request.asks, request.ts) == ([(1.0, 2.0)], [(4.0, 5.0)], None)
    assert book_request({"exchange": "binance", "symbol": "BTC/USDT", "bids": [], "asks": asks}) is None
    trade = trade_of({"price": 3, "amount": 0.5, "side": "sell", "timestamp": 2})
    assert trade == [3.0, 0.5, "SELL"]
    assert trade_of({"price": 3, "amount": 0.5, "side": None}) is None
    [request_of_trade] = trade_requests({"exchange": "okx", "symbol": "BTC/USDT", "trades": [trade]})
    assert (request_of_trade.price, request_of_trade.qty, request_of_trade.aggressor_side.value) == (3.0, 0.5, "SELL")
    assert request_of_trade.ts is None


def test_without_feeds_ccxt_is_never_imported() -> None:
    code = "import sys, app.main; sys.exit('ccxt' in sys.modules or 'aiohttp' in sys.modules)"
    env = {"PYTHONPATH": str(ROOT), "ALLOWED_EXCHANGES": "binance", "ALLOWED_SYMBOLS": "BTC/USDT"}
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False, timeout=60).returncode == 0


def test_processes_sharing_a_store_run_one_feed_per_instrument_and_take_over(tmp_path: Path) -> None:
    """Two feeds on one SQLite file, as two workers: one runs BTC/USDT's feed; when it
    stops (giving its lease up) the other takes it over at its next renewal."""
    settings = make_settings(**FEED, allowed_symbols="BTC/USDT", storage_url=f"sqlite:///{tmp_path / 'o.db'}")
    events = EventLog(configure_logging("execution", logging.INFO, "text"))

    def feeds_on(store: SqlStore) -> MarketDataFeeds:
        source = InProcessSource(
            lambda name, base: FakeExchange(markets={"BTC/USDT": {}}), {"binance"}, ["BTC/USDT"], {}
        )
        return MarketDataFeeds(
            OrderService(settings, store, events),
            events,
            source,
            {"binance"},
            lease_ms=400,
            renew_seconds=0.05,
        )

    def held(feeds: MarketDataFeeds) -> bool:
        return any(instrument.held for instrument in feeds.status.instruments())

    async def scenario() -> None:
        stores = [SqlStore(settings.storage_url), SqlStore(settings.storage_url)]
        first, second = (feeds_on(store) for store in stores)
        try:
            first.start()
            await until_async(lambda: held(first), "the first takes the feed")
            second.start()
            await asyncio.sleep(0.3)  # several renewals: the lease stays the first's
            assert (held(first), held(second)) == (True, False)
            await first.stop()
            await until_async(lambda: held(second), "the second takes it over")
        finally:
            await first.stop()
            await second.stop()
            for store in stores:
                store.close()

    asyncio.run(scenario())


async def until_async(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


def test_an_exchange_ccxt_does_not_have_stops_start_up_with_one_line() -> None:
    env = {"PYTHONPATH": str(ROOT), "ALLOWED_EXCHANGES": "nosuchexchange", "MARKET_DATA_FEEDS": "nosuchexchange"}
    started = subprocess.run(
        [sys.executable, "-c", "import app.main"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert started.stderr == (
        "execution: invalid configuration: MARKET_DATA_FEEDS: ccxt has no exchange 'nosuchexchange'\n"
    )
