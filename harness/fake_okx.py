"""A fake OKX spot exchange on 127.0.0.1, for tests that run the real ccxt against it.

It speaks only the part of OKX's v5 public API that ccxt.pro's okx calls to follow books
and trades: GET /api/v5/public/instruments (the markets: the listed symbols for
instType=SPOT, none for the other types ccxt asks by default) and the public websocket
/ws/v5/public: {"op": "subscribe"} and {"op": "unsubscribe"} of the "books" and "trades"
channels, each argument acknowledged with an event as OKX does; a "books" subscription
is answered with a snapshot of the book, then updates follow (action snapshot/update,
with OKX's seqId/prevSeqId chain and checksum); the text "ping" is answered "pong".
The test drives it from its own thread: it sets books, pushes updates and trades to
subscribers, drops every connection, refuses new ones.

Unlike Binance, OKX carries every channel of every instrument on one connection (ccxt
opens one websocket to /ws/v5/public for all its public subscriptions), and a book's
snapshot comes only in answer to a subscription (there is no REST snapshot to fetch).

The app runs in a background thread with its own event loop; every call from the test
waits for the loop with a bound, so a wedged fake fails the test instead of hanging it.
"""

import binascii
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypeVar

from aiohttp import WSMsgType, web

from harness.fake_venue import CLOSE_TIMEOUT, LOOP_TIMEOUT, FakeVenue

__all__ = ["DEPTH", "TRADE", "FakeOkx", "Level", "checksum", "moving", "running"]

# The channels ccxt subscribes to by default: "books" (400 levels, snapshot then
# updates) for watch_order_book, "trades" for watch_trades.
DEPTH = "books"
TRADE = "trades"
# Levels of each side the checksum covers, and a "books" snapshot carries, as on OKX.
CHECKSUM_LEVELS = 25
SNAPSHOT_LEVELS = 400
# The instrument types OKX knows; ccxt asks SPOT, FUTURES, SWAP and OPTION (options.fetchMarkets.types).
INSTRUMENT_TYPES = ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION")

T = TypeVar("T")

Level = tuple[float, float]  # price, size (size 0 removes the level, as on OKX)
Side = Literal["buy", "sell"]


