"""A model-based run of the trading core, with no store: a RuleBasedStateMachine admits
orders, applies quotes, books with depth and prints on the tape, cancels and flips the
kill switch on one or two instruments,
keeping a Book per instrument exactly as the memory store does (app/store/memory.py),
with costs, instrument rules and a paper account, and journaling every step's events
as a store does (app/core/journal.py); after every step it checks the invariants the
core promises, among them that replaying the journal from seq 1 rebuilds every order,
position, balance and the trading state."""

import copy
import itertools
from collections.abc import Iterable
from decimal import Context, Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from app.core import engine
from app.core.balances import CUT_DIGITS, Account, Holding, assets_of
from app.core.book import Book
from app.core.controls import TradingState
from app.core.engine import InstrumentState, Policy
from app.core.errors import IntentRefused
from app.core.events import Event, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, TradingStateChanged
from app.core.journal import Entry, EventType, entries_of
from app.core.matching import Reach, slipped
from app.core.order import TRANSITIONS, Order, StoredFill
from app.core.positions import Position, apply_fill
from app.core.queue import QueuePlace
from app.core.rules import InstrumentRules
from app.core.values import EXACT, ZERO, Costs, Instrument, Quote, Trade, exact
from app.core.vocabulary import (
    CancelReason,
    FillSource,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingStateName,
)
from tests.core.factories import (
    BTC,
    ETH,
    counter,
    exposure_from,
    make_book,
    make_instrument,
    make_order,
    make_quote,
)

WIDE = Context(prec=1000)  # sums in the checks never round
PRICES = [90.0, 98.7, 99.1, 99.9, 100.0, 100.1, 100.3, 101.0, 110.0]
QUANTITIES = [0.05, 0.1, 0.3, 0.5, 1.0, 1.5]
SIZES = [None, 0.0, 0.0, 0.1, 0.3, 1.0]

quotes = st.builds(
    lambda prices, bid_size, ask_size: make_quote(prices[0], prices[1], bid_size, ask_size),
    st.lists(st.sampled_from(PRICES), min_size=2, max_size=2).map(sorted),
    st.sampled_from(SIZES),
    st.sampled_from(SIZES),
)
LEVEL_SIZES = [0.1, 0.3, 1.0]


@st.composite
def books(draw: st.DrawFn) -> Quote:
    """A book of one to three levels a side, best first, not crossed."""
    prices = sorted(draw(st.lists(st.sampled_from(PRICES), min_size=2, max_size=6, unique=True)))
    split = draw(st.integers(min_value=1, max_value=len(prices) - 1))
    bids, asks = prices[:split][::-1][:3], prices[split:][:3]
    size = st.sampled_from(LEVEL_SIZES)
    return make_book([(price, draw(size)) for price in bids], [(price, draw(size)) for price in asks])


trades = st.builds(
    lambda price, qty, buys: Trade(exact(price), exact(qty), buys),
    st.sampled_from(PRICES),
    st.sampled_from([0.05, 0.2, 0.5, 1.0, 3.0]),
    st.booleans(),
)
bps = st.sampled_from([Decimal(0), Decimal("2.5"), Decimal(10)])
costs = st.builds(Costs, bps, bps, bps)
rules = st.builds(
    InstrumentRules,
    lot_size=st.sampled_from([None, Decimal("0.1")]),
    max_open_orders=st.sampled_from([None, 1, 2, 4]),
    max_position=st.sampled_from([None, Decimal("0.5"), Decimal(1), Decimal(2)]),
)
balances = st.none() | st.fixed_dictionaries(
    {
        "USDT": st.sampled_from([Decimal(0), Decimal(52), Decimal(105), Decimal(100000)]),
        "BTC": st.sampled_from([Decimal(0), Decimal("0.5"), Decimal(3)]),
        "ETH": st.sampled_from([Decimal(0), Decimal(1)]),
    }
)
# The status an entry of each order type shows its order in.
STATUS_OF = {
    EventType.NEW: OrderStatus.NEW,
    EventType.PARTIAL_FILL: OrderStatus.PARTIALLY_FILLED,
    EventType.FILL: OrderStatus.FILLED,
    EventType.CANCELED: OrderStatus.CANCELED,
    EventType.EXPIRED: OrderStatus.EXPIRED,
}


