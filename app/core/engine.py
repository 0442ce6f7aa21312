"""The trading core's operations: admitting an order, matching a quote, canceling one
order or every open one, changing the trading state, and taking what a live exchange
reports of an order it holds (its fills, its end).

Each is a function over the state of one instrument (`InstrumentState`) and the paper
account, which a store loads under that instrument's lock; it changes that state and
the orders in place and returns the domain events it caused, in order. A store then
persists what the events describe. No store holds a trading rule of its own.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from app.core.balances import Account, Reservation
from app.core.controls import Controls, Exposure, TradingState, takes_effect
from app.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    TradingStateChanged,
)
from app.core.exchange_funds import ExchangeFunds
from app.core.market_data import check_arrival, is_fresh
from app.core.matching import Fill, Queued, Reach, Working, match, match_trade
from app.core.order import IllegalTransition, Order, Provenance, StoredFill, record_fill, transition
from app.core.positions import Position, apply_fill
from app.core.queue import QueuePlace, Queues
from app.core.rules import InstrumentRules
from app.core.values import EXACT, ZERO, Costs, Instrument, Quote, Trade
from app.core.vocabulary import CancelReason, FillSource, Liquidity, OrderStatus, Side, TimeInForce

FEE_BPS_STEP = Decimal("0.000001")
# Why a MARKET BUY's remainder is canceled when its fill is cut to the balance.
BALANCE_CUT = "the paper balance covers only part of this order: what it covered is filled, the rest is canceled"


class Policy:
    """What every operation is given: the paper costs, the instruments' rules, the
    oldest market data (microseconds; None: any) that orders fill against, the
    latency (microseconds) between an order's acceptance and the first market data it
    can fill against, and the exchanges whose orders a live exchange fills (`live`:
    market data only prices and marks them; none of it fills them)."""

    def __init__(
        self,
        costs: Costs | None = None,
        rules: Mapping[Instrument, InstrumentRules] | None = None,
        max_quote_age: int | None = None,
        latency: int = 0,
        live: frozenset[str] = frozenset(),
    ) -> None:
        self.costs = Costs() if costs is None else costs
        self.rules = dict(rules or {})
        self.controls = Controls(self.rules)
        self.max_quote_age = max_quote_age
        self.latency = latency
        self.live = live

    def is_live(self, exchange: str) -> bool:
        return exchange in self.live

    def arrived(self, order: Order, ts: int | None) -> bool:
        """Whether `order` has reached the venue by market data stamped `ts`: at once
        without a latency, else from `accepted_at + latency` on. Deterministic: it
        reads the data's stamp, not a clock."""
        return self.latency == 0 or (ts is not None and ts >= order.accepted_at + self.latency)

    def arrived_by(self, ts: int) -> int | None:
        """The latest acceptance time of the orders that market data stamped `ts` can
        fill (None: every order)."""
        return None if self.latency == 0 else ts - self.latency


