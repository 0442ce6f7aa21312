"""Order intake and the other use cases, in the spec's order of checks. No HTTP here: the
web layer parses requests into the values below and renders what comes back."""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

from app.core.balances import Holding, assets_of
from app.core.controls import TradingState
from app.core.engine import Policy
from app.core.errors import IntentRefused, MarketDataRefused, ServiceError
from app.core.events import Event, OrderFilled
from app.core.market_data import is_fresh
from app.core.order import Order, OrderKind, OrderTerms, StoredFill, differing_terms
from app.core.values import Costs, Instrument, Quote, Trade, book_of, exact
from app.core.vocabulary import CancelReason, FillSource, OrderStatus, OrderType, Side, TimeInForce, TradingStateName
from app.ops.clock import iso_z, now_micros
from app.ops.logs import EventLog, Fields
from app.ops.metrics import Metrics
from app.service.calls import StoreCalls
from app.service.errors import (
    DuplicateIntent,
    InstrumentNotAllowed,
    InvalidQuery,
    OrderNotCancelable,
    OrderNotFound,
    RateLimited,
)
from app.service.journal import Journal
from app.service.live import ExchangeStatus, LiveOrders, Mode, check_live_orders_left, exchange_modes
from app.service.market_feeds import ExchangeFeed, MarketFeeds
from app.service.rate_limit import TokenBucket
from app.service.reporting import Reporter
from app.service.settings import Settings
from app.store.base import OrderFilter, OrderStore, PositionView
from app.store.errors import StoreFull, StoreUnavailable
from app.store.ids import new_number
from app.store.sql import SqlStore

FEATURES = (
    "paper_execution",
    "order_tracking",
    "cancel",
    "market_data_quotes",
    "market_data_books",
    "market_data_trades",
    "market_data_ordering",
    "fill_simulation",
    "positions",
    "time_in_force",
    "trading_state",
)
DURABLE_FEATURES = ("durable_store",)
# How long a cancel of a live order waits for its exchange to confirm, and how often it
# looks meanwhile.
LIVE_CANCEL_WAIT_SECONDS = 5.0
LIVE_CANCEL_POLL_SECONDS = 0.05


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and this
# one is made for every intent on the hot path.
@dataclass(slots=True)
class OrderRequest:
    """An order intent as the web layer parsed it."""

    idempotency_key: str
    exchange: str
    symbol: str
    side: Side
    type: OrderType
    qty: float
    limit_price: float | None
    time_in_force: TimeInForce
    client_ts: int | None  # microseconds since the epoch


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    exchange: str
    symbol: str
    bid: float
    ask: float
    bid_size: float | None
    ask_size: float | None
    ts: int | None = None  # the time it describes (microseconds); None: when it arrives


@dataclass(frozen=True, slots=True)
class TradeRequest:
    """A print on the tape: `qty` traded at `price`, the aggressor on `aggressor_side`."""

    exchange: str
    symbol: str
    price: float
    qty: float
    aggressor_side: Side
    ts: int | None = None  # the time of the print (microseconds); None: when it arrives


@dataclass(frozen=True, slots=True)
class BookRequest:
    """A book with depth: (price, size) levels per side, best first, at least one each."""

    exchange: str
    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts: int | None = None  # the time it describes (microseconds); None: when it arrives


