"""The part of a market data feed that talks to the exchanges: it reads their markets,
follows the books and trades of the instruments it is told to, and says what it got as
plain messages (`emit`). It runs where ccxt runs: in its own process beside the
service (app.venues.feed_process), or, for tests with stand-in exchanges, in the
service's loop. The service side (app.venues.feeds) takes the messages.

Messages (JSON-ready dicts, `type` first):
- markets: `exchange`, `listed` and `unlisted` (the allowlisted symbols it has and has not);
- book: `exchange`, `symbol`, `bids`, `asks` ([price, size] floats, best first, BOOK_LEVELS a side);
- trades: `exchange`, `symbol`, `trades` ([price, amount, "BUY" or "SELL"], oldest first);
- interrupted: `exchange`, `symbol` (null for the markets), `error`;
- reconnected: `exchange`, `symbol`, `stream` ("book" or "trades").
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from app.venues.backoff import Backoff
from app.venues.tasks import cancel_and_wait

Message = dict[str, Any]
Emit = Callable[[list[Message]], None]  # a batch of messages, in order
Instrument = tuple[str, str]

# Levels per side handed over: what an order walks; deeper ones cost every book.
BOOK_LEVELS = 100
# What was received is handed over in one batch this often (seconds), with only the
# newest book of each instrument: ccxt keeps its copy of a book up to date with every
# update meanwhile, so no change is lost, only states already replaced (Binance itself
# batches depth per 100 ms). A batch keeps the order in which books and trades came.
HAND_OVER_SECONDS = 0.05
# An exchange without websockets is asked this often (seconds).
POLL_SECONDS = 1.0
# Trade ids a polled feed remembers, to drop the trades a poll returns again.
SEEN_TRADES = 10_000
_SIDES = {"buy": "BUY", "sell": "SELL"}


class UnknownExchange(ValueError):
    """An exchange id ccxt does not have."""


class Exchange(Protocol):
    """The part of a ccxt (pro) exchange a feed uses."""

    has: Mapping[str, Any]

    async def load_markets(self) -> Mapping[str, Any]: ...

    async def watch_order_book(self, symbol: str) -> Mapping[str, Any]: ...

    async def watch_trades(self, symbol: str) -> Sequence[Mapping[str, Any]]: ...

    async def fetch_order_book(self, symbol: str) -> Mapping[str, Any]: ...

    async def fetch_trades(self, symbol: str) -> Sequence[Mapping[str, Any]]: ...

    async def close(self) -> None: ...


def book_levels(book: Mapping[str, Any]) -> tuple[list[list[float]], list[list[float]]]:
    """A ccxt order book's best BOOK_LEVELS a side, as [price, size] floats."""
    bids = [[float(level[0]), float(level[1])] for level in book["bids"][:BOOK_LEVELS]]
    asks = [[float(level[0]), float(level[1])] for level in book["asks"][:BOOK_LEVELS]]
    return bids, asks


def trade_of(trade: Mapping[str, Any]) -> list[Any] | None:
    """A ccxt trade as [price, amount, aggressor side]; None without the side."""
    side = _SIDES.get(trade.get("side") or "")
    return None if side is None else [float(trade["price"]), float(trade["amount"]), side]


