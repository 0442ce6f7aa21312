"""Market data feeds: for each MARKET_DATA_FEEDS exchange, the public order book and
trades of every allowlisted symbol it lists, followed through ccxt (websockets where
the exchange has them, REST polling otherwise) and fed to the fill model as books and
trades, exactly as if they had been posted (OrderService.add_book, add_trade)."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from app.core.errors import ServiceError
from app.core.vocabulary import Side
from app.ops.logs import EventLog
from app.service.market_feeds import ExchangeFeed, InstrumentFeed, MarketFeeds
from app.service.orders import BookRequest, OrderService, TradeRequest
from app.venues.backoff import Backoff

# Levels per side fed to the fill model: what an order walks; deeper ones cost every book.
BOOK_LEVELS = 100
# An exchange without websockets is asked this often (seconds).
POLL_SECONDS = 1.0
# Trade ids a polled feed remembers, to drop the trades a poll returns again.
SEEN_TRADES = 10_000
# A process runs an instrument's feed under a lease in the store, renewed every
# LEASE_RENEW_SECONDS for LEASE_MS: when its process dies, another takes the feed over
# within LEASE_MS plus one renewal (about 8 s).
LEASE_MS = 6_000
LEASE_RENEW_SECONDS = 2.0


class Exchange(Protocol):
    """The part of a ccxt (pro) exchange a feed uses."""

    has: Mapping[str, Any]

    async def load_markets(self) -> Mapping[str, Any]: ...

    async def watch_order_book(self, symbol: str) -> Mapping[str, Any]: ...

    async def watch_trades(self, symbol: str) -> Sequence[Mapping[str, Any]]: ...

    async def fetch_order_book(self, symbol: str) -> Mapping[str, Any]: ...

    async def fetch_trades(self, symbol: str) -> Sequence[Mapping[str, Any]]: ...

    async def close(self) -> None: ...


# (exchange id, base URL or None) -> the exchange; the real one is venues.ccxt_exchange.
ExchangeFactory = Callable[[str, str | None], Exchange]


# Fed data is stamped with the time it arrives here, not the exchange's: a book and
# the trades inside it come on separate streams with the exchange's stamps out of
# order between them (a 100 ms depth batch is stamped after its trades), so one of
# them would be refused as out of order; and the exchange's clock is not this
# machine's, which MAX_QUOTE_AGE_MS compares with.


def book_request(exchange: str, symbol: str, book: Mapping[str, Any]) -> BookRequest | None:
    """A ccxt order book as the service takes a posted one (stamped on arrival); None
    while a side is empty (a book needs both)."""
    bids = [(float(level[0]), float(level[1])) for level in book["bids"][:BOOK_LEVELS]]
    asks = [(float(level[0]), float(level[1])) for level in book["asks"][:BOOK_LEVELS]]
    if not bids or not asks:
        return None
    return BookRequest(exchange, symbol, bids, asks)


def trade_request(exchange: str, symbol: str, trade: Mapping[str, Any]) -> TradeRequest | None:
    """A ccxt trade as the service takes a posted print (stamped on arrival); None
    without the aggressor's side (the queue model needs it)."""
    side = {"buy": Side.BUY, "sell": Side.SELL}.get(trade.get("side") or "")
    if side is None:
        return None
    return TradeRequest(exchange, symbol, float(trade["price"]), float(trade["amount"]), side)


