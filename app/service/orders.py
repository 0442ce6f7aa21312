"""Order intake: the spec's lifecycle, from raw body to stored order, with its log events."""

import math
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

from anyio import to_thread
from pydantic import ValidationError

from app.core.balances import Holding, assets_of
from app.core.controls import Controls, TradingState
from app.core.errors import (
    DuplicateIntent,
    InstrumentNotAllowed,
    IntentRefused,
    InvalidIntent,
    InvalidQuery,
    InvalidQuote,
    OrderNotCancelable,
    OrderNotFound,
    RateLimited,
    ServiceError,
    StoreFull,
    StoreUnavailable,
    invalid_from_errors,
)
from app.core.fills import Costs, Fill, Quote, Working, exact, match
from app.core.ids import new_number
from app.ops.clock import iso_z, now_micros, to_micros
from app.ops.logs import EventLog, Fields
from app.ops.metrics import Metrics
from app.service.rate_limit import TokenBucket
from app.service.settings import Settings
from app.store.memory import (
    BALANCE_CUT,
    Execution,
    Order,
    OrderFilter,
    OrderKind,
    OrderStore,
    PositionView,
    StoredFill,
)
from app.web.schemas import Capabilities, OrderIntent, QuoteIn, TradingStateIn

FEATURES = (
    "paper_execution",
    "order_tracking",
    "cancel",
    "market_data_quotes",
    "fill_simulation",
    "positions",
    "time_in_force",
    "trading_state",
)
DURABLE_FEATURES = ("durable_store",)
P = ParamSpec("P")
T = TypeVar("T")