def signed(side: Side, qty: Decimal) -> Decimal:
    return qty if side == Side.BUY else qty.copy_negate()


def total(values: Iterable[Decimal]) -> Decimal:
    result = Decimal(0)
    for value in values:
        result = WIDE.add(result, value)
    return result


class CoreMachine(RuleBasedStateMachine):
    """The core driven as a store drives it; `status` follows each order through the events."""

    def __init__(self) -> None:
        super().__init__()
        self.new_id = counter()
        self.clock = itertools.count(1)
        self.keys: list[Instrument] = [BTC]
        self.books: dict[Instrument, Book] = {}
        self.instruments: dict[Instrument, InstrumentState] = {}
        self.trading = TradingState()
        self.policy = Policy()
        self.account: Account | None = None
        self.orders: list[Order] = []
        self.status: dict[int, OrderStatus] = {}  # where the events left each order
        self.start: dict[str, Decimal] = {}  # the paper balances the account started with
        self.entries: list[Entry] = []  # the journal: every step's events, numbered from 1
        self.queue_place: dict[int, QueuePlace | None] = {}  # each resting order's place in its queue

    @initialize(
        two=st.booleans(),
        chosen_costs=costs,
        btc=rules,
        eth=rules,
        start=balances,
        first=st.lists(st.none() | quotes, min_size=2, max_size=2),
        latency=st.sampled_from([0, 0, 3]),  # in steps of the machine's clock
    )
    def open(
        self,
        *,
        two: bool,
        chosen_costs: Costs,
        btc: InstrumentRules,
        eth: InstrumentRules,
        start: dict[str, Decimal] | None,
        first: list[Quote | None],
        latency: int,
    ) -> None:
        """One or two instruments, each with a first quote or none yet."""
        self.keys = [BTC, ETH] if two else [BTC]
        for key, quote in zip(self.keys, first, strict=False):
            self.books[key] = Book()
            self.instruments[key] = make_instrument(quote, instrument=key, book=self.books[key])
        self.policy = Policy(chosen_costs, {BTC: btc, ETH: eth}, latency=latency)
        if start is not None:
            self.account = Account({asset: Holding(value, value) for asset, value in start.items()})
            self.start = dict(start)

    # --- steps -----------------------------------------------------------------------

    @rule(
        data=st.data(),
        side=st.sampled_from(Side),
        order_type=st.sampled_from(OrderType),
        tif=st.sampled_from([TimeInForce.GTC] * 3 + [TimeInForce.IOC, TimeInForce.FOK]),
        qty=st.sampled_from(QUANTITIES),
        limit=st.sampled_from(PRICES),
    )
    def admit(
        self, *, data: st.DataObject, side: Side, order_type: OrderType, tif: TimeInForce, qty: float, limit: float
    ) -> None:
        limit_price = limit if order_type == OrderType.LIMIT else None
        self.enter(data.draw(st.sampled_from(self.keys)), side, qty, limit_price, tif=tif, order_type=order_type)

    @precondition(lambda self: self.account is not None)
    @rule(data=st.data(), qty=st.sampled_from(QUANTITIES))
    def market_buy(self, data: st.DataObject, qty: float) -> None:
        """A GTC MARKET BUY, the one order whose fill can cost more than it reserved (the
        ask moves while it waits), more often than the draws of `admit` would give it."""
        self.enter(data.draw(st.sampled_from(self.keys)), Side.BUY, qty, None)

    def enter(
        self,
        key: Instrument,
        side: Side,
        qty: float,
        limit: float | None,
        *,
        tif: TimeInForce = TimeInForce.GTC,
        order_type: OrderType = OrderType.MARKET,
    ) -> None:
        """Admit an order as the memory store does, and check what admitting it did."""
        instrument, book, now = self.instruments[key], self.books[key], next(self.clock)
        order = make_order(self.new_id(), side, qty, limit, tif=tif, accepted_at=now, instrument=key)
        assert order.type == order_type
        before, quote = self.snapshot(instrument), instrument.quote
        projected = exposure_from(book)(instrument.position).with_open_side(side)
        try:
            admitted = engine.admit(
                order, instrument, self.trading, self.policy, self.account, now=now, new_id=self.new_id
            )
        except IntentRefused as refused:
            self.refused(refused, instrument, before)
            return
        self.journal(admitted.events)
        assert self.trading.state != TradingStateName.HALTED, "HALTED admitted an order"
        if self.trading.state == TradingStateName.REDUCING:
            after = WIDE.add(projected, signed(side, order.exact_qty))
            assert projected != 0
            assert after.copy_abs() < projected.copy_abs()
            assert after == 0 or (after > 0) == (projected > 0)
        assert admitted.events[0] == OrderAccepted(order)
        assert not any(isinstance(event, OrderAccepted) for event in admitted.events[1:])
        self.orders.append(order)
        self.status[order.number] = OrderStatus.NEW
        self.follow(admitted.events[1:], {order.number: (order, True)}, quote)
        assert admitted.rests == order.is_open
        # Passive: a LIMIT that the quote it came to did not reach; it fills as maker from then on.
        # With a latency, only data stamped after its arrival at the venue counts.
        arrived = self.policy.arrived(order, instrument.quote_ts)
        reached = quote is None or not arrived or Reach.of(quote).reaches(side, order.limit_price)
        assert admitted.passive == (admitted.rests and not reached)
        if tif != TimeInForce.GTC and arrived:
            assert not order.is_open
        if not arrived:
            assert not any(isinstance(event, OrderFilled) for event in admitted.events)
        if tif == TimeInForce.FOK:
            assert order.filled_qty in (0, order.exact_qty)
        if admitted.rests:
            book.add(order, passive=admitted.passive, queue_place=admitted.queue_place, arriving=admitted.arriving)
            self.queue_place[order.number] = admitted.queue_place
            # With no latency every order is at the venue when it is accepted.
            assert not admitted.arriving or self.policy.latency
        else:
            assert admitted.queue_place is None

    def refused(self, refusal: IntentRefused, instrument: InstrumentState, before: tuple[object, ...]) -> None:
        """A refusal changes nothing (a check may work the exposure out: a cache), and
        HALTED refuses everything as TRADING_HALTED."""
        if before[2] is None:
            before = (*before[:2], copy.copy(instrument.exposure_known), *before[3:])
        assert self.snapshot(instrument) == before, refusal.code
        if self.trading.state == TradingStateName.HALTED:
            assert refusal.code == "TRADING_HALTED"

    @rule(data=st.data(), quote=quotes)
    def quote(self, data: st.DataObject, quote: Quote) -> None:
        """A quote for one instrument: it fills what it reaches and becomes the latest."""
        self.apply(data.draw(st.sampled_from(self.keys)), quote)

    def waiting_market_buys(self) -> list[Order]:
        return [
            order
            for order in self.orders
            if order.is_open and order.type == OrderType.MARKET and order.side == Side.BUY
        ]

    @precondition(lambda self: self.account is not None and self.waiting_market_buys())
    @rule(data=st.data(), gap=st.sampled_from([1.05, 1.5, 3.0]), ask_size=st.sampled_from([None, 0.3]))
    def ask_gaps_up(self, data: st.DataObject, gap: float, ask_size: float | None) -> None:
        """The ask gaps up while a MARKET BUY waits: what it reserved may no longer cover its fill."""
        order = data.draw(st.sampled_from(self.waiting_market_buys()))
        assert self.account is not None
        ask = round(float(self.account.reservations[order.number].unit) * gap, 2)
        self.apply((order.exchange, order.symbol), make_quote(round(ask * 0.99, 2), ask, None, ask_size))

    @rule(data=st.data(), book=books())
    def book(self, data: st.DataObject, book: Quote) -> None:
        """A book with depth for one instrument: orders walk its levels."""
        self.apply(data.draw(st.sampled_from(self.keys)), book, FillSource.BOOK)

    def apply(self, key: Instrument, quote: Quote, source: FillSource = FillSource.QUOTE) -> None:
        """A quote or book as the memory store applies it: the orders its Reach reaches,
        then settle. No level gives more than it showed, and what fills took is gone
        from the front of the book."""
        instrument, book = self.instruments[key], self.books[key]
        reach = Reach.of(quote)
        reached = book.reached_by(reach) if book else []
        now = next(self.clock)
        self.arrive(key, engine.stamp(instrument, None, now, self.policy))
        events = engine.apply_quote(
            instrument,
            quote,
            reached,
            self.policy,
            self.account,
            now=now,
            new_id=self.new_id,
            source=source,
        )
        self.journal(events)
        if reached:
            assert instrument.quote_ts is not None
            book.settle(reach, self.policy.arrived_by(instrument.quote_ts))
        self.follow(events, {order.number: (order, taker) for order, taker in reached}, quote)
        filled = [event.fill for event in events if isinstance(event, OrderFilled)]
        assert {fill.provenance.source for fill in filled if fill.provenance} <= {source}
        assert instrument.quote is not None
        for side in Side:
            buying = side == Side.BUY
            posted = list(quote.levels(buying))
            used = [event.fill for event in events if isinstance(event, OrderFilled) and event.order.side == side]
            left = list(instrument.quote.levels(buying))
            if posted[0][1] is None:  # an unlimited top: nothing is used up
                assert left == posted
                continue
            for price, size in posted:
                assert size is not None
                took = total(fill.qty for fill in used if fill.provenance and fill.provenance.level_price == price)
                assert took <= size, "more taken from a level than it showed"
            shown = total(size for _, size in posted if size is not None)
            assert total(size for _, size in left if size is not None) == WIDE.subtract(
                shown, total(fill.qty for fill in used)
            )

    def resting_limits(self) -> list[Order]:
        return [order for order in self.orders if order.is_open and order.limit_price is not None]

    @precondition(lambda self: self.resting_limits())
    @rule(data=st.data(), through=st.booleans(), qty=st.sampled_from([0.05, 0.2, 0.5, 1.0, 3.0]))
    def trade_at_a_resting_price(self, data: st.DataObject, through: bool, qty: float) -> None:
        """A print at a resting LIMIT order's price, or just through it, more often than
        the draws of `trade` would give one."""
        order = data.draw(st.sampled_from(self.resting_limits()))
        assert order.limit_price is not None
        price = order.limit_price + ((-0.05 if order.side == Side.BUY else 0.05) if through else 0.0)
        trade = Trade(exact(round(price, 2)), exact(qty), buys=order.side == Side.SELL)
        self.print_on((order.exchange, order.symbol), trade)

    @rule(data=st.data(), trade=trades)
    def trade(self, data: st.DataObject, trade: Trade) -> None:
        self.print_on(data.draw(st.sampled_from(self.keys)), trade)

    def arrive(self, key: Instrument, ts: int) -> None:
        """As the memory store does before market data stamped `ts` applies: the LIMIT
        orders that reach the venue by then take their places in the queue."""
        book = self.books[key]
        for order, place in engine.arrive(self.instruments[key], book.arriving, self.policy, ts):
            assert self.queue_place.get(order.number) is None
            book.arrived(order, place)
            self.queue_place[order.number] = place

    def print_on(self, key: Instrument, trade: Trade) -> None:
        """A print as the memory store applies it: the passive orders it meets, each with
        its place in the queue. It fills no more than its size, each order at its own
        price and at most what the print left past the queue ahead of it."""
        instrument, book = self.instruments[key], self.books[key]
        side = Side.SELL if trade.buys else Side.BUY
        price = float(trade.price)
        now = next(self.clock)
        self.arrive(key, engine.stamp(instrument, None, now, self.policy))
        met = book.met_by_trade(side, price)
        ahead = {order.number: instrument.queues.ahead(side, price, x) for order, x in met}
        assert all(value >= 0 for value in ahead.values())
        events = engine.apply_trade(instrument, trade, met, self.policy, self.account, now=now, new_id=self.new_id)
        self.journal(events)
        if events:
            book.settle_trade(side, price)
        self.follow(events, {order.number: (order, False) for order, _ in met}, None, trade)
        filled = [event for event in events if isinstance(event, OrderFilled)]
        assert total(event.fill.qty for event in filled) <= trade.qty, "a print filled more than its size"
        for event in filled:
            order, fill = event.order, event.fill
            assert fill.provenance is not None
            assert fill.provenance.source == FillSource.TRADE
            assert (fill.provenance.level_price, fill.provenance.level_size) == (trade.price, trade.qty)
            if order.limit_price == price:
                assert fill.qty <= WIDE.subtract(trade.qty, ahead[order.number])
                assert fill.provenance.queue_ahead == min(ahead[order.number], trade.qty)

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """A client cancels any order: an event if it was open, None otherwise."""
        order = data.draw(st.sampled_from(self.orders))
        key = (order.exchange, order.symbol)
        was_open = order.is_open
        event = engine.cancel(order, self.instruments[key].exposure_known, self.account, now=next(self.clock))
        assert (event is not None) == was_open
        if event is not None:
            self.journal([event])
            assert event.reason == CancelReason.REQUESTED
            self.books[key].remove(order)
            self.follow([event], {order.number: (order, False)}, None)

    @rule(
        # ACTIVE most often: a run spent HALTED only refuses.
        state=st.sampled_from([TradingStateName.ACTIVE] * 3 + [TradingStateName.REDUCING, TradingStateName.HALTED]),
        cancel_open=st.booleans(),
        only_stricter=st.booleans(),
    )
    def change_trading_state(self, state: TradingStateName, cancel_open: bool, only_stricter: bool) -> None:
        """The kill switch: the state changes (unless only_stricter and not stricter), and
        with cancel_open every open order is canceled, oldest first."""
        wanted = TradingState(state, "test", next(self.clock))
        before = self.trading
        open_orders = [order for key in self.keys for order in self.books[key].orders()]
        events = engine.change_trading_state(
            before,
            wanted,
            open_orders,
            self.account,
            cancel_open=cancel_open,
            only_stricter=only_stricter,
            exposure_of=lambda order: self.instruments[(order.exchange, order.symbol)].exposure_known,
        )
        self.journal(events)
        if not events:
            assert only_stricter
            assert state.strictness <= before.state.strictness
            return
        self.trading = wanted
        assert events[0] == TradingStateChanged(before, wanted, len(events) - 1)
        canceled = events[1:]
        assert len(canceled) == (len(open_orders) if cancel_open else 0)
        times = []
        for event in canceled:
            assert isinstance(event, OrderCanceled)
            assert event.reason == CancelReason.KILL_SWITCH
            key = (event.order.exchange, event.order.symbol)
            self.books[key].remove(event.order)
            self.follow([event], {event.order.number: (event.order, False)}, None)
            times.append(event.order.accepted_at)
        assert times == sorted(times)

    @rule(data=st.data())
    def work_out_exposure(self, data: st.DataObject) -> None:
        """A check may ask for an instrument's exposure at any time; from then on the core keeps it."""
        self.instruments[data.draw(st.sampled_from(self.keys))].exposure()

    # --- bookkeeping -----------------------------------------------------------------

    def journal(self, events: list[Event]) -> None:
        """Journal a step's events as a store does, when the step returns: numbered on
        from the last seq, each order shown as of its event (the objects change later)."""
        self.entries += entries_of(len(self.entries) + 1, events)

    def snapshot(self, instrument: InstrumentState) -> tuple[object, ...]:
        account = self.account
        return (
            instrument.quote,
            instrument.position,
            copy.copy(instrument.exposure_known),
            None if account is None else copy.deepcopy(account.holdings),
            None if account is None else copy.deepcopy(account.reservations),
        )

    def follow(
        self,
        events: list[Event],
        concerned: dict[int, tuple[Order, bool]],
        quote: Quote | None,
        trade: Trade | None = None,
    ) -> None:
        """Check each event's status move against the table and the last known status,
        and each fill against the fill model (`concerned`: the orders the step may
        change, each with whether it takes; `quote` or `trade`: what fills came from)."""
        for event in events:
            assert not isinstance(event, OrderAccepted | TradingStateChanged)
            order = event.order
            assert order.number in concerned, "an event for an order the step did not concern"
            if isinstance(event, OrderFilled):
                after = event.after
                fill = event.fill
                assert event.filled_qty <= order.exact_qty
                assert (after == OrderStatus.FILLED) == (event.filled_qty == order.exact_qty)
                if trade is not None:  # a maker's fill at its own price, met by the print
                    assert order.limit_price is not None
                    assert (fill.price, fill.liquidity) == (exact(order.limit_price), Liquidity.MAKER)
                    if order.side == Side.BUY:
                        assert float(trade.price) <= order.limit_price
                    else:
                        assert float(trade.price) >= order.limit_price
                else:
                    assert quote is not None
                    self.check_price(order, concerned[order.number][1], fill, quote)
            elif isinstance(event, OrderCanceled):
                after = OrderStatus.CANCELED
                if event.reason == CancelReason.BALANCE:
                    assert order.side == Side.BUY
                    assert order.type == OrderType.MARKET
                    assert self.account is not None
                    assert order.fills
                    assert len(order.fills[-1].qty.as_tuple().digits) <= CUT_DIGITS
            else:
                assert isinstance(event, OrderExpired)
                assert order.time_in_force != TimeInForce.GTC
                after = OrderStatus.EXPIRED
            assert event.before == self.status[order.number]
            assert after in TRANSITIONS[event.before], (event.before, after)
            self.status[order.number] = after

    def check_price(self, order: Order, taker: bool, fill: StoredFill, quote: Quote) -> None:
        """The fill model's price: MARKET at a level of the book with slippage, a taking
        LIMIT at a level, a passive one at its own limit as maker; never outside the
        book's levels on the side it takes."""
        price, liquidity = fill.price, fill.liquidity
        assert fill.provenance is not None
        level = fill.provenance.level_price
        assert level in [at for at, _ in quote.levels(order.side == Side.BUY)], "a fill outside the book's levels"
        if order.type == OrderType.MARKET:
            assert liquidity == Liquidity.TAKER
            assert price == slipped(order.side, level, self.policy.costs)
        elif taker:
            assert liquidity == Liquidity.TAKER
            assert price == level
        else:
            assert liquidity == Liquidity.MAKER
            assert order.limit_price is not None
            assert price == exact(order.limit_price)

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def orders_are_consistent(self) -> None:
        for order in self.orders:
            filled = order.filled_qty
            assert 0 <= filled <= order.exact_qty
            assert filled == total(fill.qty for fill in order.fills)
            assert order.status == self.status[order.number], "a status changed without an event"
            if order.status == OrderStatus.NEW:
                assert filled == 0
                assert not order.fills
            elif order.status == OrderStatus.PARTIALLY_FILLED:
                assert 0 < filled < order.exact_qty
            elif order.status == OrderStatus.FILLED:
                assert filled == order.exact_qty
            else:
                assert filled < order.exact_qty
            if order.time_in_force == TimeInForce.FOK:
                assert filled in (0, order.exact_qty)
            for fill in order.fills:
                assert fill.qty > 0
                assert fill.fee >= 0
                if order.limit_price is not None:
                    limit = exact(order.limit_price)
                    assert fill.price <= limit if order.side == Side.BUY else fill.price >= limit

    @invariant()
    def books_hold_exactly_the_open_orders(self) -> None:
        for key in self.keys:
            in_book = {order.number for order in self.books[key].orders()}
            assert len(self.books[key]) == len(in_book)
            open_here = {
                order.number for order in self.orders if order.is_open and (order.exchange, order.symbol) == key
            }
            assert in_book == open_here

    @invariant()
    def queues_stay_within_what_is_shown(self) -> None:
        """No queue ahead is negative, or more than its level shows (to its 12th place);
        an order whose level is gone has nothing ahead."""
        for key in self.keys:
            queues = self.instruments[key].queues
            for order in self.books[key].orders():
                if order.limit_price is None:
                    continue
                ahead = queues.ahead(order.side, order.limit_price, self.queue_place.get(order.number))
                assert ahead >= 0
                level = queues.levels[order.side].get(order.limit_price)
                if level is None:
                    assert ahead == 0
                else:
                    level.settle()
                    assert ahead <= level.shown + Decimal("1e-12")

    @invariant()
    def positions_are_their_fills(self) -> None:
        for key in self.keys:
            instrument = self.instruments[key]
            mine = [order for order in self.orders if (order.exchange, order.symbol) == key]
            fills = [(order.side, fill) for order in mine for fill in order.fills]
            position = instrument.position
            assert position.qty == total(signed(side, fill.qty) for side, fill in fills)
            assert position.fees == total(fill.fee for _, fill in fills)
            if instrument.quote is not None:
                for size in (instrument.quote.bid_size, instrument.quote.ask_size):
                    assert size is None or size >= 0
            counted = exposure_from(self.books[key])(position)
            known = instrument.exposure_known
            if known is not None:
                assert known == counted
            rules = self.policy.rules[key]
            if rules.max_open_orders is not None:
                assert counted.open_orders <= rules.max_open_orders
            if rules.max_position is not None:
                for side in Side:
                    assert counted.with_open_side(side).copy_abs() <= rules.max_position

    @invariant()
    def balances_add_up(self) -> None:
        account = self.account
        if account is None:
            return
        open_orders = {order.number: order for order in self.orders if order.is_open}
        assert set(account.reservations) == set(open_orders)
        for number, reservation in account.reservations.items():
            assert reservation.held == WIDE.multiply(open_orders[number].remaining, reservation.unit)
        flows: dict[str, Decimal] = {}
        for order in self.orders:
            base, quote = assets_of(order.symbol)
            for fill in order.fills:
                paid = WIDE.multiply(fill.qty, fill.price)
                if order.side == Side.BUY:
                    flows[base] = WIDE.add(flows.get(base, Decimal(0)), fill.qty)
                    flows[quote] = WIDE.subtract(flows.get(quote, Decimal(0)), WIDE.add(paid, fill.fee))
                else:
                    flows[base] = WIDE.subtract(flows.get(base, Decimal(0)), fill.qty)
                    flows[quote] = WIDE.add(flows.get(quote, Decimal(0)), WIDE.subtract(paid, fill.fee))
        for asset, holding in account.holdings.items():
            held = total(r.held for r in account.reservations.values() if r.asset == asset)
            assert holding.reserved == held, asset
            assert holding.free >= 0, (asset, holding)
            assert holding.total == WIDE.add(holding.start, flows.get(asset, Decimal(0))), asset

    @invariant()
    def journal_replays_the_state(self) -> None:
        """Replaying the journal from seq 1 rebuilds every order's status and filled
        quantity, every position and balance, and the trading state."""
        entries = self.entries
        assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1)), "a gap in the seqs"
        assert all(earlier.ts <= later.ts for earlier, later in itertools.pairwise(entries))
        self.replay_orders(entries)
        self.replay_positions(entries)
        self.replay_balances(entries)
        self.replay_trading_state(entries)

    def replay_orders(self, entries: list[Entry]) -> None:
        """Each order: a `new` entry first (NEW, nothing filled), then moves the
        transition table allows, its fills adding up; the last entry is the order now."""
        status: dict[int, OrderStatus] = {}
        filled: dict[int, Decimal] = {}
        fills: dict[int, list[StoredFill]] = {}
        last: dict[int, Order] = {}
        for entry in entries:
            order = entry.order
            if entry.type == EventType.TRADING_STATE:
                assert order is None
                continue
            assert order is not None
            number = order.number
            assert order.status == STATUS_OF[entry.type], entry
            if entry.type == EventType.NEW:
                assert number not in status, "a second new entry"
                assert order.filled_qty == 0
                assert not order.fills
                assert entry.ts == order.accepted_at
                status[number], filled[number], fills[number] = OrderStatus.NEW, ZERO, []
            else:
                assert number in status, "an entry before the order's new one"
                assert order.status in TRANSITIONS[status[number]], (status[number], order.status)
                status[number] = order.status
            if entry.type in (EventType.PARTIAL_FILL, EventType.FILL):
                assert entry.fill is not None
                assert entry.position is not None
                filled[number] = WIDE.add(filled[number], entry.fill.qty)
                fills[number].append(entry.fill)
                assert order.filled_qty == filled[number]
                assert order.fills == fills[number]  # the very fills, up to this one
            else:
                assert entry.fill is None
                assert entry.position is None
            assert (entry.reason is not None) == (entry.type == EventType.CANCELED)
            last[number] = order
        assert set(last) == {order.number for order in self.orders}
        for order in self.orders:
            seen = last[order.number]
            assert (seen.status, seen.filled_qty) == (order.status, order.filled_qty), order.order_id
            assert filled[order.number] == order.filled_qty
            assert fills[order.number] == order.fills

    def replay_positions(self, entries: list[Entry]) -> None:
        """Each instrument's fills, in seq order, through apply_fill from flat: each fill
        entry carries the position so far, and the last one is the position now."""
        positions = {key: Position() for key in self.keys}
        carried: dict[Instrument, Position] = {}
        for entry in entries:
            fill, order = entry.fill, entry.order
            if fill is None:
                continue
            assert order is not None
            key = (order.exchange, order.symbol)
            positions[key] = apply_fill(positions[key], order.side, fill.qty, fill.price, fill.fee)
            assert entry.position == positions[key], entry.seq
            carried[key] = entry.position
        for key in self.keys:
            assert positions[key] == self.instruments[key].position, key
            assert carried.get(key, Position()) == self.instruments[key].position, key

    def replay_balances(self, entries: list[Entry]) -> None:
        """The fills, in seq order, moved from the starting balances as Account.filled
        moves them (in EXACT): every asset's total is what the account holds."""
        account = self.account
        if account is None:
            return
        totals = dict(self.start)
        for entry in entries:
            fill, order = entry.fill, entry.order
            if fill is None:
                continue
            assert order is not None
            base, quote = assets_of(order.symbol)
            proceeds = EXACT.multiply(fill.qty, fill.price)
            bought, paid = totals.get(base, ZERO), totals.get(quote, ZERO)
            if order.side == Side.BUY:
                totals[base] = EXACT.add(bought, fill.qty)
                totals[quote] = EXACT.subtract(paid, EXACT.add(proceeds, fill.fee))
            else:
                totals[base] = EXACT.subtract(bought, fill.qty)
                totals[quote] = EXACT.add(paid, EXACT.subtract(proceeds, fill.fee))
        for asset in set(totals) | set(account.holdings):
            holding = account.holdings.get(asset)
            assert holding is not None, asset
            assert totals.get(asset, ZERO) == holding.total, asset

    def replay_trading_state(self, entries: list[Entry]) -> None:
        """Each trading-state entry follows the one before it and is followed by the
        kill-switch cancels it counts; the last one is the state now."""
        state = TradingState()
        for index, entry in enumerate(entries):
            if entry.type != EventType.TRADING_STATE:
                continue
            assert entry.previous_state == state
            assert entry.trading_state is not None
            assert entry.canceled_orders is not None
            state = entry.trading_state
            following = entries[index + 1 : index + 1 + entry.canceled_orders]
            assert len(following) == entry.canceled_orders
            assert all(
                later.type == EventType.CANCELED and later.reason == CancelReason.KILL_SWITCH for later in following
            )
        assert state == self.trading


CoreMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestCoreMachine = CoreMachine.TestCase