class MarketDataFeeds:
    """Runs every configured feed in this process's event loop, from `start` to `stop`."""

    def __init__(
        self,
        service: OrderService,
        events: EventLog,
        *,
        factory: ExchangeFactory,
        exchanges: Iterable[str],
        symbols: Iterable[str],
        base_urls: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        lease_ms: int = LEASE_MS,
        renew_seconds: float = LEASE_RENEW_SECONDS,
    ) -> None:
        self.service = service
        self.events = events
        self.status = MarketFeeds([ExchangeFeed(name) for name in sorted(exchanges)])
        self._symbols = sorted(symbols)
        self._base_urls = dict(base_urls)
        self._clock = clock
        self._lease_ms = lease_ms
        self._renew_seconds = renew_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self.holder = uuid.uuid4().hex  # this process, as the holder of feed leases
        self._held: dict[tuple[str, str], list[asyncio.Task[None]]] = {}
        # Made now, so that an exchange the library does not have stops start-up.
        self._clients = [factory(feed.exchange, self._base_urls.get(feed.exchange)) for feed in self.status.exchanges]

    def start(self) -> None:
        for feed, client in zip(self.status.exchanges, self._clients, strict=True):
            self._spawn(self._run_exchange(feed, client))

    async def stop(self) -> None:
        held = list(self._held)
        for task in [*self._tasks, *(task for tasks in self._held.values() for task in tasks)]:
            task.cancel()
        await asyncio.gather(
            *self._tasks, *(task for tasks in self._held.values() for task in tasks), return_exceptions=True
        )
        for client in self._clients:
            await client.close()
        self._tasks.clear()
        self._held.clear()
        if held:
            # Given up, so another process takes them at once; if the store cannot
            # answer, they lapse on their own.
            with contextlib.suppress(ServiceError):
                await self.service.release_feeds(self.holder, held)

    def _spawn(self, work: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(work))

    async def _run_exchange(self, feed: ExchangeFeed, client: Exchange) -> None:
        """Load the exchange's markets (again and again until it answers), name the
        symbols it does not list, then follow each one it does."""
        backoff = Backoff()
        while True:
            try:
                markets = await client.load_markets()
                break
            except Exception as error:  # any failure of the exchange: try again later
                self.events.warning(
                    "Market data feed cannot load markets",
                    {"exchange": feed.exchange, "error": _describe(error)},
                )
                await asyncio.sleep(backoff.next())
        feed.markets_loaded = True
        for symbol in self._symbols:
            if symbol not in markets:
                feed.unlisted.append(symbol)
                self.events.warning(
                    "Market data feed: symbol not listed",
                    {"exchange": feed.exchange, "symbol": symbol, "detail": "no feed for it; the other symbols run"},
                )
            else:
                feed.instruments.append(InstrumentFeed(feed.exchange, symbol))
        self.events.info(
            "Market data feed started",
            {
                "exchange": feed.exchange,
                "symbols": [instrument.symbol for instrument in feed.instruments],
                "unlisted": feed.unlisted,
            },
        )
        websockets = bool(client.has.get("watchOrderBook")) and bool(client.has.get("watchTrades"))
        while True:
            await self._lease(feed, client, websockets)
            await asyncio.sleep(self._renew_seconds)

    async def _lease(self, feed: ExchangeFeed, client: Exchange, websockets: bool) -> None:
        """Claim (or renew) the leases of the exchange's instruments; run the feeds this
        process holds, stop those it no longer does. A store that cannot answer proves
        no lease: every feed of the exchange stops until it can."""
        instruments = [(feed.exchange, instrument.symbol) for instrument in feed.instruments]
        try:
            held = await self.service.claim_feeds(self.holder, instruments, self._lease_ms)
        except ServiceError as error:
            held = set()
            self.events.warning(
                "Market data feed leases not renewed", {"exchange": feed.exchange, "error": _describe(error)}
            )
        for instrument in feed.instruments:
            key = (instrument.exchange, instrument.symbol)
            if key in held and key not in self._held:
                self._held[key] = [
                    asyncio.ensure_future(
                        self._follow(instrument, self._books(client, instrument.symbol, websockets), self._take_book)
                    ),
                    asyncio.ensure_future(
                        self._follow(instrument, self._trades(client, instrument.symbol, websockets), self._take_trades)
                    ),
                ]
                instrument.held = True
            elif key not in held and key in self._held:
                for task in self._held.pop(key):
                    task.cancel()
                instrument.held = False

    async def _follow(
        self,
        instrument: InstrumentFeed,
        receive: Callable[[], Awaitable[Any]],
        take: Callable[[InstrumentFeed, Any], Awaitable[None]],
    ) -> None:
        """Receive and take data until stopped; after a failure to receive, wait (with
        backoff and jitter) and receive again: ccxt connects anew. The first data after
        failures counts one reconnect."""
        backoff = Backoff()
        while True:
            try:
                received = await receive()
            except Exception as error:  # a dropped connection, a timeout, an exchange error
                self.events.warning(
                    "Market data feed interrupted",
                    {"exchange": instrument.exchange, "symbol": instrument.symbol, "error": _describe(error)},
                )
                await asyncio.sleep(backoff.next())
                continue
            if backoff.failures:
                instrument.reconnects += 1
                backoff.reset()
            await take(instrument, received)

    async def _take_book(self, instrument: InstrumentFeed, book: Mapping[str, Any]) -> None:
        instrument.books += 1
        request = book_request(instrument.exchange, instrument.symbol, book)
        if request is not None:
            await self._take(instrument, self.service.add_book(request))

    async def _take_trades(self, instrument: InstrumentFeed, trades: Sequence[Mapping[str, Any]]) -> None:
        for trade in trades:
            instrument.trades += 1
            request = trade_request(instrument.exchange, instrument.symbol, trade)
            if request is not None:
                await self._take(instrument, self.service.add_trade(request))

    async def _take(self, instrument: InstrumentFeed, call: Awaitable[object]) -> None:
        try:
            await call
        except ServiceError:  # out of order, stale, the store down: the next one may be taken
            instrument.refused += 1
            return
        instrument.received_at = self._clock()

    def _books(self, client: Exchange, symbol: str, websockets: bool) -> Callable[[], Awaitable[Mapping[str, Any]]]:
        if websockets:
            # Always awaited again at once: ccxt reports a lost update (and then asks
            # for a new snapshot) only to a watch that is waiting.
            return lambda: client.watch_order_book(symbol)

        async def poll() -> Mapping[str, Any]:
            await asyncio.sleep(POLL_SECONDS)
            return await client.fetch_order_book(symbol)

        return poll

    def _trades(
        self, client: Exchange, symbol: str, websockets: bool
    ) -> Callable[[], Awaitable[Sequence[Mapping[str, Any]]]]:
        if websockets:
            return lambda: client.watch_trades(symbol)
        seen: dict[str, None] = {}  # trade ids, oldest first (a dict keeps insertion order)
        first = True

        async def poll() -> Sequence[Mapping[str, Any]]:
            nonlocal first
            await asyncio.sleep(POLL_SECONDS)
            trades = await client.fetch_trades(symbol)
            new = [trade for trade in trades if str(trade.get("id")) not in seen]
            for trade in new:
                seen[str(trade.get("id"))] = None
            while len(seen) > SEEN_TRADES:
                del seen[next(iter(seen))]
            if first:  # the tape before the feed started is not played again
                first = False
                return []
            return sorted(new, key=lambda trade: trade.get("timestamp") or 0)

        return poll


def _describe(error: BaseException) -> str:
    text = str(error).strip().replace("\n", " ")
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
