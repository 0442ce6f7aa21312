"""A live exchange account through ccxt (its async REST API): the Venue the live
executor uses. Imported only when LIVE_EXCHANGES names an exchange: ccxt costs about a
second and 80 MB to import.

ccxt's errors become the executor's three kinds: Refused (the exchange said no to the
order, for good), Busy (slow down: nothing was done) and Unknown (anything else: the
order may or may not be there, so it is looked up by its client order id)."""

import importlib
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

from app.core.engine import ExchangeFill, ExchangeReport
from app.core.order import Order
from app.core.values import ZERO, exact
from app.core.vocabulary import Liquidity, OrderStatus, OrderType
from app.venues.ccxt_exchange import OPTIONS
from app.venues.urls import rebase
from app.venues.venue import Busy, Foreign, Refused, Seen, Unknown

T = TypeVar("T")

# Per exchange, what trading needs beyond the feeds' options: Binance would otherwise
# read its wallet and margin APIs at every load of the markets.
LIVE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchCurrencies": False, "fetchMargins": False},
}
# How long to wait after the exchange refused our credentials before trying again.
CREDENTIALS_RETRY_SECONDS = 30.0
# An order's end as ccxt's unified statuses say it (open and closed: not ended; a closed
# order ends by its fills).
_ENDED = {"canceled": OrderStatus.CANCELED, "expired": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED}


class CcxtVenue:
    """One exchange account through ccxt's exchange class of that id."""

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange  # ccxt's, as set up (read by tests)
        self._errors = importlib.import_module("ccxt.base.errors")

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
            exchange.set_sandbox_mode(True)
        return cls(exchange)

    async def send(self, order: Order, client_order_id: str) -> str | None:
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if order.type == OrderType.LIMIT:
            params["timeInForce"] = order.time_in_force.value
        try:
            placed = await self._call(
                self.exchange.create_order(
                    order.symbol, order.type.lower(), order.side.lower(), order.qty, order.limit_price, params
                )
            )
        except self._errors.OrderNotFound as error:  # an InvalidOrder, yet says nothing of this one
            raise Unknown(str(error)) from None
        except self._errors.InvalidOrder as error:
            if "duplicate" in str(error).lower():
                return None  # it has one with this client order id: a send before this one got there
            raise Refused(str(error)) from None
        except (self._errors.InsufficientFunds, self._errors.BadRequest, self._errors.OperationRejected) as error:
            raise Refused(str(error)) from None
        return str(placed["id"])

    async def look(self, order: Order, client_order_id: str) -> Seen | None:
        try:
            found = await self._call(self.exchange.fetch_order(None, order.symbol, {"clientOrderId": client_order_id}))
        except self._errors.OrderNotFound:
            return None
        exchange_order_id = str(found["id"])
        filled = exact(float(found.get("filled") or 0))
        fills: list[ExchangeFill] = []
        if filled > 0:
            trades = await self._call(
                self.exchange.fetch_my_trades(order.symbol, None, None, {"orderId": exchange_order_id})
            )
            fills = [_fill(order.symbol, trade) for trade in trades if str(trade.get("order")) == exchange_order_id]
        ended = _ENDED.get(str(found.get("status")))
        if ended is not None and sum((fill.qty for fill in fills), ZERO) < filled:
            ended = None  # its trades are not all listed yet: its end waits for them
        detail = None if ended is None else f"{ended.lower()} by the exchange (status {found.get('status')})"
        return Seen(exchange_order_id, ExchangeReport(fills, ended, detail))

    async def cancel(self, order: Order, client_order_id: str) -> None:
        try:
            await self._call(self.exchange.cancel_order(None, order.symbol, {"clientOrderId": client_order_id}))
        except self._errors.OrderNotFound:
            return  # not open there (ended, or never placed): a look says which

    async def open_orders(self, symbols: list[str]) -> list[Foreign]:
        found: list[Foreign] = []
        for symbol in symbols:
            for each in await self._call(self.exchange.fetch_open_orders(symbol)):
                client_id = each.get("clientOrderId")
                found.append(Foreign(symbol, str(each["id"]), None if client_id is None else str(client_id)))
        return found

    async def close(self) -> None:
        await self.exchange.close()

    async def _call(self, call: Awaitable[T]) -> T:
        """ccxt's errors that say nothing of an order itself, as the executor's kinds."""
        errors = self._errors
        try:
            return await call
        except (errors.DDoSProtection, errors.RateLimitExceeded) as error:
            raise Busy(str(error), _retry_after(self.exchange)) from None
        except errors.AuthenticationError as error:
            raise Busy(f"the exchange refused the credentials: {error}", CREDENTIALS_RETRY_SECONDS) from None
        except errors.NetworkError as error:
            raise Unknown(str(error) or type(error).__name__) from None
        except (errors.InvalidOrder, errors.InsufficientFunds, errors.BadRequest, errors.OperationRejected):
            raise  # about the order: the caller says what it means
        except errors.BaseError as error:
            raise Unknown(str(error) or type(error).__name__) from None


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


def _fill(symbol: str, trade: dict[str, Any]) -> ExchangeFill:
    """A ccxt trade as a fill: its fee in the quote asset (a fee in the base asset at the
    trade's price; in any other asset it is not counted here: the exchange's account
    shows it)."""
    price = exact(float(trade["price"]))
    base, _, quote = symbol.partition("/")
    fee = trade.get("fee") or {}
    cost = exact(float(fee.get("cost") or 0))
    currency = fee.get("currency")
    in_quote = cost if currency == quote else cost * price if currency == base else Decimal(0)
    timestamp = trade.get("timestamp")
    return ExchangeFill(
        trade_id=str(trade["id"]),
        qty=exact(float(trade["amount"])),
        price=price,
        fee=in_quote,
        liquidity=Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        ts=None if timestamp is None else int(timestamp) * 1_000,
    )
