"""A local emulator of Binance's spot REST API, the private part ccxt uses to trade, for
tests that run the real ccxt (ccxt.async_support.binance) against it.

What it emulates, on the real paths and with Binance's answer shapes (numbers as decimal
strings, errors as {"code": -NNNN, "msg": ...} with Binance's codes and messages, so that
ccxt raises its own exception classes for them):

- public: GET /api/v3/ping, /api/v3/time, /api/v3/exchangeInfo (the listed symbols with
  their PRICE_FILTER, LOT_SIZE and NOTIONAL filters, which orders are checked against);
- signed (API key in X-MBX-APIKEY; HMAC-SHA256 hex of the query string and body in
  `signature`; `timestamp` within `recvWindow` of the emulator's clock): POST, GET and
  DELETE /api/v3/order, GET /api/v3/openOrders, /api/v3/allOrders, /api/v3/myTrades,
  /api/v3/account.

Orders are MARKET or LIMIT (GTC, IOC, FOK). A client order id is taken once for the
emulator's whole life: a second order with it is refused as a duplicate, also after the
first has ended (stricter than Binance, which frees an id once its order has ended). Each
symbol has a bid and an ask the test sets, with unlimited size: a MARKET order and a
crossing LIMIT fill at once, in full, at that price; a LIMIT that does not cross rests
(IOC and FOK expire) and fills only when the test says so (`fill`), never by a price move.
The fee (0.1% by default) is taken from what the order receives: the base asset for a
buy, the quote asset for a sell, as on Binance. Balance a resting order needs is locked.

Faults the test injects: a request processed but its answer lost (the connection closed),
an answer delayed, 429/418/5xx answers that process nothing, a ban, and the emulator
stopping and listening again on the same port with all its state (orders, trades,
balances, client order ids taken), as an exchange keeps its state across its own restart.

Not emulated: websockets (user data streams), other order types (LIMIT_MAKER, stops, OCO,
SOR), cancel-replace, request weights and order rate limits (beyond injected 429s),
self-trade prevention, the margin/futures/wallet ("sapi") APIs. ccxt must be told not to
call the latter on its own: CCXT_OPTIONS.
"""

import asyncio
import dataclasses
import hashlib
import hmac
import http
import math
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web

from harness.fake_binance import _Market, _now_ms, _spot_market
from harness.fake_venue import HOST, FakeVenue

# Credentials the emulator knows by default; nothing secret about them.
API_KEY = "fake-binance-spot-key"
API_SECRET = "fake-binance-spot-secret"  # noqa: S105

# What ccxt's binance is told beyond the service's OPTIONS (spot markets only): with keys
# set, load_markets would also read currencies and margin pairs from the wallet and margin
# APIs ("sapi"), which are not emulated here.
CCXT_OPTIONS: dict[str, Any] = {"fetchCurrencies": False, "fetchMargins": False}

FEE_RATE = Decimal("0.001")
RECV_WINDOW_MS = 5000  # Binance's default when a request sends none
MAX_RECV_WINDOW_MS = 60000
AHEAD_MS = 1000  # how far ahead of the server's clock Binance lets a timestamp be
# A stopping server waits this long for answers under way (delayed ones) before it drops them.
SHUTDOWN_TIMEOUT = 2.0
LIST_LIMIT, MAX_LIST_LIMIT = 500, 1000  # allOrders and myTrades
CLIENT_ORDER_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
NUMBER = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
EIGHT = Decimal("0.00000001")
ZERO = Decimal(0)
OPEN = ("NEW", "PARTIALLY_FILLED")

T = TypeVar("T")
Amount = Decimal | str | int | float  # what the test passes; kept exact through str
Json = Any


@dataclass
class Order:
    """An order as the emulator holds it (`orders()` gives copies)."""

    order_id: int
    client_order_id: str
    symbol: str  # Binance's id: BTCUSDT
    side: str  # BUY, SELL
    type: str  # MARKET, LIMIT
    time_in_force: str  # GTC, IOC, FOK (GTC for MARKET, as Binance reports it)
    price: Decimal  # 0 for MARKET
    orig_qty: Decimal
    orig_quote_qty: Decimal  # quoteOrderQty of a MARKET order, else 0
    time: int
    update_time: int
    status: str = "NEW"  # NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED
    executed_qty: Decimal = ZERO
    quote_qty: Decimal = ZERO  # cummulativeQuoteQty
    locked: Decimal = ZERO  # balance still held for it (quote asset for a buy, base for a sell)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True)
