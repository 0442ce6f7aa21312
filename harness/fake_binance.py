"""A fake Binance spot exchange on 127.0.0.1, for tests (and benches) that run the real
ccxt against it.

It speaks only the part of Binance's public API that ccxt.pro's binance calls to follow
books and trades: GET /api/v3/exchangeInfo (the markets), GET /api/v3/depth (a book
snapshot with its lastUpdateId) and websockets under /ws (SUBSCRIBE, then diff depth
updates and trades). The test drives it from its own thread: it sets books, pushes
updates and trades to subscribers, drops every connection, refuses new ones.

The app runs in a background thread with its own event loop; every call from the test
waits for the loop with a bound, so a wedged fake fails the test instead of hanging it.
"""

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

from harness.fake_venue import CLOSE_TIMEOUT, LOOP_TIMEOUT, FakeVenue

# The depth stream ccxt subscribes to by default (watchOrderBookRate 100 ms).
DEPTH = "depth@100ms"
TRADE = "trade"

T = TypeVar("T")

Level = tuple[float, float]  # price, size (size 0 removes the level, as on Binance)


@dataclass
class _Market:
    """One listed symbol: its book (price -> size per side) and the update id Binance
    gives the book's latest change (U/u of diff updates, lastUpdateId of snapshots)."""

    base: str
    quote: str
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)
    update_id: int = 1000
    trade_id: int = 0

    @property
    def id(self) -> str:
        return self.base + self.quote

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                if size == 0:
                    side.pop(price, None)
                else:
                    side[price] = size


def _number(value: float) -> str:
    """Binance sends numbers as decimal strings."""
    return f"{value:.8f}"


def _levels(side: dict[float, float], descending: bool, limit: int) -> list[list[str]]:
    prices = sorted(side, reverse=descending)[:limit]
    return [[_number(price), _number(side[price])] for price in prices]


def _now_ms() -> int:
    return int(time.time() * 1000)