async def _call_inline(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return function(*args, **kwargs)


async def _call_in_thread(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    # A database call waits on I/O: in a worker thread, the event loop serves the
    # other requests meanwhile.
    return await to_thread.run_sync(lambda: function(*args, **kwargs))


class OrderService:
    def __init__(
        self,
        settings: Settings,
        store: OrderStore,
        events: EventLog,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = now_micros,
    ) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.metrics = Metrics() if metrics is None else metrics
        self.clock = clock
        self._cap = settings.order_cap(store.name)
        self._exchanges = frozenset(settings.allowed_exchanges)
        self._symbols = frozenset(settings.allowed_symbols)
        # One shared OrderKind per combination seen, so stored orders point at it
        # rather than each holding its own (bounded by the allowlists: 2 sides, 2 types).
        self._kinds: dict[OrderKind, OrderKind] = {}
        self._degraded_reason = _empty_allowlists_reason(self._exchanges, self._symbols)
        self._costs = Costs(settings.slippage_bps, settings.taker_fee_bps, settings.maker_fee_bps)
        # The in-memory store only takes a lock for a moment: calling it inline is
        # cheaper than a hop to a thread.
        self._store_call = _call_in_thread if store.blocking else _call_inline
        self._controls = Controls(settings.instrument_rules())
        self._bucket = (
            None
            if settings.max_intents_per_second is None
            else TokenBucket(
                settings.max_intents_per_second,
                settings.max_intents_burst or max(1, math.ceil(settings.max_intents_per_second)),
            )
        )
        self._features = [
            *FEATURES,
            *(DURABLE_FEATURES if store.blocking else ()),
            *(["instrument_rules"] if self._controls.rules else []),
            *(["rate_limit"] if self._bucket is not None else []),
        ]
        if settings.paper_balances is not None:
            assets = {asset for symbol in settings.allowed_symbols for asset in assets_of(symbol)}
            store.open_account(settings.paper_balances, assets, self._costs)
            self._features.append("paper_balances")
        if settings.trading_state is not None:
            # Start-up may halt trading, never resume it: a worker restarting with
            # TRADING_STATE=ACTIVE must not lift a halt an operator set at run time.
            store.set_trading_state(
                TradingState(settings.trading_state, "TRADING_STATE at start-up", clock()), only_stricter=True
            )

    async def submit_json(self, body: bytes, content_type: str | None = None) -> Order:
        """Check and store an intent given as a raw JSON body and its declared media type.

        The media type is checked here, with the body, so that its refusal is logged
        like every other refused intent.
        """
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait is not None:
                self._reject(
                    RateLimited(
                        f"More than MAX_INTENTS_PER_SECOND={self.settings.max_intents_per_second:g} order intents "
                        f"a second; retry after {wait} s",
                        wait,
                    ),
                    {},
                )
        try:
            if not is_json_media_type(content_type):
                # A browser may POST text/plain or a form to any address without asking
                # first (no CORS preflight); only JSON, or no type at all, is an intent.
                raise InvalidIntent(f"Content-Type must be application/json, not {content_type!r}")
            intent = OrderIntent.model_validate_json(body)
        except ValidationError as exc:
            self._reject(invalid_from_errors(exc.errors(), "order intent"), {})
        except InvalidIntent as error:
            self._reject(error, {})
        return await self.submit(intent)

    async def submit(self, intent: OrderIntent) -> Order:
        """Allowlists, then the duplicate key, then create: the spec's order of checks."""
        fields: Fields = {
            "idempotency_key": intent.idempotency_key,
            "exchange": intent.exchange,
            "symbol": intent.symbol,
            "side": intent.side,
            "qty": intent.qty,
            "type": intent.type,
        }
        self.events.info("Received order intent", fields)
        self._check_allowed(self._exchanges, intent.exchange, "Exchange", fields)
        self._check_allowed(self._symbols, intent.symbol, "Symbol", fields)

        kind = OrderKind(intent.exchange, intent.symbol, intent.side, intent.type, intent.time_in_force)
        order = Order(
            number=new_number(),
            idempotency_key=intent.idempotency_key,
            kind=self._kinds.setdefault(kind, kind),
            qty=intent.qty,
            limit_price=intent.limit_price,
            client_ts=None if intent.client_ts_utc is None else to_micros(intent.client_ts_utc),
            accepted_at=self.clock(),
        )
        try:
            stored, created, executions = await self.store.admit(
                order, self._match, self.clock(), self._cap, self._controls
            )
        except (StoreFull, IntentRefused) as error:
            self._reject(error, fields)
        except StoreUnavailable as error:
            # Not a refusal: whether the order was stored is unknown until a retry says.
            self.metrics.intent_rejected(error.code)
            self.events.warning("Order intent not answered", {**fields, "reason": error.detail})
            raise
        if not created:
            existing_id = stored.order_id
            self.metrics.intent_duplicate()
            self.events.warning("Duplicate order intent", {**fields, "order_id": existing_id, "status": stored.status})
            raise DuplicateIntent(
                f"Duplicate idempotency_key {intent.idempotency_key!r}: already used by order {existing_id}",
                order_id=existing_id,
            )
        self.metrics.intent_created()
        self._log_created(stored, stored.order_id)
        self._log_executions(executions)
        if stored.status == "EXPIRED":
            self._log_change("Order expired", stored, executions[-1].after if executions else "NEW")
        return stored

    def _match(self, quote: Quote, working: list[Working]) -> list[Fill]:
        return match(quote, working, self._costs)

    def _log_created(self, order: Order, order_id: str) -> None:
        self.events.info(
            "Order created successfully",
            {
                "idempotency_key": order.idempotency_key,
                "order_id": order_id,
                "exchange": order.exchange,
                "symbol": order.symbol,
                "side": order.side,
                "qty": order.qty,
                "status": "NEW",
            },
        )

    def _log_executions(self, executions: list[Execution]) -> None:
        self.metrics.filled(len(executions))
        for execution in executions:
            order, fill = execution.order, execution.fill
            self.events.info(
                "Order filled",
                {
                    "order_id": order.order_id,
                    "idempotency_key": order.idempotency_key,
                    "exchange": order.exchange,
                    "symbol": order.symbol,
                    "side": order.side,
                    "fill_id": fill.fill_id,
                    "qty": float(fill.qty),
                    "price": float(fill.price),
                    "fee": float(fill.fee),
                    "liquidity": fill.liquidity,
                    "filled_qty": float(order.filled_qty),
                    "previous_status": execution.before,
                    "status": execution.after,
                },
            )
            if execution.after == "CANCELED":  # a MARKET BUY cut to what the balance covers
                self.metrics.canceled()
                self._log_change("Order canceled", order, execution.before, reason=BALANCE_CUT)

    async def add_quote(self, quote_in: QuoteIn) -> list[Execution]:
        """Keep the quote as its instrument's latest and fill what it crosses."""
        fields: Fields = {"exchange": quote_in.exchange, "symbol": quote_in.symbol}
        for what, value, allowed in (
            ("Exchange", quote_in.exchange, self._exchanges),
            ("Symbol", quote_in.symbol, self._symbols),
        ):
            if value not in allowed:
                raise InstrumentNotAllowed(f"{what} {value!r} not allowed", what)
        quote = Quote(
            bid=exact(quote_in.bid),
            ask=exact(quote_in.ask),
            bid_size=None if quote_in.bid_size is None else exact(quote_in.bid_size),
            ask_size=None if quote_in.ask_size is None else exact(quote_in.ask_size),
        )
        self.events.debug("Quote received", {**fields, "bid": quote_in.bid, "ask": quote_in.ask})
        executions = await self._store_call(
            self.store.add_quote, (quote_in.exchange, quote_in.symbol), quote, self._match, self.clock()
        )
        self._log_executions(executions)
        return executions

    async def add_quote_json(self, body: bytes, content_type: str | None = None) -> list[Execution]:
        """Check and apply a quote given as a raw JSON body and its declared media type
        (a forged cross-site quote would move fills and positions, as an intent would)."""
        if not is_json_media_type(content_type):
            raise InvalidQuote(f"Content-Type must be application/json, not {content_type!r}")
        try:
            quote_in = QuoteIn.model_validate_json(body)
        except ValidationError as exc:
            error = invalid_from_errors(exc.errors(), "quote")
            raise InvalidQuote(error.detail, **error.extra) from None
        return await self.add_quote(quote_in)

    async def fills_of(self, order_id: str) -> tuple[Order, list[StoredFill]]:
        order = await self.get_order(order_id)
        return order, list(order.fills or ())

    async def cancel(self, order_id: str) -> Order:
        result = await self._store_call(self.store.cancel, order_id, self.clock())
        if result is None:
            raise OrderNotFound(f"Order {order_id!r} not found")
        order, before = result
        if before not in ("NEW", "PARTIALLY_FILLED"):
            raise OrderNotCancelable(f"Order {order_id} is already {before}", status=before)
        self.metrics.canceled()
        self._log_change("Order canceled", order, before)
        return order

    def _log_change(self, message: str, order: Order, before: str, reason: str | None = None) -> None:
        """A change of an order's status that is not a fill (cancel, expiry)."""
        fields: Fields = {
            "order_id": order.order_id,
            "idempotency_key": order.idempotency_key,
            "exchange": order.exchange,
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "filled_qty": float(order.filled_qty),
            "previous_status": before,
            "status": order.status,
        }
        if reason is not None:
            fields["reason"] = reason
        self.events.info(message, fields)

    async def balances(self) -> dict[str, Holding]:
        return await self._store_call(self.store.balances)

    async def positions(self) -> list[PositionView]:
        return await self._store_call(self.store.positions)

    async def get_order(self, order_id: str) -> Order:
        order = await self._store_call(self.store.get, order_id)
        if order is None:
            raise OrderNotFound(f"Order {order_id!r} not found")
        return order

    async def list_orders(self, keep: OrderFilter, limit: int, cursor: str | None) -> tuple[list[Order], str | None]:
        """A page of orders, newest first, and the cursor for the next page (None: last)."""
        if keep.idempotency_key is not None:
            # A key names at most one order: no scan, and no further page.
            order = await self._store_call(self.store.get_by_key, keep.idempotency_key)
            return ([order] if order is not None and keep.keeps(order) else []), None
        before = _decode_cursor(cursor)
        orders, position = await self._store_call(self.store.newest_first, before, limit, keep)
        return orders, None if position is None else _encode_cursor(position)

    async def trading_state(self) -> TradingState:
        return await self._store_call(self.store.trading_state)

    async def set_trading_state(self, change: TradingStateIn) -> TradingState:
        """Record the new state (shared by every worker of a shared store) and, if asked,
        cancel every open order in the same step, logging each cancel."""
        before, state, canceled = await self._store_call(
            self.store.set_trading_state,
            TradingState(change.state, change.reason, self.clock()),
            cancel_open=change.cancel_open_orders,
        )
        self.events.warning(
            "Trading state changed",
            {
                "previous_state": before.state,
                "state": state.state,
                "reason": state.reason,
                "canceled_orders": len(canceled),
            },
        )
        why = f"cancel_open_orders with trading state {state.state}"
        for order, status_before in canceled:
            self.metrics.canceled()
            self._log_change("Order canceled", order, status_before, reason=why)
        return state

    async def capabilities(self) -> Capabilities:
        reason = self._degraded_reason or await self._trading_reason() or await self._store_reason()
        return Capabilities(
            service=self.settings.service_name,
            version=self.settings.service_version,
            status="degraded" if reason else "ok",
            features=list(self._features),
            store=self.store.name,
            degraded_reason=reason,
            generated_at=iso_z(self.clock()),
        )

    async def _trading_reason(self) -> str | None:
        try:
            state = await self.trading_state()
        except StoreUnavailable as error:
            return error.detail
        if state.state == "ACTIVE":
            return None
        refused = (
            "every new order intent is refused" if state.state == "HALTED" else "only reducing intents are accepted"
        )
        return f"trading is {state.state} ({state.reason or 'no reason given'}): {refused}"

    async def _store_reason(self) -> str | None:
        """Why the store cannot take an order now, if it cannot (only asked when
        MAX_ORDERS applies: counting a database's orders is not free)."""
        if self._cap is None:
            return None
        try:
            held = await self._store_call(self.store.count)
        except StoreUnavailable as error:
            return error.detail
        if held >= self._cap:
            return f"the store is full (MAX_ORDERS={self._cap}): new order intents are refused"
        return None

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition: counters, latencies, and the store's orders by status."""
        by_status = await self._store_call(self.store.count_by_status)
        return self.metrics.render(self.store.name, by_status)

    def _check_allowed(self, allowed: frozenset[str], value: str, what: str, fields: Fields) -> None:
        """Refuse a value not on its allowlist, naming any empty list."""
        if value not in allowed:
            detail = f"{what} {value!r} not allowed"
            if self._degraded_reason:
                detail += f"; {self._degraded_reason}"
            self._reject(InstrumentNotAllowed(detail, what), fields)

    def _reject(self, error: ServiceError, fields: Fields) -> NoReturn:
        self.metrics.intent_rejected(error.code)
        self.events.warning(
            "Order intent rejected", {**fields, "reason": error.detail, "code": error.code, "status": "REJECTED"}
        )
        raise error


# A cursor is the store position a page stopped at: orders older than it come next.
# Its form is not part of the contract (clients pass next_cursor back as it is), but
# any position is a valid one, so the document can say exactly what is accepted.
CURSOR_PATTERN = r"^[0-9]{1,18}$"


def _encode_cursor(position: int) -> str:
    return str(position)


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
        raise InvalidQuery("cursor is not one this service gave out; use next_cursor from a previous page")
    return int(cursor)


def _empty_allowlists_reason(exchanges: frozenset[str], symbols: frozenset[str]) -> str | None:
    empty = [name for name, allowed in (("ALLOWED_EXCHANGES", exchanges), ("ALLOWED_SYMBOLS", symbols)) if not allowed]
    if not empty:
        return None
    verb = "is" if len(empty) == 1 else "are"
    return f"{' and '.join(empty)} {verb} empty: every order intent is rejected"


def is_json_media_type(content_type: str | None) -> bool:
    """No Content-Type, `application/json` or `application/*+json`, parameters ignored."""
    if content_type is None:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))