class Trade:
    trade_id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool


@dataclass
class _Book(_Market):
    """A listed symbol and its top of book (unlimited size at each price)."""

    bid: Decimal | None = None
    ask: Decimal | None = None


@dataclass
class _Fault:
    kind: Literal["fail", "lose", "delay"]
    match: str | None  # a path, a method, "METHOD /path", or None for any request
    times: int
    status: int = 0
    code: int | None = None
    msg: str | None = None
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.match in (None, method, path, f"{method} {path}")


class _Refused(Exception):
    """An answer of Binance's error shape."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def _n(value: Decimal) -> str:
    return f"{value:.8f}"


def _decimal(value: Amount) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _mandatory(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if value == "":
        raise _Refused(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _number(params: dict[str, str], name: str) -> Decimal:
    value = _mandatory(params, name)
    if not NUMBER.match(value):
        raise _Refused(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{NUMBER.pattern}'.")
    return Decimal(value)


def _integer(params: dict[str, str], name: str) -> int:
    value = _mandatory(params, name)
    if not value.isdigit():
        raise _Refused(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(value)


def _optional(parse: Callable[[dict[str, str], str], T], params: dict[str, str], name: str) -> T | None:
    return parse(params, name) if name in params else None


def _choice(params: dict[str, str], name: str, allowed: Iterable[str], code: int, msg: str) -> str:
    value = _mandatory(params, name)
    if value not in allowed:
        raise _Refused(code, msg)
    return value


# Per filter: its lowest value, highest value and step (a multiple of which above the lowest).
_BOUNDS = {
    "PRICE_FILTER": ("minPrice", "maxPrice", "tickSize"),
    "LOT_SIZE": ("minQty", "maxQty", "stepSize"),
    "NOTIONAL": ("minNotional", "maxNotional", None),
}


def _filter(market: _Market, kind: str) -> dict[str, Decimal]:
    """One of the filters exchangeInfo lists for the symbol, as numbers: orders are
    checked against exactly what ccxt was told."""
    [found] = [each for each in _spot_market(market)["filters"] if each["filterType"] == kind]
    return {key: Decimal(value) for key, value in found.items() if key != "filterType"}


def _unsigned(raw: str) -> tuple[str | None, str]:
    """The `signature` parameter of a query string or body, and the rest as sent."""
    signature, kept = None, []
    for part in raw.split("&") if raw else []:
        if part.startswith("signature="):
            signature = part.removeprefix("signature=")
        else:
            kept.append(part)
    return signature, "&".join(kept)


def _check(market: _Market, kind: str, value: Decimal) -> None:
    rule, (low, high, step) = _filter(market, kind), _BOUNDS[kind]
    if not rule[low] <= value <= rule[high] or (step is not None and (value - rule[low]) % rule[step]):
        raise _Refused(-1013, f"Filter failure: {kind}")


def _window(params: dict[str, str], now: int) -> None:
    timestamp = _integer(params, "timestamp")
    window = _optional(_integer, params, "recvWindow") or RECV_WINDOW_MS
    if window > MAX_RECV_WINDOW_MS:
        raise _Refused(-1131, "recvWindow must be less than 60000")
    if timestamp > now + AHEAD_MS:
        raise _Refused(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - timestamp > window:
        raise _Refused(-1021, "Timestamp for this request is outside of the recvWindow.")


def _limited(items: list[T], params: dict[str, str], from_start: bool) -> list[T]:
    """The first `limit` (from an id on) or the latest."""
    count = min(_optional(_integer, params, "limit") or LIST_LIMIT, MAX_LIST_LIMIT)
    return items[:count] if from_start else items[-count:]


class FakeBinanceSpot(FakeVenue[str]):
    """The emulator; use `running_spot()` (a context manager) or start/stop. Every method
    a test calls runs on the emulator's loop, bounded."""

    def __init__(
        self,
        symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT"),
        *,
        api_key: str = API_KEY,
        secret: str = API_SECRET,
        fee_rate: Decimal = FEE_RATE,
    ) -> None:
        super().__init__("fake-binance-spot")
        self.api_key, self.secret, self.fee_rate = api_key, secret, fee_rate
        self._books: dict[str, _Book] = {}
        for symbol in symbols:
            base, quote = symbol.split("/")
            self._books[base + quote] = _Book(base, quote)
        self.signed_requests = 0  # signed requests let through (key, signature and timestamp good)
        self.bad_signatures = 0  # signed requests refused for a bad or missing signature
        self._orders: dict[int, Order] = {}
        self._by_client_id: dict[str, int] = {}  # never emptied: an id is taken for good
        self._trades: list[Trade] = []
        self._free: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}
        self._next_order_id, self._next_trade_id = 1001, 5001
        self._faults: list[_Fault] = []
        self._banned_until = 0.0  # the loop's clock
        self._clock_offset_ms = 0
        self._routes: dict[tuple[str, str], tuple[bool, Callable[[dict[str, str]], Json]]] = {
            ("GET", "/api/v3/ping"): (False, lambda _: {}),
            ("GET", "/api/v3/time"): (False, lambda _: {"serverTime": self._now()}),
            ("GET", "/api/v3/exchangeInfo"): (False, self._exchange_info),
            ("POST", "/api/v3/order"): (True, self._new_order),
            ("GET", "/api/v3/order"): (True, self._query_order),
            ("DELETE", "/api/v3/order"): (True, self._cancel_order),
            ("GET", "/api/v3/openOrders"): (True, self._open_orders),
            ("GET", "/api/v3/allOrders"): (True, self._all_orders),
            ("GET", "/api/v3/myTrades"): (True, self._my_trades),
            ("GET", "/api/v3/account"): (True, self._account),
        }

    # -- life cycle ---------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        # One route for every path: paths not emulated are logged too (answered 404), so a
        # test sees what ccxt asked for that is missing here.
        app.router.add_route("*", "/{tail:.*}", self._entry)

    async def _serve(self) -> None:
        """FakeVenue's, on the port it had before if any (SO_REUSEADDR: the connections
        the last listener closed may still hold it in TIME_WAIT)."""
        app = web.Application()
        self.add_routes(app)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        listener = socket.socket()
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, self.port))  # port 0 the first time: the kernel's pick
            await web.SockSite(runner, listener).start()
        except BaseException:
            listener.close()
            await runner.cleanup()
            raise
        self.port = int(listener.getsockname()[1])
        self._runner = runner

    def stop_listening(self) -> None:
        """Close the port and every open connection (answers under way get SHUTDOWN_TIMEOUT
        to finish); the state stays. Connecting is refused until `start_listening`."""
        if self._runner is not None:
            self._call(self._shutdown())

    def start_listening(self) -> None:
        """Listen again on the same port, with the state as it was."""
        if self._runner is None:
            self._call(self._serve())

    def restart(self) -> None:
        self.stop_listening()
        self.start_listening()

    @property
    def symbols(self) -> list[str]:
        """The symbols it lists (ccxt's unified ones)."""
        return [f"{book.base}/{book.quote}" for book in self._books.values()]

    # -- what a test sets ---------------------------------------------------------------

    def set_price(self, symbol: str, bid: Amount | None, ask: Amount | None) -> None:
        """The price a sell (bid) and a buy (ask) fill at; None: nothing on that side (a
        MARKET order then expires unfilled)."""

        def change() -> None:
            book = self._books[symbol.replace("/", "")]
            book.bid = None if bid is None else _decimal(bid)
            book.ask = None if ask is None else _decimal(ask)

        self._on_loop(change)

    def set_balance(self, asset: str, free: Amount) -> None:
        """The free balance of `asset` (what is locked for resting orders stays)."""

        def change() -> None:
            self._free[asset] = _decimal(free)

        self._on_loop(change)

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        """Free and locked."""
        return self._on_loop(lambda: (self._free.get(asset, ZERO), self._locked.get(asset, ZERO)))

    def shift_clock(self, ms: int) -> None:
        """Run the emulator's clock `ms` ahead (negative: behind) of this machine's."""

        def change() -> None:
            self._clock_offset_ms = ms

        self._on_loop(change)

    def fill(self, client_order_id: str, qty: Amount, price: Amount | None = None) -> Trade:
        """Fill `qty` of a resting order, as a maker, at `price` (its own by default; a
        buy's no higher, since only that much is locked): one trade, a new trade id."""

        def execute() -> Trade:
            order = self._resting(client_order_id)
            amount = _decimal(qty)
            at = order.price if price is None else _decimal(price)
            if not ZERO < amount <= order.orig_qty - order.executed_qty:
                raise ValueError(f"{client_order_id}: {amount} is not within what remains to fill")
            if (at > order.price) if order.side == "BUY" else (at < order.price):
                raise ValueError(f"{client_order_id}: {at} is worse than the order's price")
            return self._execute(order, amount, at, maker=True)

        return self._on_loop(execute)

    def expire(self, client_order_id: str) -> None:
        """End a resting order as EXPIRED (as Binance does, e.g. on self-trade prevention)."""

        def end() -> None:
            self._end(self._resting(client_order_id), "EXPIRED")

        self._on_loop(end)

    # -- what a test reads --------------------------------------------------------------

    def orders(self) -> list[Order]:
        """Every order it holds, oldest first (copies)."""
        return self._on_loop(lambda: [dataclasses.replace(order) for order in self._orders.values()])

    def order(self, client_order_id: str) -> Order:
        """The order of that client order id (a copy); KeyError if none."""
        return self._on_loop(lambda: dataclasses.replace(self._orders[self._by_client_id[client_order_id]]))

    def trades(self) -> list[Trade]:
        """Every trade, oldest first."""
        return self._on_loop(lambda: list(self._trades))

    # -- faults -------------------------------------------------------------------------
    # `match` is a path ("/api/v3/order"), a method ("POST"), both ("POST /api/v3/order"),
    # or None for any request. Note that aiohttp (under ccxt) sends an idempotent request
    # (GET, DELETE) once more, by itself, when a kept-alive connection ends unanswered.

    def lose_next_answer(self, match: str | None = None, times: int = 1) -> None:
        """The next `times` matching requests are processed (an order is placed, cancelled),
        then their connection is closed without an answer."""
        self._inject(_Fault("lose", match, times))

    def delay_next(self, seconds: float, match: str | None = None, times: int = 1) -> None:
        """The next `times` matching requests are processed at once and answered
        `seconds` later (a client with a shorter timeout gives up first)."""
        self._inject(_Fault("delay", match, times, seconds=seconds))

    def fail_next(
        self, status: int, times: int = 1, code: int | None = None, msg: str | None = None, match: str | None = None
    ) -> None:
        """The next `times` matching requests are answered `status` and not processed: 429
        and 418 with Binance's -1003 and a Retry-After header; any other status with
        {"code": code, "msg": msg} if `code` is given, else with the status's reason as
        plain text (as a gateway in front of the exchange answers)."""
        if status in (418, 429) and code is None:
            code, msg = -1003, msg or _too_many()
        self._inject(_Fault("fail", match, times, status=status, code=code, msg=msg))

    def ban(self, seconds: float) -> None:
        """For `seconds` every request is answered 418 with -1003 (an IP ban)."""

        def change() -> None:
            self._banned_until = asyncio.get_running_loop().time() + seconds

        self._on_loop(change)

    def _inject(self, fault: _Fault) -> None:
        self._on_loop(lambda: self._faults.append(fault))

    def _take(self, kind: Literal["fail", "lose", "delay"], method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.kind == kind and fault.matches(method, path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- the HTTP side ------------------------------------------------------------------

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        self.requests.append(f"{method} {path}")
        now = asyncio.get_running_loop().time()
        if now < self._banned_until:
            until_ms = self._now() + int((self._banned_until - now) * 1000)
            msg = (
                f"Way too many requests; IP({HOST}) banned until {until_ms}. "
                "Please use the websocket for live updates to avoid bans."
            )
            return _error(418, -1003, msg, retry_after=math.ceil(self._banned_until - now))
        failure = self._take("fail", method, path)
        if failure is not None:
            if failure.code is None:
                return web.Response(status=failure.status, text=http.HTTPStatus(failure.status).phrase)
            return _error(failure.status, failure.code, failure.msg or "", retry_after=1)
        route = self._routes.get((method, path))
        if route is None:
            return web.Response(status=404, text="Not Found")
        signed, handler = route
        query, body = request.rel_url.raw_query_string, await request.text()
        try:
            params = self._authenticated(request, query, body) if signed else dict(parse_qsl(query))
            answer: web.StreamResponse = web.json_response(handler(params))
        except _Refused as refused:
            answer = _error(refused.status, refused.code, refused.msg)
        delay = self._take("delay", method, path)
        if delay is not None:
            await asyncio.sleep(delay.seconds)
        if self._take("lose", method, path) is not None and request.transport is not None:
            request.transport.close()  # aiohttp ignores the answer it then cannot write
        return answer

    def _authenticated(self, request: web.Request, query: str, body: str) -> dict[str, str]:
        key = request.headers.get("X-MBX-APIKEY", "")
        if key == "":
            raise _Refused(-2014, "API-key format invalid.", 401)
        if key != self.api_key:
            raise _Refused(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        # Binance signs the query string followed by the body, each as sent.
        (in_query, query_rest), (in_body, body_rest) = _unsigned(query), _unsigned(body)
        signature = in_query or in_body
        expected = hmac.new(self.secret.encode(), (query_rest + body_rest).encode(), hashlib.sha256).hexdigest()
        if signature is None or not hmac.compare_digest(signature.lower(), expected):
            self.bad_signatures += 1
            raise _Refused(-1022, "Signature for this request is not valid.", 401)
        params = dict(parse_qsl(query_rest) + parse_qsl(body_rest))
        _window(params, self._now())
        self.signed_requests += 1
        return params

    # -- the API ------------------------------------------------------------------------

    def _exchange_info(self, _: dict[str, str]) -> Json:
        return {
            "timezone": "UTC",
            "serverTime": self._now(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [_spot_market(book) for book in self._books.values()],
        }

    def _new_order(self, params: dict[str, str]) -> Json:
        book = self._book(params)
        side = _choice(params, "side", ("BUY", "SELL"), -1117, "Invalid side.")
        kind = _choice(params, "type", ("MARKET", "LIMIT"), -1116, "Invalid orderType.")
        client_order_id = params.get("newClientOrderId") or uuid.uuid4().hex[:22]
        if not CLIENT_ORDER_ID.match(client_order_id):
            legal = CLIENT_ORDER_ID.pattern
            raise _Refused(
                -1100, f"Illegal characters found in parameter 'newClientOrderId'; legal range is '{legal}'."
            )
        if client_order_id in self._by_client_id:
            raise _Refused(-2010, "Duplicate order sent.")
        answer_type = params.get("newOrderRespType", "FULL")
        quote_qty = ZERO
        if kind == "LIMIT":
            time_in_force = _choice(params, "timeInForce", ("GTC", "IOC", "FOK"), -1115, "Invalid timeInForce.")
            price, qty = _number(params, "price"), _number(params, "quantity")
            _check(book, "PRICE_FILTER", price)
            at: Decimal | None = price
        else:
            if "timeInForce" in params:
                raise _Refused(-1106, "Parameter 'timeInForce' sent when not required.")
            time_in_force, price = "GTC", ZERO
            at = book.ask if side == "BUY" else book.bid
            qty, quote_qty = self._market_qty(params, book, at)
        _check(book, "LOT_SIZE", qty)
        if at is not None:
            _check(book, "NOTIONAL", qty * at)
        # What it holds: the quote asset a buy pays (at its price, or at the ask), the base a sell gives.
        asset, need = (book.quote, qty * (at or ZERO)) if side == "BUY" else (book.base, qty)
        if self._free.get(asset, ZERO) < need:
            raise _Refused(-2010, "Account has insufficient balance for requested action.")
        now = self._now()
        order = Order(
            self._next_order_id, client_order_id, book.id, side, kind, time_in_force, price, qty, quote_qty, now, now
        )
        self._next_order_id += 1
        self._orders[order.order_id] = order
        self._by_client_id[client_order_id] = order.order_id
        self._adjust(self._free, asset, -need)
        self._adjust(self._locked, asset, need)
        order.locked = need
        return _placed_answer(order, answer_type, self._match(order, book))

    def _market_qty(self, params: dict[str, str], book: _Book, at: Decimal | None) -> tuple[Decimal, Decimal]:
        """A MARKET order's quantity, given or bought/sold for quoteOrderQty at `at`."""
        qty, quote_qty = _optional(_number, params, "quantity"), _optional(_number, params, "quoteOrderQty")
        if qty is not None and quote_qty is None:
            return qty, ZERO
        if quote_qty is None or qty is not None:
            raise _Refused(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        step = _filter(book, "LOT_SIZE")["stepSize"]
        # Nothing on that side to price it at: quantity 0, which LOT_SIZE refuses.
        return (quote_qty / at // step * step if at else ZERO), quote_qty

    def _match(self, order: Order, book: _Book) -> list[Trade]:
        """What a new order does at once: fill in full at the touch if it crosses (a MARKET
        always does, if that side has a price), else rest (GTC) or expire (IOC, FOK)."""
        touch = book.ask if order.side == "BUY" else book.bid
        if touch is not None and (
            order.type == "MARKET" or (order.price >= touch if order.side == "BUY" else order.price <= touch)
        ):
            return [self._execute(order, order.orig_qty, touch, maker=False)]
        if order.type == "MARKET" or order.time_in_force != "GTC":
            self._end(order, "EXPIRED")
        return []

    def _execute(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> Trade:
        book = self._books[order.symbol]
        quote = qty * price
        # A buy pays quote from what it locked and receives base, a sell the other way;
        # the fee comes off what it receives.
        paid, spent, received, got = (
            (book.quote, quote, book.base, qty) if order.side == "BUY" else (book.base, qty, book.quote, quote)
        )
        fee = (got * self.fee_rate).quantize(EIGHT)
        order.locked -= spent
        self._adjust(self._locked, paid, -spent)
        self._adjust(self._free, received, got - fee)
        order.executed_qty += qty
        order.quote_qty += quote
        order.update_time = self._now()
        trade = Trade(
            self._next_trade_id,
            order.order_id,
            order.client_order_id,
            order.symbol,
            order.side,
            price,
            qty,
            quote,
            fee,
            received,
            order.update_time,
            maker,
        )
        self._next_trade_id += 1
        self._trades.append(trade)
        if order.executed_qty == order.orig_qty:
            self._end(order, "FILLED")
        else:
            order.status = "PARTIALLY_FILLED"
        return trade

    @staticmethod
    def _adjust(balances: dict[str, Decimal], asset: str, amount: Decimal) -> None:
        balances[asset] = balances.get(asset, ZERO) + amount

    def _end(self, order: Order, status: str) -> None:
        """FILLED, CANCELED or EXPIRED: what it still held is free again."""
        book = self._books[order.symbol]
        asset = book.quote if order.side == "BUY" else book.base
        self._adjust(self._locked, asset, -order.locked)
        self._adjust(self._free, asset, order.locked)
        order.locked = ZERO
        order.status = status
        order.update_time = self._now()

    def _query_order(self, params: dict[str, str]) -> Json:
        order = self._find(params)
        if order is None:
            raise _Refused(-2013, "Order does not exist.")
        return _order_answer(order)

    def _cancel_order(self, params: dict[str, str]) -> Json:
        order = self._find(params)
        if order is None or not order.is_open:
            raise _Refused(-2011, "Unknown order sent.")
        self._end(order, "CANCELED")
        # As on Binance, "clientOrderId" names the cancel (its newClientOrderId, or a new
        # id), "origClientOrderId" the order.
        cancel_id = params.get("newClientOrderId") or uuid.uuid4().hex[:22]
        answer = _placed_answer(order, "RESULT", []) | {
            "origClientOrderId": order.client_order_id,
            "clientOrderId": cancel_id,
        }
        del answer["workingTime"]
        return answer

    def _open_orders(self, params: dict[str, str]) -> Json:
        symbol = self._book(params).id if "symbol" in params else None
        return [_order_answer(each) for each in self._orders.values() if each.is_open and symbol in (None, each.symbol)]

    def _all_orders(self, params: dict[str, str]) -> Json:
        symbol, start = self._book(params).id, _optional(_integer, params, "orderId")
        found = [each for each in self._orders.values() if each.symbol == symbol and each.order_id >= (start or 0)]
        found = [each for each in found if self._in_time(params, each.time)]
        return [_order_answer(each) for each in _limited(found, params, start is not None)]

    def _my_trades(self, params: dict[str, str]) -> Json:
        symbol, order_id = self._book(params).id, _optional(_integer, params, "orderId")
        start = _optional(_integer, params, "fromId")
        found = [
            each
            for each in self._trades
            if each.symbol == symbol
            and order_id in (None, each.order_id)
            and each.trade_id >= (start or 0)
            and self._in_time(params, each.time)
        ]
        return [_trade_answer(each) for each in _limited(found, params, start is not None)]

    def _account(self, params: dict[str, str]) -> Json:
        assets = dict.fromkeys([a for book in self._books.values() for a in (book.base, book.quote)])
        assets |= dict.fromkeys([*self._free, *self._locked])
        balances = [
            {"asset": asset, "free": _n(self._free.get(asset, ZERO)), "locked": _n(self._locked.get(asset, ZERO))}
            for asset in assets
        ]
        if params.get("omitZeroBalances") == "true":
            balances = [each for each in balances if Decimal(each["free"]) or Decimal(each["locked"])]
        rate = _n(self.fee_rate)
        return {
            "makerCommission": int(self.fee_rate * 10000),
            "takerCommission": int(self.fee_rate * 10000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": _n(ZERO), "seller": _n(ZERO)},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self._now(),
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 1,
        }

    # -- helpers ------------------------------------------------------------------------

    def _now(self) -> int:
        return _now_ms() + self._clock_offset_ms

    def _on_loop(self, work: Callable[[], T]) -> T:
        async def run() -> T:
            return work()

        return self._call(run())

    def _book(self, params: dict[str, str]) -> _Book:
        book = self._books.get(_mandatory(params, "symbol"))
        if book is None:
            raise _Refused(-1121, "Invalid symbol.")
        return book

    def _find(self, params: dict[str, str]) -> Order | None:
        """The order named by orderId (first, as on Binance) or origClientOrderId, of the
        request's symbol."""
        symbol, order_id = self._book(params).id, _optional(_integer, params, "orderId")
        client_order_id = params.get("origClientOrderId")
        if order_id is None and not client_order_id:
            raise _Refused(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order_id is None:
            order_id = self._by_client_id.get(client_order_id or "")
        order = self._orders.get(order_id or 0)
        return order if order is not None and order.symbol == symbol else None

    def _resting(self, client_order_id: str) -> Order:
        order = self._orders.get(self._by_client_id.get(client_order_id, 0))
        if order is None or not order.is_open:
            raise ValueError(f"no open order {client_order_id!r}")
        return order

    @staticmethod
    def _in_time(params: dict[str, str], time: int) -> bool:
        start, end = _optional(_integer, params, "startTime"), _optional(_integer, params, "endTime")
        return (start is None or time >= start) and (end is None or time <= end)


def _too_many() -> str:
    return (
        f"Too many requests; current limit of IP({HOST}) is 6000 requests per minute. "
        "Please use the websocket for live updates to avoid polling the API."
    )


def _error(status: int, code: int, msg: str, retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None and status in (418, 429) else None
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


def _order_answer(order: Order) -> Json:
    """GET /api/v3/order's shape (openOrders and allOrders list the same)."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": _n(order.price),
        "origQty": _n(order.orig_qty),
        "executedQty": _n(order.executed_qty),
        "cummulativeQuoteQty": _n(order.quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "stopPrice": _n(ZERO),
        "icebergQty": _n(ZERO),
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": True,
        "workingTime": order.time,
        "origQuoteOrderQty": _n(order.orig_quote_qty),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def _placed_answer(order: Order, answer_type: str, fills: list[Trade]) -> Json:
    """POST /api/v3/order's shape for newOrderRespType ACK, RESULT or FULL (the default
    for MARKET and LIMIT, with the fills this request made)."""
    answer: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": order.update_time,
    }
    if answer_type == "ACK":
        return answer
    answer |= {
        "price": _n(order.price),
        "origQty": _n(order.orig_qty),
        "executedQty": _n(order.executed_qty),
        "origQuoteOrderQty": _n(order.orig_quote_qty),
        "cummulativeQuoteQty": _n(order.quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force,
        "type": order.type,
        "side": order.side,
        "workingTime": order.time,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if answer_type == "FULL":
        answer["fills"] = [
            {
                "price": _n(fill.price),
                "qty": _n(fill.qty),
                "commission": _n(fill.commission),
                "commissionAsset": fill.commission_asset,
                "tradeId": fill.trade_id,
            }
            for fill in fills
        ]
    return answer


def _trade_answer(trade: Trade) -> Json:
    return {
        "symbol": trade.symbol,
        "id": trade.trade_id,
        "orderId": trade.order_id,
        "orderListId": -1,
        "price": _n(trade.price),
        "qty": _n(trade.qty),
        "quoteQty": _n(trade.quote_qty),
        "commission": _n(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": trade.time,
        "isBuyer": trade.side == "BUY",
        "isMaker": trade.is_maker,
        "isBestMatch": True,
    }


@contextmanager
def running_spot(
    symbols: Iterable[str] = ("BTC/USDT", "ETH/USDT"), api_key: str = API_KEY, secret: str = API_SECRET
) -> Iterator[FakeBinanceSpot]:
    """A started emulator listing `symbols`, stopped however the block ends."""
    fake = FakeBinanceSpot(symbols, api_key=api_key, secret=secret)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
