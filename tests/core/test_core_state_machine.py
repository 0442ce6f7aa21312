"""A model-based run of the trading core, with no store: a RuleBasedStateMachine admits
orders, applies quotes, cancels and flips the kill switch on one or two instruments,
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
from app.core.matching import Reach, market_price, touch
from app.core.order import TRANSITIONS, Order, StoredFill
from app.core.positions import Position, apply_fill
from app.core.rules import InstrumentRules
from app.core.values import EXACT, ZERO, Costs, Instrument, Quote, exact
from app.core.vocabulary import (
    CancelReason,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingStateName,
)
from tests.core.factories import BTC, ETH, counter, exposure_from, make_instrument, make_order, make_quote

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

    @initialize(
        two=st.booleans(),
        chosen_costs=costs,
        btc=rules,
        eth=rules,
        start=balances,
        first=st.lists(st.none() | quotes, min_size=2, max_size=2),
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
    ) -> None:
        """One or two instruments, each with a first quote or none yet."""
        self.keys = [BTC, ETH] if two else [BTC]
        for key, quote in zip(self.keys, first, strict=False):
            self.books[key] = Book()
            self.instruments[key] = make_instrument(quote, instrument=key, book=self.books[key])
        self.policy = Policy(chosen_costs, {BTC: btc, ETH: eth})
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
        reached = quote is None or Reach.of(quote).reaches(side, order.limit_price)
        assert admitted.passive == (admitted.rests and not reached)
        if tif != TimeInForce.GTC:
            assert not order.is_open
        if tif == TimeInForce.FOK:
            assert order.filled_qty in (0, order.exact_qty)
        if admitted.rests:
            book.add(order, passive=admitted.passive)

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

    def apply(self, key: Instrument, quote: Quote) -> None:
        """A quote as the memory store applies it: the orders its Reach reaches, then settle."""
        instrument, book = self.instruments[key], self.books[key]
        reach = Reach.of(quote)
        reached = book.reached_by(reach) if book else []
        events = engine.apply_quote(
            instrument, quote, reached, self.policy, self.account, now=next(self.clock), new_id=self.new_id
        )
        self.journal(events)
        if reached:
            book.settle(reach)
        self.follow(events, {order.number: (order, taker) for order, taker in reached}, quote)
        filled = [event for event in events if isinstance(event, OrderFilled)]
        assert instrument.quote is not None
        for side in Side:
            size = quote.ask_size if side == Side.BUY else quote.bid_size
            used = total(event.fill.qty for event in filled if event.order.side == side)
            left = instrument.quote.ask_size if side == Side.BUY else instrument.quote.bid_size
            assert left == (None if size is None else WIDE.subtract(size, used))

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

    def follow(self, events: list[Event], concerned: dict[int, tuple[Order, bool]], quote: Quote | None) -> None:
        """Check each event's status move against the table and the last known status,
        and each fill against the fill model (`concerned`: the orders the step may
        change, each with whether it takes; `quote`: the one fills came from)."""
        for event in events:
            assert not isinstance(event, OrderAccepted | TradingStateChanged)
            order = event.order
            assert order.number in concerned, "an event for an order the step did not concern"
            if isinstance(event, OrderFilled):
                after = event.after
                fill = event.fill
                assert event.filled_qty <= order.exact_qty
                assert (after == OrderStatus.FILLED) == (event.filled_qty == order.exact_qty)
                assert quote is not None
                self.check_price(order, concerned[order.number][1], fill.price, fill.liquidity, quote)
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

    def check_price(self, order: Order, taker: bool, price: Decimal, liquidity: Liquidity, quote: Quote) -> None:
        """The fill model's price: MARKET at the touch with slippage, a taking LIMIT at
        the touch, a passive one at its own limit as maker."""
        if order.type == OrderType.MARKET:
            assert liquidity == Liquidity.TAKER
            assert price == market_price(order.side, quote, self.policy.costs)
        elif taker:
            assert liquidity == Liquidity.TAKER
            assert price == touch(order.side, quote)
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
