"""Market data feeds, the service's side: for each MARKET_DATA_FEEDS exchange, the
public order book and trades of every allowlisted symbol it lists are followed (by a
FeedRunner, through ccxt: websockets where the exchange has them, REST polling
otherwise) and fed to the fill model as books and trades, exactly as if they had been
posted (OrderService.add_book, add_trade).

The runner works in its own process (ChildProcessSource: ccxt's handling of every
websocket message then costs the service nothing), or in the service's loop for
stand-in exchanges (InProcessSource, for tests). Among processes sharing a store, one
runs each instrument's feed, under a lease in the store."""

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from app.core.errors import ServiceError
from app.core.vocabulary import Side
from app.ops.logs import EventLog
from app.service.market_feeds import ExchangeFeed, InstrumentFeed, MarketFeeds
from app.service.orders import BookRequest, OrderService, TradeRequest
from app.venues.backoff import Backoff
from app.venues.ccxt_lookup import check_ccxt_has
from app.venues.feed_runner import Emit, Exchange, FeedRunner, Instrument, Message
from app.venues.tasks import cancel_and_wait

# A process runs an instrument's feed under a lease in the store, renewed every
# LEASE_RENEW_SECONDS for LEASE_MS: when its process dies, another takes the feed over
# within LEASE_MS plus one renewal (about 8 s).
LEASE_MS = 6_000
LEASE_RENEW_SECONDS = 2.0

# (exchange id, base URL or None) -> the exchange; the real one is venues.ccxt_exchange.
ExchangeFactory = Callable[[str, str | None], Exchange]


# Fed data is stamped with the time it arrives here, not the exchange's: a book and
# the trades inside it come on separate streams with the exchange's stamps out of
# order between them (a 100 ms depth batch is stamped after its trades), so one of
# them would be refused as out of order; and the exchange's clock is not this
# machine's, which MAX_QUOTE_AGE_MS compares with.


def book_request(message: Message) -> BookRequest | None:
    """A runner's book as the service takes a posted one (stamped on arrival); None
    while a side is empty (a book needs both)."""
    bids = [(float(price), float(size)) for price, size in message["bids"]]
    asks = [(float(price), float(size)) for price, size in message["asks"]]
    if not bids or not asks:
        return None
    return BookRequest(message["exchange"], message["symbol"], bids, asks)


def trade_requests(message: Message) -> list[TradeRequest]:
    """A runner's trades as the service takes posted prints (stamped on arrival)."""
    exchange, symbol = message["exchange"], message["symbol"]
    return [
        TradeRequest(exchange, symbol, float(price), float(qty), Side(side)) for price, qty, side in message["trades"]
    ]


class FeedSource(Protocol):
    """Where a FeedRunner works, and how its messages come back."""

    def start(self, emit: Emit) -> None: ...

    def follow(self, instruments: set[Instrument]) -> None: ...

    async def stop(self) -> None: ...


class InProcessSource:
    """The runner in the service's own loop, on exchanges made here (stand-ins, in tests)."""

    def __init__(
        self, factory: ExchangeFactory, exchanges: Iterable[str], symbols: Sequence[str], base_urls: Mapping[str, str]
    ) -> None:
        self._clients = {name: factory(name, base_urls.get(name)) for name in sorted(exchanges)}
        self._symbols = symbols
        self._runner: FeedRunner | None = None

    def start(self, emit: Emit) -> None:
        self._runner = FeedRunner(self._clients, self._symbols, emit)
        self._runner.start()

    def follow(self, instruments: set[Instrument]) -> None:
        if self._runner is not None:
            self._runner.follow(instruments)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.stop()
            self._runner = None


class ChildProcessSource:
    """The runner in its own process (app.venues.feed_process), started again (with
    backoff) if it ends while the service runs."""

    def __init__(
        self, events: EventLog, exchanges: Iterable[str], symbols: Sequence[str], base_urls: Mapping[str, str]
    ) -> None:
        names = sorted(exchanges)
        check_ccxt_has(names, package="pro", setting="MARKET_DATA_FEEDS")
        self._events = events
        self._config = json.dumps({"exchanges": names, "symbols": list(symbols), "base_urls": dict(base_urls)})
        self._following: set[Instrument] = set()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, emit: Emit) -> None:
        self._task = asyncio.ensure_future(self._run(emit))

    def follow(self, instruments: set[Instrument]) -> None:
        if instruments != self._following:
            self._following = set(instruments)
            self._send()

    def _send(self) -> None:
        process = self._process
        if process is not None and process.stdin is not None and not process.stdin.is_closing():
            command = {"follow": sorted([exchange, symbol] for exchange, symbol in self._following)}
            process.stdin.write(json.dumps(command).encode() + b"\n")

    async def _run(self, emit: Emit) -> None:
        backoff = Backoff()
        while True:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "app.venues.feed_process",
                self._config,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=16 * 1024 * 1024,
            )
            self._process = process
            self._send()
            assert process.stdout is not None
            started = time.monotonic()
            while line := await process.stdout.readline():
                emit(json.loads(line))
            code = await process.wait()
            self._process = None
            self._events.warning("Market data feed process ended", {"exit_code": code})
            if time.monotonic() - started > 60:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()  # its stdin ends: it stops
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