class InstrumentState:
    """One instrument as the core sees it: its latest quote or book (sizes less what
    fills took since), its position, its exposure (position and open orders, for the
    controls), and the queues of its resting orders. The position and the queues
    (given, or a function that reads them) and the exposure are only worked out when
    first needed: most intents fill nothing and meet no limit, and for a database each
    costs a query."""

    __slots__ = (
        "_exposure",
        "_load_exposure",
        "_load_position",
        "_load_queues",
        "_position",
        "_queues",
        "_trade_ts",
        "key",
        "quote",
        "quote_ts",
    )

    def __init__(
        self,
        key: Instrument,
        quote: Quote | None,
        position: Position | Callable[[], Position],
        load_exposure: Callable[[Position], Exposure],
        quote_ts: int | None = None,
        *,
        queues: Callable[[], tuple[Queues, int | None]] | None = None,
    ) -> None:
        self.key = key
        self.quote = quote
        self.quote_ts = quote_ts  # the time the latest quote or book describes
        self._position: Position | None = position if isinstance(position, Position) else None
        self._load_position: Callable[[], Position] | None = None if isinstance(position, Position) else position
        self._load_exposure = load_exposure
        self._exposure: Exposure | None = None
        # The queues and the time of the latest print, read together (`queues`: how;
        # None: none yet).
        self._queues: Queues | None = Queues() if queues is None else None
        self._trade_ts: int | None = None
        self._load_queues = queues

    @property
    def queues(self) -> Queues:
        if self._queues is None:
            assert self._load_queues is not None
            self._queues, self._trade_ts = self._load_queues()
        return self._queues

    @property
    def trade_ts(self) -> int | None:
        """The time of the latest print on the tape."""
        if self._queues is None:
            self.queues  # noqa: B018 (read with the queues)
        return self._trade_ts

    @trade_ts.setter
    def trade_ts(self, ts: int) -> None:
        self.queues  # noqa: B018 (read first, or the read would overwrite it)
        self._trade_ts = ts

    @property
    def queues_known(self) -> Queues | None:
        """The queues if they have been read (only then can they have changed)."""
        return self._queues

    @property
    def latest_ts(self) -> int | None:
        """The time of the latest market data of any kind: older data is out of order."""
        trade_ts = self.trade_ts
        if self.quote_ts is None or trade_ts is None:
            return self.quote_ts if trade_ts is None else trade_ts
        return max(self.quote_ts, trade_ts)

    @property
    def position(self) -> Position:
        if self._position is None:
            assert self._load_position is not None
            self._position = self._load_position()
        return self._position

    @position.setter
    def position(self, position: Position) -> None:
        self._position = position

    def exposure(self) -> Exposure:
        if self._exposure is None:
            self._exposure = self._load_exposure(self.position)
        return self._exposure

    @property
    def exposure_known(self) -> Exposure | None:
        """The exposure if it has been worked out (it is then kept up to date)."""
        return self._exposure


@dataclass
class Admitted:
    """What admitting an order did: its events, and whether what is left of it rests
    (passive: a LIMIT that a quote came and did not reach, which fills as maker), with
    its place in the queue at its price (`queue_place`, see core.queue; None: nothing is
    ahead of it)."""

    events: list[Event]
    rests: bool
    passive: bool
    queue_place: QueuePlace | None = None
    # A LIMIT that rests before it has reached the venue (a latency): it takes its place
    # in the queue when it arrives (`arrive`), not now.
    arriving: bool = False
    # An order for a live exchange, when balances apply: what it claims of the
    # exchange's account while it is on its way there (see core.exchange_funds).
    claim: Reservation | None = None


