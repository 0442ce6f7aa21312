"""A live exchange account through ccxt (its async REST API): the Venue the live
executor uses. Imported only when LIVE_EXCHANGES names an exchange: ccxt costs about a
second and 80 MB to import.

ccxt's errors become the executor's kinds: Refused (the exchange said no to the order,
for good), NotSent (no connection could be made: nothing reached it), Busy (slow down:
nothing was done) and Unknown (anything else: the order may or may not be there, so it
is looked up by its client order id). Their details never hold a URL's query (where
signatures and, on some exchanges, the API key travel) nor a credential."""

import importlib
import math
import re
import socket
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

from app.core.engine import ExchangeFill, ExchangeReport
from app.core.order import Order
from app.core.values import ZERO, exact
from app.core.vocabulary import Liquidity, OrderStatus, OrderType
from app.venues.ccxt_exchange import OPTIONS
from app.venues.feed_runner import UnknownExchange
from app.venues.urls import rebase
from app.venues.venue import Busy, Foreign, NotSent, Refused, Seen, Unknown

T = TypeVar("T")

# Per exchange, what trading needs beyond the feeds' options: Binance would otherwise
# read its wallet and margin APIs at every load of the markets; a signed request older
# than recvWindow (ms) when it arrives is refused by the exchange, which bounds how long
# an unanswered send can still take effect (app.venues.live.QUIET_SECONDS).
LIVE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchCurrencies": False, "fetchMargins": False, "recvWindow": 5_000},
}
# Per exchange, the parameter that pages an order's trades by trade id (from that id on,
# oldest first), and the most trades a page holds: an order with more trades than a
# page is read page after page. An exchange not named here is read in one page.
TRADE_PAGING: dict[str, tuple[str, int]] = {"binance": ("fromId", 1000)}
# The most pages of one order's trades read in one look: the rest waits for the next.
MAX_TRADE_PAGES = 20
# How long to wait after the exchange refused our credentials before trying again.
CREDENTIALS_RETRY_SECONDS = 30.0
# An order's end as ccxt's unified statuses say it (open and closed: not ended; a closed
# order ends by its fills).
_ENDED = {"canceled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED}
_QUERY = re.compile(r"(\w+://[^\s?#]+)[?#]\S*")


class CcxtVenue:
    """One exchange account through ccxt's exchange class of that id."""

    def __init__(self, exchange: Any, trade_paging: tuple[str, int] | None = None) -> None:
        self.exchange = exchange  # ccxt's, as set up (read by tests)
        # How its trades are paged (TRADE_PAGING's, unless given).
        self.trade_paging = trade_paging or TRADE_PAGING.get(str(exchange.id))
        self._errors = importlib.import_module("ccxt.base.errors")
        self._aiohttp = importlib.import_module("aiohttp")

    @classmethod
    def connect(
        cls, exchange_id: str, api_key: str, secret: str, *, sandbox: bool, base_url: str | None, timeout_ms: int
    ) -> "CcxtVenue":
        """The account behind these credentials: at `base_url` (scheme, host and port of
        every address replaced), else on the exchange's sandbox if `sandbox`, else real;
        each call answered within `timeout_ms` or failed as Unknown."""
        module = importlib.import_module("ccxt.async_support")
        options = {**OPTIONS.get(exchange_id, {}), **LIVE_OPTIONS.get(exchange_id, {})}
        exchange = getattr(module, exchange_id)(
            {"apiKey": api_key, "secret": secret, "enableRateLimit": True, "timeout": timeout_ms, "options": options}
        )
        if base_url is not None:
            exchange.urls["api"] = rebase(exchange.urls["api"], base_url)
        elif sandbox:
            try:
                if not exchange.urls.get("test"):
                    raise importlib.import_module("ccxt.base.errors").NotSupported(exchange_id)
                exchange.set_sandbox_mode(True)
            except importlib.import_module("ccxt.base.errors").NotSupported:
                raise UnknownExchange(
                    f"LIVE_EXCHANGES: ccxt's {exchange_id} has no sandbox; trade it with "
                    f"LIVE_URL_{exchange_id.upper()} (a gateway of your own) or, for real money, "
                    f"LIVE_REAL_MONEY={exchange_id}"
                ) from None
        return cls(exchange)

    async def prepare(self, order: Order) -> None:
        await self._call(self.exchange.load_markets())
        self._check_steps(order)

    async def send(self, order: Order, client_order_id: str) -> str | None:
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if order.type == OrderType.LIMIT:
            params["timeInForce"] = order.time_in_force.value
        try:
            placed = await self._call(
                self.exchange.create_order(
                    order.symbol, order.type.lower(), order.side.lower(), order.qty, order.limit_price, params
                ),
                about_order=True,
            )
        except self._errors.OrderNotFound as error:  # an InvalidOrder, yet says nothing of this one
            raise Unknown(self._clean(error)) from None
        except self._errors.DuplicateOrderId:
            return None
        except self._errors.InvalidOrder as error:
            if "duplicate" in str(error).lower():  # Binance's -2010 "Duplicate order sent."
                return None  # it has one with this client order id: a send before this one got there
            raise Refused(self._clean(error)) from None
        except (self._errors.InsufficientFunds, self._errors.BadRequest, self._errors.OperationRejected) as error:
            raise Refused(self._clean(error)) from None
        placed_id = placed.get("id") if isinstance(placed, dict) else None
        return None if placed_id is None else str(placed_id)

    def _check_steps(self, order: Order) -> None:
        """Refused unless the quantity and price are on the exchange's steps: ccxt would
        round them (the quantity down, the price to the nearest tick), and the order the
        exchange holds would not be the one asked for."""
        symbol = order.symbol
        if symbol not in self.exchange.markets:
            raise Refused(f"the exchange does not list {symbol}")
        try:
            qty = float(self.exchange.amount_to_precision(symbol, order.qty))
            price = (
                None
                if order.limit_price is None
                else float(self.exchange.price_to_precision(symbol, order.limit_price))
            )
        except self._errors.BaseError as error:
            raise Refused(self._clean(error)) from None
        if qty != order.qty:
            raise Refused(f"qty {order.qty} is not a multiple of {symbol}'s quantity step at the exchange")
        if price != order.limit_price:
            raise Refused(f"limit_price {order.limit_price} is not a multiple of {symbol}'s price tick at the exchange")

    async def look(self, order: Order, client_order_id: str) -> Seen | None:
        try:
            found = await self._call(self.exchange.fetch_order(None, order.symbol, {"clientOrderId": client_order_id}))
        except self._errors.OrderNotFound:
            return None
        exchange_order_id = _text(found, "id")
        filled = _amount(found.get("filled") or 0, "filled")
        # Its trades are read only when it has filled more than this service has applied.
        known = order.filled_qty
        fills: list[ExchangeFill] = []
        if filled > known:
            trades = await self._trades(order.symbol, exchange_order_id)
            fills = [_fill(order.symbol, trade) for trade in trades if str(trade.get("order")) == exchange_order_id]
        ended = _ENDED.get(str(found.get("status")))
        if ended is not None and max(known, sum((fill.qty for fill in fills), ZERO)) < filled:
            ended = None  # its trades are not all listed yet: its end waits for them
        if ended == OrderStatus.REJECTED and (fills or known > 0):
            ended = OrderStatus.CANCELED  # what it filled stands: the rest is what ended
        detail = None if ended is None else f"{ended.lower()} by the exchange (status {found.get('status')})"
        return Seen(exchange_order_id, ExchangeReport(fills, ended, detail))

    async def _trades(self, symbol: str, exchange_order_id: str) -> list[Any]:
        """Every trade of one order (up to MAX_TRADE_PAGES pages), oldest first."""
        params: dict[str, Any] = {"orderId": exchange_order_id}
        paging = self.trade_paging
        if paging is None:
            return list(await self._call(self.exchange.fetch_my_trades(symbol, None, None, params)))
        name, size = paging
        found: list[Any] = []
        start = 0
        for _ in range(MAX_TRADE_PAGES):
            page = await self._call(self.exchange.fetch_my_trades(symbol, None, size, {**params, name: start}))
            found += page
            if len(page) < size:
                break
            last = _text(page[-1], "id")
            if not last.isdigit():
                raise Unknown(f"the exchange's trade id {last!r} is not a number to page from")
            start = int(last) + 1
        return found

    async def cancel(self, order: Order, client_order_id: str) -> None:
        try:
            await self._call(self.exchange.cancel_order(None, order.symbol, {"clientOrderId": client_order_id}))
        except self._errors.OrderNotFound:
            return  # not open there (ended, or never placed): a look says which

    async def open_orders(self, symbols: list[str]) -> list[Foreign]:
        await self._call(self.exchange.load_markets())
        found: list[Foreign] = []
        for symbol in symbols:
            if symbol not in self.exchange.markets:
                continue  # an allowlisted symbol this exchange does not list: no orders there
            for each in await self._call(self.exchange.fetch_open_orders(symbol)):
                client_id = each.get("clientOrderId")
                found.append(Foreign(symbol, _text(each, "id"), None if client_id is None else str(client_id)))
        return found

    async def balances(self) -> dict[str, Decimal]:
        found = await self._call(self.exchange.fetch_balance())
        free = found.get("free") if isinstance(found, dict) else None
        if not isinstance(free, dict):
            raise Unknown("the exchange's balances have no free amounts")
        # An amount that is not a finite number of zero or more is read as none free: one
        # odd asset must not leave every other unread.
        return {str(asset): _free(amount) for asset, amount in free.items()}

    async def close(self) -> None:
        await self.exchange.close()

    async def _call(self, call: Awaitable[T], *, about_order: bool = False) -> T:
        """ccxt's errors as the executor's kinds; those about an order itself are left to
        the caller of `send` (`about_order`), and are Unknown elsewhere."""
        errors = self._errors
        try:
            return await call
        except (errors.DDoSProtection, errors.RateLimitExceeded) as error:
            raise Busy(self._clean(error), _retry_after(self.exchange)) from None
        except errors.AuthenticationError as error:
            raise Busy(f"the exchange refused the request: {self._clean(error)}", CREDENTIALS_RETRY_SECONDS) from None
        except errors.NetworkError as error:
            cause = error.__cause__
            if isinstance(cause, self._aiohttp.ClientConnectorError | socket.gaierror):
                raise NotSent(self._clean(error)) from None  # no connection: nothing was sent
            raise Unknown(self._clean(error)) from None
        except (errors.InvalidOrder, errors.InsufficientFunds, errors.BadRequest, errors.OperationRejected) as error:
            if about_order or isinstance(error, errors.OrderNotFound):
                raise  # about the order: the caller says what it means
            raise Unknown(self._clean(error)) from None
        except errors.BaseError as error:
            raise Unknown(self._clean(error)) from None

    def _clean(self, error: BaseException) -> str:
        """An error's text with no URL query and no credential in it."""
        text = _QUERY.sub(r"\1", str(error)) or type(error).__name__
        for secret in (self.exchange.apiKey, self.exchange.secret):
            if secret:
                text = text.replace(secret, "***")
        return f"{type(error).__name__}: {text}"


def _retry_after(exchange: Any) -> float:
    """The exchange's Retry-After (seconds), else 1 s."""
    headers = getattr(exchange, "last_response_headers", None) or {}
    for name, value in dict(headers).items():
        if str(name).lower() == "retry-after":
            try:
                return max(1.0, float(value))
            except ValueError:
                break
    return 1.0


def _text(found: Any, key: str) -> str:
    value = found.get(key) if isinstance(found, dict) else None
    if value is None:
        raise Unknown(f"the exchange's answer has no {key}")
    return str(value)


def _amount(value: Any, what: str) -> Decimal:
    """A positive or zero finite number from ccxt (Unknown otherwise: an answer this
    service cannot read says nothing certain)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Unknown(f"the exchange's {what} is not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise Unknown(f"the exchange's {what} is not a finite amount: {value!r}")
    return exact(number)


def _free(amount: Any) -> Decimal:
    try:
        return _amount(amount or 0, "free amount")
    except Unknown:
        return ZERO


def _fill(symbol: str, trade: Any) -> ExchangeFill:
    """A ccxt trade as a fill: its fee in the quote asset (a fee in the base asset at the
    trade's price; in any other asset it is not counted here: the exchange's account
    shows it)."""
    if not isinstance(trade, dict):
        raise Unknown("the exchange's trade is not an object")
    price = _amount(trade.get("price"), "trade price")
    qty = _amount(trade.get("amount"), "trade amount")
    if price <= 0 or qty <= 0:
        raise Unknown(f"the exchange's trade has price {price} and amount {qty}")
    base, _, quote = symbol.partition("/")
    fee = trade.get("fee") or {}
    cost = _amount(fee.get("cost") or 0, "fee") if isinstance(fee, dict) else ZERO
    currency = fee.get("currency") if isinstance(fee, dict) else None
    in_quote = cost if currency == quote else cost * price if currency == base else Decimal(0)
    timestamp = trade.get("timestamp")
    return ExchangeFill(
        trade_id=_text(trade, "id"),
        qty=qty,
        price=price,
        fee=in_quote,
        liquidity=Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        ts=int(timestamp) * 1_000 if isinstance(timestamp, int | float) and math.isfinite(timestamp) else None,
    )