class FeedRunner:
    """Follows what it is told to (`follow`) on `clients` (exchange id -> exchange)."""

    def __init__(
        self,
        clients: Mapping[str, Exchange],
        symbols: Sequence[str],
        emit: Emit,
        *,
        hand_over_seconds: float = HAND_OVER_SECONDS,
    ) -> None:
        self._clients = dict(clients)
        self._symbols = list(symbols)
        self._emit = emit
        self._hand_over_seconds = hand_over_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._following: dict[Instrument, list[asyncio.Task[None]]] = {}
        # What is to be handed over, in order; a book replaces its instrument's
        # pending one in place (the newest state, where the first one stood).
        self._pending: list[Message] = []
        self._books_at: dict[Instrument, int] = {}  # instrument -> index of its book in _pending

    def start(self) -> None:
        for name, client in self._clients.items():
            self._tasks.append(asyncio.ensure_future(self._load(name, client)))
        self._tasks.append(asyncio.ensure_future(self._hand_over()))

    def follow(self, instruments: set[Instrument]) -> None:
        """Follow exactly `instruments` from now on (of exchanges it has)."""
        for key in [key for key in self._following if key not in instruments]:
            for task in self._following.pop(key):
                task.cancel()
        for key in instruments:
            client = self._clients.get(key[0])
            if client is None or key in self._following:
                continue
            websockets = bool(client.has.get("watchOrderBook")) and bool(client.has.get("watchTrades"))
            self._following[key] = [
                asyncio.ensure_future(self._stream(key, "book", self._books(client, key[1], websockets))),
                asyncio.ensure_future(self._stream(key, "trades", self._trades(client, key[1], websockets))),
            ]

    async def stop(self) -> None:
        await cancel_and_wait([*self._tasks, *(task for tasks in self._following.values() for task in tasks)])
        self._tasks.clear()
        self._following.clear()
        for client in self._clients.values():
            await client.close()

    def _add(self, message: Message, book_of: Instrument | None = None) -> None:
        if book_of is not None and book_of in self._books_at:
            self._pending[self._books_at[book_of]] = message
            return
        if book_of is not None:
            self._books_at[book_of] = len(self._pending)
        elif message.get("symbol") is not None:
            # Anything else of the instrument after its pending book: a later book is
            # handed over after it, not in that book's place.
            self._books_at.pop((message["exchange"], message["symbol"]), None)
        self._pending.append(message)

    async def _hand_over(self) -> None:
        while True:
            await asyncio.sleep(self._hand_over_seconds)
            if self._pending:
                batch, self._pending = self._pending, []
                self._books_at.clear()
                self._emit(batch)

    async def _load(self, name: str, client: Exchange) -> None:
        """The exchange's markets, asked again (with backoff) until it answers."""
        backoff = Backoff()
        while True:
            try:
                markets = await client.load_markets()
                break
            except Exception as error:  # any failure of the exchange: try again later
                self._add({"type": "interrupted", "exchange": name, "symbol": None, "error": describe(error)})
                await asyncio.sleep(backoff.next())
        listed = [symbol for symbol in self._symbols if symbol in markets]
        unlisted = [symbol for symbol in self._symbols if symbol not in markets]
        self._add({"type": "markets", "exchange": name, "listed": listed, "unlisted": unlisted})

    async def _stream(self, key: Instrument, stream: str, receive: Callable[[], Awaitable[Any]]) -> None:
        """Receive until cancelled; after a failure wait (backoff, jitter) and receive
        again, ccxt connecting anew. Always awaited again at once: ccxt reports a lost
        update (and asks for a new snapshot) only to a watch that is waiting."""
        backoff = Backoff()
        while True:
            try:
                received = await receive()
            except Exception as error:  # a dropped connection, a timeout, an exchange error
                self._add({"type": "interrupted", "exchange": key[0], "symbol": key[1], "error": describe(error)})
                await asyncio.sleep(backoff.next())
                continue
            if backoff.failures:
                backoff.reset()
                self._add({"type": "reconnected", "exchange": key[0], "symbol": key[1], "stream": stream})
            if stream == "book":
                bids, asks = book_levels(received)
                book = {"type": "book", "exchange": key[0], "symbol": key[1], "bids": bids, "asks": asks}
                self._add(book, book_of=key)
            else:
                trades = [found for trade in received if (found := trade_of(trade)) is not None]
                if trades:
                    self._add({"type": "trades", "exchange": key[0], "symbol": key[1], "trades": trades})

    def _books(self, client: Exchange, symbol: str, websockets: bool) -> Callable[[], Awaitable[Mapping[str, Any]]]:
        if websockets:
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


def describe(error: BaseException) -> str:
    text = str(error).strip().replace("\n", " ")
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