def admit(
    order: Order,
    instrument: InstrumentState,
    trading: TradingState,
    policy: Policy,
    account: Account | None,
    *,
    now: int,
    new_id: Callable[[], int],
    funds: ExchangeFunds | None = None,
) -> Admitted:
    """Vet a new order (trading state, rules, limits; raises IntentRefused), reserve its
    funds, match it against the instrument's quote, expire an IOC or FOK remainder,
    and say whether the rest rests. An order for a live exchange is vetted only: the
    exchange fills it (`apply_exchange_fills`), so it neither matches nor rests here,
    and the paper account has no part in it; when balances apply (`account` is on) it
    must fit in its exchange's `funds` instead (never read: refused)."""
    quote = instrument.quote
    policy.controls.vet(order, trading, quote, instrument.exposure)
    if policy.is_live(order.exchange):
        claimed = None
        if account is not None:
            claimed = (funds or ExchangeFunds(order.exchange, None)).claim(order, quote, policy.costs, now)
        exposure = instrument.exposure_known
        if exposure is not None:
            exposure.arrived(order.side, ZERO, order.remaining, still_open=True)
        return Admitted([OrderAccepted(order)], rests=False, passive=False, claim=claimed)
    if account is not None:
        account.reserve(order, quote, policy.costs)
    # Stale data prices the checks above but fills nothing: the order waits for fresh.
    if not is_fresh(instrument.quote_ts, now, policy.max_quote_age):
        quote = None
    # With a latency the order reaches the venue later: the first data stamped after
    # that fills it (an IOC or FOK then ends), unless data stamped that late is here.
    arrived = policy.arrived(order, instrument.quote_ts)
    if not arrived:
        quote = None
    events: list[Event] = [OrderAccepted(order)]
    if quote is not None:
        events += _execute(
            instrument, quote, [(order, True)], policy.costs, account, now=now, new_id=new_id, source=FillSource.ARRIVAL
        )
    if order.is_open and order.time_in_force != TimeInForce.GTC and arrived:
        events.append(OrderExpired(order, transition(order, OrderStatus.EXPIRED, now)))
        if account is not None:
            account.release(order)
    exposure = instrument.exposure_known
    if exposure is not None:
        exposure.arrived(order.side, order.filled_qty, order.remaining, order.is_open)
    if not order.is_open:
        return Admitted(events, rests=False, passive=False)
    # A LIMIT that a quote came and did not reach rests as passive; otherwise it still
    # wants to take (no quote yet, or the quote's size ran out).
    passive = quote is not None and not Reach.of(quote).reaches(order.side, order.limit_price)
    if not arrived and order.limit_price is not None:
        return Admitted(events, rests=True, passive=passive, arriving=True)
    return Admitted(events, rests=True, passive=passive, queue_place=_join(instrument, order))


def arrive(
    instrument: InstrumentState, arriving: list[Order], policy: Policy, ts: int
) -> list[tuple[Order, QueuePlace | None]]:
    """The LIMIT orders among `arriving` (resting, not yet at the venue, in acceptance
    order) that have reached it by market data stamped `ts` (`stamp`), each with its
    place: the back of the queue the book showed at its price when it arrived, that is
    the latest book before that data. The caller applies the data after this."""
    return [(order, _join(instrument, order)) for order in arriving if order.is_open and policy.arrived(order, ts)]


def _join(instrument: InstrumentState, order: Order) -> QueuePlace | None:
    """An order's place at the back of the queue the latest book shows at its price."""
    shown = _shown_at(instrument.quote, order)
    if shown <= ZERO or order.limit_price is None:
        return None
    return instrument.queues.join(order.side, order.limit_price, shown)


def _shown_at(quote: Quote | None, order: Order) -> Decimal:
    """What the book shows at a LIMIT order's price on its own side (bids for a BUY)."""
    limit = order.limit_price
    if quote is None or limit is None:
        return ZERO
    buy = order.side == Side.BUY
    for price, size in quote.levels(not buy):
        at = float(price)
        if at == limit:
            return ZERO if size is None else size
        if (at < limit) if buy else (at > limit):  # past it: the book does not show its price
            break
    return ZERO


def apply_quote(
    instrument: InstrumentState,
    quote: Quote,
    reached: list[tuple[Order, bool]],
    policy: Policy,
    account: Account | None,
    *,
    now: int,
    new_id: Callable[[], int],
    ts: int | None = None,
    source: FillSource = FillSource.QUOTE,
) -> list[Event]:
    """Take `quote` (or a book: `source`), describing the market at `ts`, as the
    instrument's latest and fill the resting orders it reaches (`reached`: oldest
    first, each with whether it takes liquidity). Refused as `stamp` says, changing
    nothing. The queues at the prices it shows follow the sizes it shows."""
    ts = stamp(instrument, ts, now, policy)
    instrument.quote = quote
    instrument.quote_ts = ts
    _show(instrument, quote)
    if not reached or policy.is_live(instrument.key[0]):
        return []
    # Only orders that have reached the venue by this data's time fill; an IOC or FOK
    # that waited for it (a latency) ends after it, with what it filled.
    arrived = [(order, taker) for order, taker in reached if policy.arrived(order, ts)]
    events = _execute(instrument, quote, arrived, policy.costs, account, now=now, new_id=new_id, source=source)
    for order, _ in arrived:
        if order.is_open and order.time_in_force != TimeInForce.GTC:
            events.append(OrderExpired(order, transition(order, OrderStatus.EXPIRED, now)))
            if account is not None:
                account.release(order)
    _moved(instrument, events)
    return events