@dataclass(frozen=True, slots=True)
class CapabilitiesInfo:
    service: str
    version: str
    status: str
    features: list[str]
    store: str
    degraded_reason: str | None
    generated_at: str
    stale_market_data: list[str]
    market_data_feeds: list[ExchangeFeed]
    exchange_modes: dict[str, Mode]
    live_exchanges: list[ExchangeStatus]


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
        self.metrics = Metrics() if metrics is None else metrics
        self.reporter = Reporter(events, self.metrics)
        self.clock = clock
        self._cap = settings.order_cap(store.name)
        self._exchanges = frozenset(settings.allowed_exchanges)
        self._symbols = frozenset(settings.allowed_symbols)
        # One shared OrderKind per combination seen, so stored orders point at it
        # rather than each holding its own (bounded by the allowlists and the vocabulary).
        self._kinds: dict[OrderKind, OrderKind] = {}
        self._degraded_reason = _empty_allowlists_reason(self._exchanges, self._symbols)
        self._max_quote_age = None if settings.max_quote_age_ms is None else settings.max_quote_age_ms * 1_000
        self.policy = Policy(
            Costs(settings.slippage_bps, settings.taker_fee_bps, settings.maker_fee_bps),
            settings.instrument_rules(),
            self._max_quote_age,
            settings.latency_ms * 1_000,
            live=frozenset(settings.live_exchanges),
        )
        self.exchange_modes = exchange_modes(
            self._exchanges, frozenset(settings.live_exchanges), frozenset(settings.live_real_money)
        )
        # The in-memory store only takes a lock for a moment: calling it inline is
        # cheaper than a hop to a thread.
        self._store_call = StoreCalls(
            store.name, store.blocking, settings.store_timeout_ms, store.quick, store.wait_for
        )
        self.journal = Journal(store, self._store_call)
        # Live orders' outbox (LIVE_EXCHANGES; the settings allow it with SQL stores only).
        self.live: LiveOrders | None = None
        if isinstance(store, SqlStore):
            check_live_orders_left(store, frozenset(settings.live_exchanges))
        if settings.live_exchanges:
            assert isinstance(store, SqlStore)
            self.live = LiveOrders(
                store,
                self._store_call,
                clock,
                self._publish,
                self.exchange_modes,
                reads_balances=settings.paper_balances is not None,
            )
            self.metrics.watch_live(self.live.samples)
        # The feeds running beside this service (app.venues fills it in; none: empty).
        self.feeds = MarketFeeds()
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
            *(["instrument_rules"] if self.policy.rules else []),
            *(["rate_limit"] if self._bucket is not None else []),
            *(["max_quote_age"] if self._max_quote_age is not None else []),
            *(["latency"] if settings.latency_ms else []),
            *(["market_data_feeds"] if settings.market_data_feeds else []),
            *(["live_execution"] if settings.live_exchanges else []),
        ]
        if settings.paper_balances is not None:
            assets = {asset for symbol in settings.allowed_symbols for asset in assets_of(symbol)}
            store.open_account(settings.paper_balances, assets, self.policy)
            self._features.append("paper_balances")
        if settings.trading_state is not None:
            # Start-up may halt trading, never resume it: a worker restarting with
            # TRADING_STATE=ACTIVE must not lift a halt an operator set at run time.
            change = store.set_trading_state(
                TradingState(settings.trading_state, "TRADING_STATE at start-up", clock()), only_stricter=True
            )
            self._publish(change.events)

    def _publish(self, events: list[Event]) -> None:
        """What a store step did goes out: log lines, metrics, and a wake-up for whoever
        follows the journal (the store has already journaled the events)."""
        self.reporter.report(events)
        if events:
            self.journal.signal.moved()

    # -- order intents ----------------------------------------------------------------

    @property
    def rate_limited(self) -> bool:
        """Whether intents can be refused for their rate (MAX_INTENTS_PER_SECOND is set)."""
        return self._bucket is not None

    def check_rate(self) -> None:
        """Take a token for an intent about to be read, or refuse it (RateLimited): the
        first check, before the body is parsed."""
        if self._bucket is None:
            return
        wait = self._bucket.take()
        if wait is not None:
            self.refuse(
                RateLimited(
                    f"More than MAX_INTENTS_PER_SECOND={self.settings.max_intents_per_second:g} order intents "
                    f"a second; retry after {wait} s",
                    wait,
                )
            )

    def refuse(self, error: ServiceError, fields: Fields | None = None) -> NoReturn:
        """Report a refused intent, then raise `error` (the web layer answers it)."""
        self.reporter.refused(error, fields or {})
        raise error

    async def submit(self, request: OrderRequest) -> Order:
        """Allowlists, then the duplicate key, then the controls and create (in the
        store's atomic step): the spec's order of checks."""
        fields: Fields = {
            "idempotency_key": request.idempotency_key,
            "exchange": request.exchange,
            "symbol": request.symbol,
            "side": request.side,
            "qty": request.qty,
            "type": request.type,
        }
        self.reporter.received(fields)
        self._check_allowed(self._exchanges, request.exchange, "Exchange", fields)
        self._check_allowed(self._symbols, request.symbol, "Symbol", fields)
        kind = OrderKind(request.exchange, request.symbol, request.side, request.type, request.time_in_force)
        now = self.clock()
        order = Order(
            number=new_number(),
            idempotency_key=request.idempotency_key,
            kind=self._kinds.setdefault(kind, kind),
            terms=OrderTerms.of(request.qty, request.limit_price, now, request.client_ts),
        )
        try:
            stored, created, events = await self._store_call.bounded(
                self.store.admit(order, self.policy, now, self._cap)
            )
        except (StoreFull, IntentRefused) as error:
            self.refuse(error, fields)
        except StoreUnavailable as error:
            self.reporter.unanswered(error, fields)
            raise
        if not created:
            # Still the spec's 409 either way; the client learns whether it retried its
            # own intent or reused a key for a different order (a bug of its own).
            differing = differing_terms(stored, order)
            self.reporter.duplicate(stored, fields, payload_matches=not differing)
            payload = f"a different payload ({', '.join(differing)} differ)" if differing else "the same payload"
            raise DuplicateIntent(
                f"Duplicate idempotency_key {request.idempotency_key!r}: already used by order {stored.order_id}, "
                f"with {payload}",
                order_id=stored.order_id,
                payload_matches=not differing,
            )
        self._publish(events)
        if self.live is not None:
            self.live.wake(stored.exchange)  # its outbox row waits to be sent
        return stored

    def _check_allowed(self, allowed: frozenset[str], value: str, what: str, fields: Fields) -> None:
        """Refuse a value not on its allowlist, naming any empty list."""
        if value not in allowed:
            detail = f"{what} {value!r} not allowed"
            if self._degraded_reason:
                detail += f"; {self._degraded_reason}"
            self.refuse(InstrumentNotAllowed(detail, what), fields)

    # -- market data, cancels, the trading state ------------------------------------

    async def add_quote(self, request: QuoteRequest) -> list[OrderFilled]:
        """Keep the quote as its instrument's latest and fill what it reaches."""
        self._check_instrument(request.exchange, request.symbol)
        quote = Quote(
            bid=exact(request.bid),
            ask=exact(request.ask),
            bid_size=None if request.bid_size is None else exact(request.bid_size),
            ask_size=None if request.ask_size is None else exact(request.ask_size),
        )
        self.reporter.event_log.debug(
            "Quote received",
            {"exchange": request.exchange, "symbol": request.symbol, "bid": request.bid, "ask": request.ask},
        )
        return await self._add_market_data((request.exchange, request.symbol), quote, request.ts, FillSource.QUOTE)

    async def add_book(self, request: BookRequest) -> list[OrderFilled]:
        """Keep the book as its instrument's latest and fill what it reaches, each order
        walking its levels."""
        self._check_instrument(request.exchange, request.symbol)
        book = book_of(request.bids, request.asks)
        self.reporter.event_log.debug(
            "Book received",
            {
                "exchange": request.exchange,
                "symbol": request.symbol,
                "bid": request.bids[0][0],
                "ask": request.asks[0][0],
                "levels": [len(request.bids), len(request.asks)],
            },
        )
        return await self._add_market_data((request.exchange, request.symbol), book, request.ts, FillSource.BOOK)

    async def add_trade(self, request: TradeRequest) -> list[OrderFilled]:
        """Apply a print to the resting LIMIT orders it meets, by their queue position."""
        self._check_instrument(request.exchange, request.symbol)
        trade = Trade(exact(request.price), exact(request.qty), buys=request.aggressor_side == Side.BUY)
        self.reporter.event_log.debug(
            "Trade received",
            {
                "exchange": request.exchange,
                "symbol": request.symbol,
                "price": request.price,
                "qty": request.qty,
                "aggressor_side": request.aggressor_side.value,
            },
        )
        instrument = (request.exchange, request.symbol)
        return await self._market_data_call(
            instrument,
            self.store.add_trade(instrument, trade, self.policy, self.clock(), self._cap, ts=request.ts),
        )

    def _check_instrument(self, exchange: str, symbol: str) -> None:
        for what, value, allowed in (("Exchange", exchange, self._exchanges), ("Symbol", symbol, self._symbols)):
            if value not in allowed:
                raise InstrumentNotAllowed(f"{what} {value!r} not allowed", what)

    async def _add_market_data(
        self, instrument: Instrument, quote: Quote, ts: int | None, source: FillSource
    ) -> list[OrderFilled]:
        return await self._market_data_call(
            instrument,
            self.store.add_quote(instrument, quote, self.policy, self.clock(), self._cap, ts=ts, source=source),
        )

    async def _market_data_call(self, instrument: Instrument, call: Awaitable[list[Event]]) -> list[OrderFilled]:
        """Run a store's market data call; publish its events, log a refusal."""
        try:
            events = await self._store_call.bounded(call)
        except MarketDataRefused as refusal:
            self.reporter.event_log.warning(
                "Market data refused",
                {"exchange": instrument[0], "symbol": instrument[1], "reason": refusal.code},
            )
            raise
        self._publish(events)
        return [event for event in events if isinstance(event, OrderFilled)]

    async def cancel(self, order_id: str) -> Order:
        """Cancel an open order: at once (paper), or, for a live order, once its
        exchange confirms, waited for up to LIVE_CANCEL_WAIT_SECONDS (the order is
        answered as it is then: still open if the exchange has not confirmed yet)."""
        if self.live is not None:
            live = await self.live.find(order_id)
            if live is not None:
                return await self._cancel_live(live.order)
        result = await self._store_call(self.store.cancel, order_id, self.clock())
        if result is None:
            raise OrderNotFound(f"Order {order_id!r} not found")
        order, event = result
        if event is None:
            raise OrderNotCancelable.ended(order_id, order.status)
        self._publish([event])
        return order

    async def _cancel_live(self, order: Order) -> Order:
        assert self.live is not None
        if not order.is_open:
            raise OrderNotCancelable.ended(order.order_id, order.status)
        await self.live.ask_cancel(order.order_id, CancelReason.REQUESTED)
        deadline = time.monotonic() + LIVE_CANCEL_WAIT_SECONDS
        while True:
            found = await self.live.find(order.order_id)
            assert found is not None  # it was found above, and live orders are kept
            current = found.order
            if not current.is_open and current.status != OrderStatus.CANCELED:
                raise OrderNotCancelable.ended(current.order_id, current.status)
            if not current.is_open or time.monotonic() >= deadline:
                return current
            await asyncio.sleep(LIVE_CANCEL_POLL_SECONDS)

    async def trading_state(self) -> TradingState:
        return await self._store_call(self.store.trading_state)

    async def set_trading_state(self, state: TradingStateName, reason: str | None, cancel_open: bool) -> TradingState:
        """Record the new state (shared by every worker of a shared store) and, if asked,
        cancel every open order in the same step."""
        wanted = TradingState(state, reason, self.clock())
        change = await self._store_call(
            self.store.set_trading_state, wanted, cancel_open=cancel_open, live=self.policy.live
        )
        self._publish(change.events)
        if self.live is not None and cancel_open:
            for exchange in self.live.exchanges:
                self.live.wake(exchange)  # their open orders' cancels wait to be sent
        return wanted

    # -- reads ------------------------------------------------------------------------

    async def get_order(self, order_id: str) -> Order:
        order = await self._store_call(self.store.get, order_id)
        if order is None:
            raise OrderNotFound(f"Order {order_id!r} not found")
        return order

    async def fills_of(self, order_id: str, after: int, limit: int) -> tuple[Order, list[StoredFill], int | None]:
        """A page of an order's fills: those whose seq is > `after`, oldest first, and
        the cursor for the next page (the last seq returned; None on the last page)."""
        found = await self._store_call(self.store.order_fills, order_id, after, limit)
        if found is None:
            raise OrderNotFound(f"Order {order_id!r} not found")
        order, fills, more = found
        return order, fills, (fills[-1].seq if more else None)

    async def list_orders(self, keep: OrderFilter, limit: int, cursor: str | None) -> tuple[list[Order], str | None]:
        """A page of orders, newest first, and the cursor for the next page (None: last)."""
        if keep.idempotency_key is not None:
            # A key names at most one order: no scan, and no further page.
            order = await self._store_call(self.store.get_by_key, keep.idempotency_key)
            return ([order] if order is not None and keep.keeps(order) else []), None
        before = _decode_cursor(cursor)
        orders, position = await self._store_call(self.store.newest_first, before, limit, keep)
        return orders, None if position is None else _encode_cursor(position)

    async def balances(self) -> dict[str, Holding]:
        return await self._store_call(self.store.balances)

    async def positions(self) -> list[PositionView]:
        return await self._store_call(self.store.positions)

    async def capabilities(self) -> CapabilitiesInfo:
        times = await self._market_data_times()
        stale = self._stale_market_data(times)
        reason = (
            self._degraded_reason
            or await self._trading_reason()
            or await self._store_reason()
            or self._stale_feeds_reason(times, stale)
        )
        return CapabilitiesInfo(
            service=self.settings.service_name,
            version=self.settings.service_version,
            status="degraded" if reason else "ok",
            features=list(self._features),
            store=self.store.name,
            degraded_reason=reason,
            generated_at=iso_z(self.clock()),
            stale_market_data=stale,
            market_data_feeds=self.feeds.exchanges,
            exchange_modes=self.exchange_modes,
            live_exchanges=[] if self.live is None else list(self.live.status.values()),
        )

    def _stale_feeds_reason(self, times: dict[Instrument, int | None] | None, stale: list[str]) -> str | None:
        """Why orders of fed instruments do not fill now, if some do not: their data (in
        the store, whichever process's feed brought it) is older than MAX_QUOTE_AGE_MS,
        or none has come yet."""
        if self._max_quote_age is None or times is None:
            return None
        fed = self.feeds.instruments()
        behind = [
            feed.instrument for feed in fed if (feed.exchange, feed.symbol) not in times or feed.instrument in stale
        ]
        if not behind:
            return None
        return f"market data feeds behind (older than MAX_QUOTE_AGE_MS, or none yet): {', '.join(behind)}"

    async def _market_data_times(self) -> dict[Instrument, int | None] | None:
        """Each instrument's latest market data time, when MAX_QUOTE_AGE_MS makes it
        matter (None: it does not, or the store is down, which the degraded reason says)."""
        if self._max_quote_age is None:
            return None
        try:
            return await self._store_call(self.store.market_data_times)
        except StoreUnavailable:
            return None

    def _stale_market_data(self, times: dict[Instrument, int | None] | None) -> list[str]:
        """The instruments (`exchange:symbol`) whose latest market data is older than
        MAX_QUOTE_AGE_MS: their orders fill nothing until fresh data comes."""
        if self._max_quote_age is None or times is None:
            return []
        now = self.clock()
        return sorted(
            f"{exchange}:{symbol}"
            for (exchange, symbol), ts in times.items()
            if not is_fresh(ts, now, self._max_quote_age)
        )

    async def claim_feeds(self, holder: str, instruments: list[Instrument], ttl_ms: int) -> set[Instrument]:
        """The instruments whose feed `holder` (a process) is to run for the next
        `ttl_ms`: exactly one process per instrument among those sharing the store."""
        return await self._store_call(self.store.claim_feeds, holder, instruments, self.clock(), ttl_ms * 1_000)

    async def release_feeds(self, holder: str, instruments: list[Instrument]) -> None:
        await self._store_call(self.store.release_feeds, holder, instruments)

    async def _trading_reason(self) -> str | None:
        try:
            state = await self.trading_state()
        except StoreUnavailable as error:
            return error.detail
        if state.state == TradingStateName.ACTIVE:
            return None
        refused = (
            "every new order intent is refused"
            if state.state == TradingStateName.HALTED
            else "only reducing intents are accepted"
        )
        return f"trading is {state.state} ({state.reason or 'no reason given'}): {refused}"

    async def _store_reason(self) -> str | None:
        """Why the store cannot take an order now, if it cannot (only asked when
        MAX_ORDERS applies: counting a database's orders is not free)."""
        if self._cap is None:
            return None
        try:
            held = await self._store_call(self.store.held)
        except StoreUnavailable as error:
            return error.detail
        if held >= self._cap:
            return f"the store is full (MAX_ORDERS={self._cap}): new order intents are refused"
        return None

    async def metrics_text(self) -> bytes:
        """The Prometheus exposition: counters, latencies, and the store's orders by status."""
        by_status = await self._store_call(self.store.count_by_status)
        return self.metrics.render(self.store.name, by_status)


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