class MarketDataFeeds:
    """Takes what a FeedSource brings into the service, from `start` to `stop`, and
    holds the leases that say which instruments this process follows."""

    def __init__(
        self,
        service: OrderService,
        events: EventLog,
        source: FeedSource,
        exchanges: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
        lease_ms: int = LEASE_MS,
        renew_seconds: float = LEASE_RENEW_SECONDS,
    ) -> None:
        self.service = service
        self.events = events
        self.status = MarketFeeds([ExchangeFeed(name) for name in sorted(exchanges)])
        self.holder = uuid.uuid4().hex  # this process, as the holder of feed leases
        self._source = source
        self._clock = clock
        self._lease_ms = lease_ms
        self._renew_seconds = renew_seconds
        self._instruments: dict[Instrument, InstrumentFeed] = {}
        self._markets_changed: asyncio.Event | None = None
        self._held: set[Instrument] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        inbox: asyncio.Queue[list[Message]] = asyncio.Queue()
        self._markets_changed = asyncio.Event()
        self._source.start(inbox.put_nowait)
        self._tasks = [asyncio.ensure_future(self._take_messages(inbox)), asyncio.ensure_future(self._lease())]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        await self._source.stop()
        held, self._held = self._held, set()
        if held:
            # Given up, so another process takes them at once; if the store cannot
            # answer, they lapse on their own.
            with contextlib.suppress(ServiceError):
                await self.service.release_feeds(self.holder, sorted(held))

    async def _lease(self) -> None:
        """Claim (or renew) the leases of every listed instrument, and follow those this
        process holds. A store that cannot answer proves no lease: nothing is followed
        until it can."""
        assert self._markets_changed is not None
        while True:
            instruments = sorted(self._instruments)
            held: set[Instrument] = set()
            if instruments:
                try:
                    held = await self.service.claim_feeds(self.holder, instruments, self._lease_ms)
                except ServiceError as error:
                    self.events.warning("Market data feed leases not renewed", {"error": str(error)})
            self._held = held
            for key, instrument in self._instruments.items():
                instrument.held = key in held
            self._source.follow(held)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._markets_changed.wait(), self._renew_seconds)
            self._markets_changed.clear()

    async def _take_messages(self, inbox: "asyncio.Queue[list[Message]]") -> None:
        while True:
            for message in await inbox.get():
                await self._take_message(message)

    async def _take_message(self, message: Message) -> None:
        kind = message["type"]
        if kind == "markets":
            self._markets(message)
        elif kind == "book":
            await self._take_book(message)
        elif kind == "trades":
            await self._take_trades(message)
        elif kind == "interrupted":
            self._interrupted(message)
        elif kind == "reconnected":
            instrument = self._instruments.get((message["exchange"], message["symbol"]))
            if instrument is not None:
                instrument.reconnects += 1

    def _markets(self, message: Message) -> None:
        feed = next(feed for feed in self.status.exchanges if feed.exchange == message["exchange"])
        feed.unlisted = list(message["unlisted"])
        feed.instruments = [InstrumentFeed(feed.exchange, symbol) for symbol in message["listed"]]
        feed.markets_loaded = True
        for instrument in feed.instruments:
            self._instruments[(instrument.exchange, instrument.symbol)] = instrument
        for symbol in feed.unlisted:
            self.events.warning(
                "Market data feed: symbol not listed",
                {"exchange": feed.exchange, "symbol": symbol, "detail": "no feed for it; the other symbols run"},
            )
        self.events.info(
            "Market data feed started",
            {"exchange": feed.exchange, "symbols": list(message["listed"]), "unlisted": feed.unlisted},
        )
        assert self._markets_changed is not None
        self._markets_changed.set()  # claim its instruments now

    def _interrupted(self, message: Message) -> None:
        if message["symbol"] is None:
            self.events.warning(
                "Market data feed cannot load markets", {"exchange": message["exchange"], "error": message["error"]}
            )
            return
        self.events.warning(
            "Market data feed interrupted",
            {"exchange": message["exchange"], "symbol": message["symbol"], "error": message["error"]},
        )

    async def _take_book(self, message: Message) -> None:
        instrument = self._instruments.get((message["exchange"], message["symbol"]))
        if instrument is None:
            return
        instrument.books += 1
        request = book_request(message)
        if request is not None:
            await self._take(instrument, self.service.add_book(request))

    async def _take_trades(self, message: Message) -> None:
        instrument = self._instruments.get((message["exchange"], message["symbol"]))
        if instrument is None:
            return
        for request in trade_requests(message):
            instrument.trades += 1
            await self._take(instrument, self.service.add_trade(request))

    async def _take(self, instrument: InstrumentFeed, call: Awaitable[object]) -> None:
        try:
            await call
        except ServiceError:  # out of order, stale, the store down: the next one may be taken
            instrument.refused += 1
            return
        instrument.received_at = self._clock()