def apply_trade(
    instrument: InstrumentState,
    trade: Trade,
    resting: list[tuple[Order, QueuePlace | None]],
    policy: Policy,
    account: Account | None,
    *,
    now: int,
    new_id: Callable[[], int],
    ts: int | None = None,
) -> list[Event]:
    """A print on the tape at `ts` (refused as a quote is, changing nothing): it fills
    the resting GTC LIMIT orders it meets (`resting`: the open LIMIT orders of the side
    the aggressor hit at or better than its price, in acceptance order, each with its
    `queue_place`) as `matching.match_trade` says, and consumes the queues at and
    through its price. An IOC or FOK waiting for its first data (a latency) waits on
    for a book or quote."""
    ts = stamp(instrument, ts, now, policy)
    instrument.trade_ts = ts
    if policy.is_live(instrument.key[0]):
        return []
    side = Side.SELL if trade.buys else Side.BUY  # the side of the orders it meets
    queues = instrument.queues
    ordered = sorted(
        (
            (order, x, order.limit_price)
            for order, x in resting
            if order.limit_price is not None and order.time_in_force == TimeInForce.GTC and policy.arrived(order, ts)
        ),
        key=lambda entry: (-entry[2] if side == Side.BUY else entry[2], entry[0].accepted_at),
    )
    queued = [
        Queued(index, limit, order.remaining, queues.ahead(side, limit, x))
        for index, (order, x, limit) in enumerate(ordered)
    ]
    events: list[Event] = []
    for proposed in match_trade(trade, queued, policy.costs):
        order = ordered[proposed.ref][0]
        _fill(
            instrument,
            order,
            proposed,
            account,
            costs=policy.costs,
            now=now,
            new_id=new_id,
            source=FillSource.TRADE,
            data_ts=ts,
            events=events,
        )
    # What the print gave these orders was not the displayed queue's: the queue ahead
    # of the orders still resting there moves by the rest of it (so one print of 7.5 and
    # prints of 5.5 and 2 leave every order where the other would).
    given = sum((event.fill.qty for event in events if isinstance(event, OrderFilled)), ZERO)
    queues.traded(side, float(trade.price), EXACT.subtract(trade.qty, given))
    _moved(instrument, events)
    return events


def stamp(instrument: InstrumentState, ts: int | None, now: int, policy: Policy) -> int:
    """The time market data describes: its stamp, refused (MarketDataRefused) if older
    than the instrument's latest data of any kind or stale (`market_data.check_arrival`);
    without one, the time it arrives, `now`, or the latest's if that is later (data that
    raced each other here: the last applied is the newest)."""
    latest = instrument.latest_ts
    if ts is None:
        return now if latest is None else max(now, latest)
    check_arrival(latest, ts, now, policy.max_quote_age)
    return ts


def _show(instrument: InstrumentState, book: Quote) -> None:
    """The queues at the prices a book shows follow the sizes it shows there (a side
    without a size says nothing about its queues)."""
    queues = instrument.queues
    for side in (Side.BUY, Side.SELL):
        if not queues.levels[side]:
            continue
        # The bids, for resting BUYs; as floats, as the client sent them.
        top, top_size, depth = (
            (book.bid, book.bid_size, book.deeper_bids)
            if side == Side.BUY
            else (book.ask, book.ask_size, book.deeper_asks)
        )
        if top_size is None:
            continue
        shown = dict(zip(depth.prices, depth.sizes, strict=True))
        shown[float(top)] = float(top_size)
        queues.show(side, shown, depth.prices[-1] if depth.prices else float(top))