@dataclass
class _Market:
    """One listed symbol: its book (price -> size per side), the seqId OKX gives the
    book's latest change, and the id of its latest trade."""

    base: str
    quote: str
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    seq_id: int = 1000
    trade_id: int = 0
    sent_checksum: int | None = None  # that of the latest "books" message sent

    @property
    def id(self) -> str:
        return f"{self.base}-{self.quote}"

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size

    def top(self, limit: int) -> tuple[list[Level], list[Level]]:
        """The best `limit` levels of each side, best first."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return bids, asks


def _number(value: float) -> str:
    """OKX sends numbers as the shortest decimal strings ("31685", "0.78069158"): no
    trailing zeros, no exponent. The checksum is taken over these strings."""
    text = format(Decimal(repr(value)).normalize(), "f")
    return "0" if text in ("-0", "") else text


def _level(price: float, size: float) -> list[str]:
    """A book level as OKX sends it: price, size, "0" (liquidated orders, deprecated),
    the number of orders at the level (0 for a level removed)."""
    return [_number(price), _number(size), "0", "0" if size == 0 else "1"]


def checksum(bids: Iterable[Level], asks: Iterable[Level]) -> int:
    """OKX's order book checksum: the best 25 bids and asks interleaved as
    "bid1px:bid1sz:ask1px:ask1sz:bid2px:..." (a side with fewer levels just ends),
    CRC32 of that string as a signed 32-bit integer. Sides best first."""
    bid_list, ask_list = list(bids)[:CHECKSUM_LEVELS], list(asks)[:CHECKSUM_LEVELS]
    parts: list[str] = []
    for n in range(max(len(bid_list), len(ask_list))):
        for side in (bid_list, ask_list):
            if n < len(side):
                parts += [_number(side[n][0]), _number(side[n][1])]
    unsigned = binascii.crc32(":".join(parts).encode())
    return unsigned - (1 << 32) if unsigned >= 1 << 31 else unsigned


def _now_ms() -> int:
    return int(time.time() * 1000)


class FakeOkx(FakeVenue[tuple[str, str]]):
    """The fake exchange; use `running()` (a context manager) or start/stop."""

    def __init__(self, symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT")) -> None:
        self._markets: dict[str, _Market] = {}
        for symbol in symbols:
            base, quote = symbol.split("/")
            self._markets[symbol] = _Market(base, quote)
        super().__init__("fake-okx")
        self.pings = 0  # "ping" texts answered with "pong"
        self.commands: list[dict[str, Any]] = []  # websocket requests received (op, args), in order

    # -- life cycle ---------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v5/public/instruments", self._instruments)
        app.router.add_get("/ws/v5/public", self._websocket)

    @property
    def symbols(self) -> list[str]:
        """The symbols it lists (ccxt's unified ones)."""
        return list(self._markets)

    # -- what a test does ---------------------------------------------------------------

    def set_book(self, symbol: str, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the book the snapshot of a new "books" subscription carries, as one
        more change (subscribers are not told: use `push_depth` for what they are to see)."""
        bids, asks = list(bids), list(asks)

        async def change() -> None:
            market = self._markets[symbol]
            market.bids.clear()
            market.asks.clear()
            market.apply(bids, asks)
            market.seq_id += 1

        self._call(change())

    def push_depth(
        self,
        symbol: str,
        bids: Iterable[Level] = (),
        asks: Iterable[Level] = (),
        *,
        at_ms: int | None = None,
        skip: int = 0,
    ) -> int:
        """Apply a change to the book and send it to the symbol's "books" subscribers as
        an update (ts `at_ms`, now by default) whose prevSeqId is the seqId of the one
        before, as ccxt checks, and whose checksum is that of the book after it; `skip`
        > 0 makes a gap of that many updates (as if some were lost). How many
        connections it was sent to."""
        bids, asks = list(bids), list(asks)

        async def push() -> int:
            market = self._markets[symbol]
            market.apply(bids, asks)
            previous = market.seq_id + skip  # with a gap, the seqId of an update never sent
            market.seq_id = previous + 1
            update = self._book_data(market, bids, asks, previous, at_ms)
            message = {"arg": {"channel": DEPTH, "instId": market.id}, "action": "update", "data": [update]}
            return await self._send((DEPTH, market.id), message)

        return self._call(push())

    def push_trade(self, symbol: str, price: float, qty: float, *, side: Side, at_ms: int | None = None) -> int:
        """Send a trade (ts `at_ms`, now by default) to the symbol's "trades"
        subscribers; `side` is the taker's, as on OKX. How many connections it was sent to."""

        async def push() -> int:
            market = self._markets[symbol]
            market.trade_id += 1
            trade = {
                "instId": market.id,
                "tradeId": str(market.trade_id),
                "px": _number(price),
                "sz": _number(qty),
                "side": side,
                "ts": str(_now_ms() if at_ms is None else at_ms),
                "count": "1",
                "source": "0",
                "seqId": market.trade_id,
            }
            message = {"arg": {"channel": TRADE, "instId": market.id}, "data": [trade]}
            return await self._send((TRADE, market.id), message)

        return self._call(push())

    def last_checksum(self, symbol: str) -> int | None:
        """The checksum the symbol's latest "books" message (snapshot or update) carried."""

        async def read() -> int | None:
            return self._markets[symbol].sent_checksum

        return self._call(read())

    def subscribers(self, symbol: str, kind: str) -> int:
        """Open connections subscribed to the symbol's `kind` channel (DEPTH or TRADE)."""
        topic = (kind, self._markets[symbol].id)

        async def count() -> int:
            return sum(topic in topics for topics in self._sockets.values())

        return self._call(count())

    # -- the API ------------------------------------------------------------------------

    async def _instruments(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        kind = request.query.get("instType", "")
        if kind not in INSTRUMENT_TYPES:
            return web.json_response({"code": "51000", "msg": "Parameter instType error", "data": []}, status=400)
        listed = [_spot_instrument(market) for market in self._markets.values()] if kind == "SPOT" else []
        return web.json_response({"code": "0", "msg": "", "data": listed})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self._refusing:
            self.refused += 1
            return web.Response(status=503, text="refusing connections")
        # A short close timeout: a client that does not answer a close is not waited for.
        connection = web.WebSocketResponse(timeout=CLOSE_TIMEOUT)
        await connection.prepare(request)
        self.connections += 1
        self._sockets[connection] = set()
        connection_id = uuid.uuid4().hex[:8]
        try:
            async for message in connection:
                if message.type != WSMsgType.TEXT:
                    continue
                if message.data == "ping":
                    self.pings += 1
                    await connection.send_str("pong")
                    continue
                try:
                    command = json.loads(message.data)
                except ValueError:
                    command = None
                if not isinstance(command, dict):
                    await connection.send_json(_error("60012", f"Illegal request: {message.data}", connection_id))
                    continue
                await self._command(connection, command, connection_id)
        finally:
            self._sockets.pop(connection, None)
        return connection

    async def _command(self, connection: web.WebSocketResponse, command: dict[str, Any], connection_id: str) -> None:
        """subscribe / unsubscribe, each argument answered as OKX does ({"event":
        "subscribe", "arg": {...}, "connId": ...}); a "books" subscription then gets
        the book's snapshot. An instrument it does not list is an error event."""
        self.commands.append(command)
        topics = self._sockets.get(connection)
        if topics is None:
            return
        op, args = command.get("op"), command.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            await connection.send_json(_error("60012", f"Illegal request: {json.dumps(command)}", connection_id))
            return
        for arg in args:
            channel = str(arg.get("channel", "")) if isinstance(arg, dict) else ""
            instrument = str(arg.get("instId", "")) if isinstance(arg, dict) else ""
            market = next((each for each in self._markets.values() if each.id == instrument), None)
            if channel not in (DEPTH, TRADE) or market is None:
                text = f"Wrong URL or channel:{channel},instId:{instrument} doesn't exist."
                await connection.send_json(_error("60018", text, connection_id))
                continue
            topic = (channel, instrument)
            if op == "unsubscribe":
                topics.discard(topic)
                await connection.send_json(
                    {"event": op, "arg": {"channel": channel, "instId": instrument}, "connId": connection_id}
                )
                continue
            topics.add(topic)
            await connection.send_json(
                {"event": op, "arg": {"channel": channel, "instId": instrument}, "connId": connection_id}
            )
            if channel == DEPTH:
                bids, asks = market.top(SNAPSHOT_LEVELS)
                snapshot = self._book_data(market, bids, asks, -1, None)
                await connection.send_json(
                    {"arg": {"channel": DEPTH, "instId": instrument}, "action": "snapshot", "data": [snapshot]}
                )

    def _book_data(
        self, market: _Market, bids: Iterable[Level], asks: Iterable[Level], previous: int, at_ms: int | None
    ) -> dict[str, Any]:
        """One entry of a "books" message's data: these levels, the whole book's checksum
        after them, its seqId and the one before (-1 for a snapshot)."""
        best_bids, best_asks = market.top(CHECKSUM_LEVELS)
        market.sent_checksum = checksum(best_bids, best_asks)
        return {
            "asks": [_level(price, size) for price, size in asks],
            "bids": [_level(price, size) for price, size in bids],
            "ts": str(_now_ms() if at_ms is None else at_ms),
            "checksum": market.sent_checksum,
            "prevSeqId": previous,
            "seqId": market.seq_id,
        }

    async def _send(self, topic: tuple[str, str], message: dict[str, Any]) -> int:
        targets = [each for each, topics in self._sockets.items() if topic in topics and not each.closed]
        for connection in targets:
            await connection.send_json(message)
        return len(targets)


def _error(code: str, text: str, connection_id: str) -> dict[str, str]:
    return {"event": "error", "code": code, "msg": text, "connId": connection_id}


def _spot_instrument(market: _Market) -> dict[str, str]:
    """A symbol as OKX's public/instruments lists a spot instrument (the fields ccxt reads)."""
    return {
        "instType": "SPOT",
        "instId": market.id,
        "instIdCode": "",
        "uly": "",
        "instFamily": "",
        "baseCcy": market.base,
        "quoteCcy": market.quote,
        "settleCcy": "",
        "ctVal": "",
        "ctMult": "",
        "ctValCcy": "",
        "ctType": "",
        "optType": "",
        "stk": "",
        "alias": "",
        "category": "1",
        "listTime": "1548133413000",
        "contTdSwTime": "",
        "expTime": "",
        "lever": "10",
        "tickSz": "0.01",
        "lotSz": "0.00000001",
        "minSz": "0.00001",
        "maxLmtSz": "9999999999",
        "maxMktSz": "1000000",
        "maxLmtAmt": "20000000",
        "maxMktAmt": "1000000",
        "maxTwapSz": "9999999999",
        "maxIcebergSz": "9999999999",
        "maxTriggerSz": "9999999999",
        "maxStopSz": "1000000",
        "ruleType": "normal",
        "state": "live",
    }


@contextmanager
def running(symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT")) -> Iterator[FakeOkx]:
    """A started fake exchange listing `symbols`, stopped however the block ends."""
    fake = FakeOkx(symbols)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@contextmanager
def moving(fake: FakeOkx, symbol: str, every: float = 0.2) -> Iterator[None]:
    """A market that keeps moving: while the block runs, a deep bid of `symbol` changes
    size every `every` s, pushed to its "books" subscribers (if any), so a feed that is
    connected keeps bringing fresh books (what MAX_QUOTE_AGE_MS asks for)."""
    stop = threading.Event()

    def tick() -> None:
        size = 1.0
        while not stop.wait(every):
            if fake.subscribers(symbol, DEPTH):
                size = 3.0 - size  # 1, 2, 1, ...: a change at a level no test order reaches
                fake.push_depth(symbol, bids=[(1.0, size)])

    thread = threading.Thread(target=tick, name=f"moving-{symbol}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(LOOP_TIMEOUT)