class FakeBinance(FakeVenue[str]):
    """The fake exchange; use `running()` (a context manager) or start/stop."""

    def __init__(self, symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT")) -> None:
        self._markets: dict[str, _Market] = {}
        for symbol in symbols:
            base, quote = symbol.split("/")
            self._markets[symbol] = _Market(base, quote)
        super().__init__("fake-binance")
        self._pump: asyncio.Future[None] | None = None
        self.pumped = 0  # diff depth updates pump_depth made

    # -- life cycle ---------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/depth", self._depth)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/ws/{tail:.*}", self._websocket)

    @property
    def symbols(self) -> list[str]:
        """The symbols it lists (ccxt's unified ones)."""
        return list(self._markets)

    # -- what a test does ---------------------------------------------------------------

    def set_book(self, symbol: str, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the book a snapshot (GET /api/v3/depth) returns, as one more update
        (subscribers are not told: use `push_depth` for what they are to see)."""

        async def change() -> None:
            market = self._markets[symbol]
            market.bids.clear()
            market.asks.clear()
            market.apply(bids, asks)
            market.update_id += 1

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
        """Apply a diff to the book and send it to the symbol's depth subscribers as a
        depthUpdate (event time `at_ms`, now by default) whose U is the previous
        lastUpdateId + 1, as ccxt checks; `skip` > 0 makes a gap of that many updates
        (as if some were lost). How many connections it was sent to."""
        bids, asks = list(bids), list(asks)
        return self._call(self._push_diff(symbol, bids, asks, at_ms, skip))

    async def _push_diff(self, symbol: str, bids: list[Level], asks: list[Level], at_ms: int | None, skip: int) -> int:
        market = self._markets[symbol]
        market.apply(bids, asks)
        market.update_id += 1 + skip
        event = {
            "e": "depthUpdate",
            "E": _now_ms() if at_ms is None else at_ms,
            "s": market.id,
            "U": market.update_id,
            "u": market.update_id,
            "b": [[_number(price), _number(size)] for price, size in bids],
            "a": [[_number(price), _number(size)] for price, size in asks],
        }
        return await self._send(f"{market.id.lower()}@{DEPTH}", event)

    def push_trade(
        self, symbol: str, price: float, qty: float, *, buyer_is_maker: bool, at_ms: int | None = None
    ) -> int:
        """Send a trade (trade time `at_ms`, now by default) to the symbol's trade
        subscribers (a buyer who is maker means the seller was the aggressor); how many
        connections it was sent to."""

        async def push() -> int:
            market = self._markets[symbol]
            market.trade_id += 1
            now = _now_ms()
            event = {
                "e": "trade",
                "E": now,
                "s": market.id,
                "t": market.trade_id,
                "p": _number(price),
                "q": _number(qty),
                "T": now if at_ms is None else at_ms,
                "m": buyer_is_maker,
                "M": True,
            }
            return await self._send(f"{market.id.lower()}@{TRADE}", event)

        return self._call(push())

    def subscribers(self, symbol: str, kind: str) -> int:
        """Open connections subscribed to the symbol's `kind` stream (DEPTH or TRADE)."""
        stream = f"{self._markets[symbol].id.lower()}@{kind}"

        async def count() -> int:
            return sum(stream in streams for streams in self._sockets.values())

        return self._call(count())

    def pump_depth(self, rate: float, levels: int = 150) -> None:
        """For benches: give every symbol a book of `levels` a side around 100, then send
        `rate` diff depth updates a second (in batches every 10 ms, on schedule), round
        robin over the symbols, each changing the size of one of the top five bids,
        until `stop_pump`."""

        async def pump() -> None:
            for market in self._markets.values():
                market.bids.clear()
                market.asks.clear()
                market.apply(
                    [(round(99.99 - n * 0.01, 2), 1.0) for n in range(levels)],
                    [(round(100.00 + n * 0.01, 2), 1.0) for n in range(levels)],
                )
                market.update_id += 1
            symbols = list(self._markets)
            start = time.monotonic()
            for n in itertools.count():
                due = start + n / rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
                symbol = symbols[n % len(symbols)]
                level = (round(99.99 - (n // len(symbols)) % 5 * 0.01, 2), 1.0 + n % 7)
                await self._push_diff(symbol, [level], [], None, 0)
                self.pumped += 1

        async def begin() -> None:
            self._pump = asyncio.ensure_future(pump())

        self._call(begin())

    def stop_pump(self) -> int:
        """Stop what `pump_depth` started; how many updates it made."""

        async def end() -> None:
            if self._pump is not None:
                self._pump.cancel()
                self._pump = None

        self._call(end())
        return self.pumped

    # -- the API ------------------------------------------------------------------------

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": _now_ms(),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [_spot_market(market) for market in self._markets.values()],
            }
        )

    async def _depth(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        market = next((m for m in self._markets.values() if m.id == request.query.get("symbol")), None)
        if market is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = int(request.query.get("limit", "100"))
        return web.json_response(
            {
                "lastUpdateId": market.update_id,
                "bids": _levels(market.bids, descending=True, limit=limit),
                "asks": _levels(market.asks, descending=False, limit=limit),
            }
        )

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self._refusing:
            self.refused += 1
            return web.Response(status=503, text="refusing connections")
        # A short close timeout: a client that does not answer a close is not waited for.
        # No permessage-deflate: Binance's market streams send plain frames.
        connection = web.WebSocketResponse(timeout=CLOSE_TIMEOUT, compress=False)
        await connection.prepare(request)
        self.connections += 1
        self._sockets[connection] = set()
        try:
            async for message in connection:
                if message.type == WSMsgType.TEXT:
                    await self._command(connection, json.loads(message.data))
        finally:
            self._sockets.pop(connection, None)
        return connection

    async def _command(self, connection: web.WebSocketResponse, command: dict[str, Any]) -> None:
        """SUBSCRIBE / UNSUBSCRIBE, answered as Binance does ({"result": null, "id": N})."""
        streams = self._sockets.get(connection)
        if streams is None:
            return
        method, params = command.get("method"), command.get("params", [])
        if method == "SUBSCRIBE":
            streams.update(params)
        elif method == "UNSUBSCRIBE":
            streams.difference_update(params)
        else:
            await connection.send_json({"code": 2, "msg": f"Invalid request: unknown method {method!r}"})
            return
        await connection.send_json({"result": None, "id": command.get("id")})

    async def _send(self, stream: str, event: dict[str, Any]) -> int:
        targets = [each for each, streams in self._sockets.items() if stream in streams and not each.closed]
        for connection in targets:
            await connection.send_json(event)
        return len(targets)


def _spot_market(market: _Market) -> dict[str, Any]:
    """A symbol as Binance's spot exchangeInfo lists it (the fields ccxt reads)."""
    return {
        "symbol": market.id,
        "status": "TRADING",
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01",
            },
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000.00000000"},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


@contextmanager
def running(symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT")) -> Iterator[FakeBinance]:
    """A started fake exchange listing `symbols`, stopped however the block ends."""
    fake = FakeBinance(symbols)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@contextmanager
def moving(fake: FakeBinance, symbol: str, every: float = 0.2) -> Iterator[None]:
    """A market that keeps moving: while the block runs, a deep bid of `symbol` changes
    size every `every` s, pushed to its depth subscribers (if any), so a feed that is
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