def _moved(instrument: InstrumentState, events: list[Event]) -> None:
    """Keep the exposure, if worked out, up to date with the fills among `events`."""
    exposure = instrument.exposure_known
    if exposure is None:
        return
    for event in events:
        # An order may fill several times in one step (a walk across levels): each
        # event says the order's status right after it.
        if isinstance(event, OrderFilled):
            side = event.order.side
            exposure.filled(side, event.fill.qty, ended=event.after == OrderStatus.FILLED)
            exposure.arrived(side, event.fill.qty, ZERO, still_open=False)  # the position moves
        elif isinstance(event, OrderCanceled | OrderExpired):  # cut to the balance, or an IOC/FOK: the rest goes
            exposure.filled(event.order.side, event.order.remaining, ended=True)


def cancel(
    order: Order,
    exposure: Exposure | None,
    account: Account | None,
    *,
    now: int,
    reason: CancelReason = CancelReason.REQUESTED,
    detail: str | None = None,
) -> OrderCanceled | None:
    """Cancel an open order (None if it is not open): what it reserved is free again."""
    if not order.is_open:
        return None
    if exposure is not None:
        exposure.filled(order.side, order.remaining, ended=True)
    if account is not None:
        account.release(order)
    return OrderCanceled(order, transition(order, OrderStatus.CANCELED, now), reason, detail)


def change_trading_state(
    before: TradingState,
    wanted: TradingState,
    open_orders: list[Order],
    account: Account | None,
    *,
    cancel_open: bool,
    only_stricter: bool = False,
    exposure_of: Callable[[Order], Exposure | None] = lambda _order: None,
    live: frozenset[str] = frozenset(),
) -> list[Event]:
    """Set the trading state (with `only_stricter`: only if it refuses more than
    `before`) and, with `cancel_open`, cancel `open_orders` (every open order) in the
    same step, oldest first. No events if nothing changed. The orders of `live`
    exchanges are left open: their exchange holds them, and only its word ends them
    (the caller asks it to cancel them)."""
    if not takes_effect(before, wanted, only_stricter=only_stricter):
        return []
    canceled: list[Event] = []
    if cancel_open:
        detail = f"cancel_open_orders with trading state {wanted.state}"
        paper = [order for order in open_orders if order.exchange not in live]
        for order in sorted(paper, key=lambda order: order.accepted_at):
            event = cancel(
                order,
                exposure_of(order),
                account,
                now=wanted.updated_at,
                reason=CancelReason.KILL_SWITCH,
                detail=detail,
            )
            if event is not None:
                canceled.append(event)
    return [TradingStateChanged(before, wanted, len(canceled)), *canceled]


@dataclass(frozen=True, slots=True)
class ExchangeFill:
    """A fill of a live order as its exchange reports it: the exchange's trade id
    (a store applies each once), the quantity, price and fee (in the quote asset), who
    provided liquidity, and the exchange's time of the trade (None: not given)."""

    trade_id: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    ts: int | None


@dataclass(frozen=True, slots=True)
class ExchangeReport:
    """What a live exchange says of an order: its fills not applied here yet (oldest
    first) and, if the exchange ended it before it filled whole, how (`ended`:
    CANCELED, EXPIRED or REJECTED, with the exchange's `detail`)."""

    fills: list[ExchangeFill]
    ended: OrderStatus | None = None
    detail: str | None = None


class ExchangeReportRefused(Exception):
    """What an exchange reported cannot be true of the order as kept here (a fill of
    more than is left, a fill of an ended order): nothing of the report is applied."""


def apply_exchange_fills(
    instrument: InstrumentState,
    order: Order,
    fills: list[ExchangeFill],
    *,
    now: int,
    new_id: Callable[[], int],
) -> list[Event]:
    """Apply the exchange's fills of a live `order` (those not applied before, oldest
    first): the order fills, the instrument's position moves. All or none: a report
    that overfills the order or fills an ended one raises ExchangeReportRefused and
    changes nothing."""
    total = sum((fill.qty for fill in fills), ZERO)
    unreadable = any(
        not (fill.qty.is_finite() and fill.price.is_finite() and fill.fee.is_finite())
        or fill.qty <= 0
        or fill.price <= 0
        for fill in fills
    )
    if fills and (unreadable or not order.is_open or total > order.remaining):
        raise ExchangeReportRefused(
            f"order {order.order_id} ({order.status}, {order.remaining} left): the exchange reports fills of {total}"
        )
    events: list[Event] = []
    for reported in fills:
        notional = EXACT.multiply(reported.qty, reported.price)
        provenance = Provenance(
            FillSource.EXCHANGE,
            reported.ts,
            reported.price,
            None,
            ZERO,
            _fee_bps(reported.fee, notional),
        )
        fill = StoredFill(
            number=new_id(),
            qty=reported.qty,
            price=reported.price,
            fee=reported.fee,
            liquidity=reported.liquidity,
            ts=now,
            provenance=provenance,
        )
        _record(instrument, order, fill, events)
    _moved(instrument, events)
    return events


def apply_exchange_report(
    instrument: InstrumentState,
    order: Order,
    report: ExchangeReport,
    *,
    now: int,
    new_id: Callable[[], int],
    cancel_reason: CancelReason = CancelReason.EXCHANGE,
) -> list[Event]:
    """Apply a report of a live `order`: its new fills, then its end if the exchange
    ended it (`cancel_reason`: why a cancel was asked for, if one was)."""
    events = apply_exchange_fills(instrument, order, report.fills, now=now, new_id=new_id)
    if report.ended is not None:
        exposure = instrument.exposure_known
        events += end_at_exchange(order, report.ended, exposure, now=now, detail=report.detail, reason=cancel_reason)
    return events


def _record(instrument: InstrumentState, order: Order, fill: StoredFill, events: list[Event]) -> None:
    """Apply `fill` to `order` and the instrument's position, appending its event."""
    before = record_fill(order, fill)
    instrument.position = apply_fill(instrument.position, order.side, fill.qty, fill.price, fill.fee)
    events.append(OrderFilled(order, fill, before, order.status, order.filled_qty, instrument.position))


def _fee_bps(fee: Decimal, notional: Decimal) -> Decimal:
    """The rate an exchange's fee came to, in basis points, to a millionth of one."""
    if not notional:
        return ZERO
    return EXACT.divide(EXACT.multiply(fee, Decimal(10_000)), notional).quantize(FEE_BPS_STEP)


def end_at_exchange(
    order: Order,
    status: OrderStatus,
    exposure: Exposure | None,
    *,
    now: int,
    detail: str | None = None,
    reason: CancelReason = CancelReason.EXCHANGE,
) -> list[Event]:
    """A live order's exchange ended it (CANCELED, with `reason`: why it was asked to;
    EXPIRED; REJECTED, with the exchange's `detail`). Nothing if it has ended already."""
    if not order.is_open:
        return []
    if exposure is not None:
        exposure.filled(order.side, order.remaining, ended=True)
    before = transition(order, status, now)
    if status == OrderStatus.CANCELED:
        return [OrderCanceled(order, before, reason, detail)]
    if status == OrderStatus.EXPIRED:
        return [OrderExpired(order, before)]
    if status == OrderStatus.REJECTED:
        return [OrderRejected(order, before, detail or "rejected by the exchange")]
    raise IllegalTransition(f"order {order.order_id}: an exchange cannot end an order as {status}")


def _working(ref: int, order: Order, taker: bool) -> Working:
    return Working(ref, order.side, order.type, order.limit_price, order.remaining, taker)


def _fills_whole(order: Order, quote: Quote, costs: Costs, account: Account | None) -> bool:
    """Whether `quote` can fill what is left of `order` whole, and the account pay for
    all of it (a FOK fills only so)."""
    fills = match(quote, [_working(0, order, True)], costs)
    if sum((fill.qty for fill in fills), ZERO) != order.remaining:
        return False
    cost = sum((EXACT.add(EXACT.multiply(fill.qty, fill.price), fill.fee) for fill in fills), ZERO)
    return account is None or account.covers(order, cost)


def _execute(
    instrument: InstrumentState,
    quote: Quote,
    orders: list[tuple[Order, bool]],
    costs: Costs,
    account: Account | None,
    *,
    now: int,
    new_id: Callable[[], int],
    source: FillSource,
) -> list[Event]:
    """Run the fill model over `orders` (each with whether it takes), oldest first, and
    apply its fills, one after another, so each sees what the one before spent. A
    MARKET BUY whose fill costs more than its share of the reservation and the free
    balance fills what those cover and the rest of it is canceled. The instrument's
    quote loses the sizes the fills took, and its position moves with each fill. Each
    fill records its provenance: `source`, and the quote's time, level and rates.

    Each order is matched against the quote less what the fills before it took, as
    they were applied (a fill cut to the balance leaves the rest to the next order)."""
    events: list[Event] = []
    left = quote
    for index, (order, taker) in enumerate(orders):
        if order.time_in_force == TimeInForce.FOK and not _fills_whole(order, left, costs, account):
            continue  # it fills whole or not at all: what it cannot take stays for the next
        for proposed in match(left, [_working(index, order, taker)], costs):
            taken = _fill(
                instrument, order, proposed, account, costs=costs, now=now, new_id=new_id, source=source, events=events
            )
            left = left.less(order.side == Side.BUY, taken)
            if taken != proposed.qty or not order.is_open:  # cut to the balance: it walks no further
                break
    instrument.quote = left
    return events


def _fill(
    instrument: InstrumentState,
    order: Order,
    proposed: Fill,
    account: Account | None,
    *,
    costs: Costs,
    now: int,
    new_id: Callable[[], int],
    source: FillSource,
    events: list[Event],
    data_ts: int | None = None,
) -> Decimal:
    """Apply the fill the model proposed for `order`, cut to what the balance covers,
    appending its events; what it took (0: nothing)."""
    qty, fee, spends_all = proposed.qty, proposed.fee, False
    if account is not None:
        qty, spends_all = account.affordable(order, qty, proposed.price, fee, costs)
        if qty <= 0:  # not even a sliver: the order waits, reserved as it was
            return ZERO
        if qty != proposed.qty:
            fee = EXACT.divide(EXACT.multiply(fee, qty), proposed.qty)
    provenance = Provenance(
        source,
        instrument.quote_ts if data_ts is None else data_ts,
        proposed.level_price,
        proposed.level_size,
        proposed.slippage_bps,
        proposed.fee_bps,
        proposed.queue_ahead,
    )
    fill = StoredFill(
        number=new_id(),
        qty=qty,
        price=proposed.price,
        fee=fee,
        liquidity=proposed.liquidity,
        ts=now,
        provenance=provenance,
    )
    _record(instrument, order, fill, events)
    if spends_all and order.is_open:  # its reservation is spent: the rest is canceled
        events.append(
            OrderCanceled(order, transition(order, OrderStatus.CANCELED, now), CancelReason.BALANCE, BALANCE_CUT)
        )
    if account is not None:
        account.filled(order, fill)
    return qty


__all__ = [
    "BALANCE_CUT",
    "Admitted",
    "ExchangeFill",
    "ExchangeReport",
    "ExchangeReportRefused",
    "InstrumentState",
    "Policy",
    "admit",
    "apply_exchange_fills",
    "apply_exchange_report",
    "apply_quote",
    "apply_trade",
    "arrive",
    "cancel",
    "change_trading_state",
    "end_at_exchange",
    "stamp",
]
