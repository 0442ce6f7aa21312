"""Journal entries made from the core's events: each type, the order shown as it was
right after its event (not as it is now), and the filters readers pass."""

from app.core import engine
from app.core.controls import TradingState
from app.core.engine import Policy
from app.core.events import OrderCanceled, OrderFilled
from app.core.journal import EntryFilter, EventType, entries_of, entry_of
from app.core.vocabulary import CancelReason, OrderStatus, Side, TimeInForce, TradingStateName
from tests.core.factories import ETH, counter, d, make_instrument, make_order, make_quote

ACTIVE = TradingState()


def test_an_order_that_fills_on_arrival_is_new_then_partial_then_filled_each_as_of_its_event() -> None:
    instrument = make_instrument(make_quote(99, 100, ask_size=0.4))
    order = make_order(1, Side.BUY, 1.0, 100.0, accepted_at=10)
    admitted = engine.admit(order, instrument, ACTIVE, Policy(), None, now=10, new_id=counter())
    second = engine.apply_quote(
        instrument, make_quote(99, 100), [(order, True)], Policy(), None, now=20, new_id=counter(50)
    )

    new, partial, full = entries_of(1, [*admitted.events, *second])
    assert [entry.seq for entry in (new, partial, full)] == [1, 2, 3]
    assert [entry.type for entry in (new, partial, full)] == [EventType.NEW, EventType.PARTIAL_FILL, EventType.FILL]
    # The order object is FILLED now; each entry shows it as it was then.
    assert order.status == OrderStatus.FILLED
    assert new.order is not None
    assert partial.order is not None
    assert full.order is not None
    assert (new.order.status, new.order.filled_qty, new.order.fills, new.order.updated_at) == (
        OrderStatus.NEW,
        d(0),
        [],
        10,
    )
    assert (partial.order.status, partial.order.filled_qty, len(partial.order.fills)) == (
        OrderStatus.PARTIALLY_FILLED,
        d("0.4"),
        1,
    )
    assert (full.order.status, full.order.filled_qty, len(full.order.fills)) == (OrderStatus.FILLED, d(1), 2)
    assert (new.ts, partial.ts, full.ts) == (10, 10, 20)
    assert partial.fill is order.fills[0]
    assert full.fill is order.fills[1]
    # The position after each fill, not the latest one.
    assert partial.position is not None
    assert full.position is not None
    assert (partial.position.qty, full.position.qty) == (d("0.4"), d(1))
    assert new.order.order_id == order.order_id
    assert new.order_id == order.order_id


def test_a_cancel_and_an_expiry_name_what_ended_the_order() -> None:
    instrument = make_instrument()
    resting = make_order(1, Side.SELL, 2.0, 105.0)
    engine.admit(resting, instrument, ACTIVE, Policy(), None, now=1, new_id=counter())
    canceled = engine.cancel(resting, None, None, now=5)
    assert canceled is not None
    entry = entry_of(7, canceled)
    assert (entry.type, entry.ts, entry.reason, entry.detail) == (EventType.CANCELED, 5, CancelReason.REQUESTED, None)
    assert entry.order is not None
    assert entry.order.status == OrderStatus.CANCELED

    ioc = make_order(2, Side.BUY, 1.0, 90.0, tif=TimeInForce.IOC, accepted_at=8)
    expired = engine.admit(ioc, instrument, ACTIVE, Policy(), None, now=8, new_id=counter()).events[-1]
    entry = entry_of(8, expired)
    assert (entry.type, entry.ts) == (EventType.EXPIRED, 8)
    assert entry.order is not None
    assert entry.order.status == OrderStatus.EXPIRED


def test_a_kill_switch_change_is_one_entry_then_one_cancel_per_open_order() -> None:
    instrument = make_instrument()
    orders = [make_order(n, Side.BUY, 1.0, 90.0 + n, accepted_at=n) for n in (1, 2)]
    for order in orders:
        engine.admit(order, instrument, ACTIVE, Policy(), None, now=1, new_id=counter())
    halted = TradingState(TradingStateName.HALTED, "drill", 30)
    events = engine.change_trading_state(ACTIVE, halted, orders, None, cancel_open=True)
    state, *cancels = entries_of(40, events)
    assert (state.type, state.seq, state.ts, state.trading_state, state.previous_state, state.canceled_orders) == (
        EventType.TRADING_STATE,
        40,
        30,
        halted,
        ACTIVE,
        2,
    )
    assert state.order is None
    assert [(entry.seq, entry.type, entry.reason) for entry in cancels] == [
        (41, EventType.CANCELED, CancelReason.KILL_SWITCH),
        (42, EventType.CANCELED, CancelReason.KILL_SWITCH),
    ]
    assert all(isinstance(event, OrderCanceled) for event in events[1:])


def test_filters_keep_types_instruments_and_orders_and_a_state_change_passes_all_but_types() -> None:
    btc = make_order(1, Side.BUY, 1.0, 100.0)
    eth = make_order(2, Side.BUY, 1.0, 100.0, instrument=ETH)
    instrument = make_instrument(make_quote(99, 100))
    events = [*engine.admit(btc, instrument, ACTIVE, Policy(), None, now=1, new_id=counter()).events]
    events += engine.admit(eth, make_instrument(instrument=ETH), ACTIVE, Policy(), None, now=2, new_id=counter()).events
    events += engine.change_trading_state(ACTIVE, TradingState(TradingStateName.REDUCING), [], None, cancel_open=False)
    entries = entries_of(1, events)
    assert [entry.type for entry in entries] == [EventType.NEW, EventType.FILL, EventType.NEW, EventType.TRADING_STATE]
    assert isinstance(events[1], OrderFilled)

    def kept(keep: EntryFilter) -> list[int]:
        return [entry.seq for entry in entries if keep.keeps(entry)]

    assert EntryFilter().keeps_all
    assert kept(EntryFilter()) == [1, 2, 3, 4]
    assert kept(EntryFilter(types=frozenset({EventType.FILL}))) == [2]
    assert kept(EntryFilter(types=frozenset({EventType.NEW, EventType.TRADING_STATE}))) == [1, 3, 4]
    assert kept(EntryFilter(symbol="ETH/USDT")) == [3, 4]
    assert kept(EntryFilter(exchange="coinbase")) == [4]
    assert kept(EntryFilter(order_id=btc.order_id)) == [1, 2, 4]
    assert not EntryFilter(order_id=btc.order_id).keeps_all


def test_a_filter_judges_an_event_as_it_judges_its_entry() -> None:
    btc = make_order(1, Side.BUY, 1.0, 100.0)
    instrument = make_instrument(make_quote(99, 100))
    events = [*engine.admit(btc, instrument, ACTIVE, Policy(), None, now=1, new_id=counter()).events]
    events += engine.change_trading_state(ACTIVE, TradingState(TradingStateName.HALTED), [], None, cancel_open=False)
    filters = [
        EntryFilter(),
        EntryFilter(types=frozenset({EventType.FILL})),
        EntryFilter(symbol="ETH/USDT"),
        EntryFilter(order_id=btc.order_id),
        EntryFilter(order_id="paper-other", types=frozenset({EventType.NEW, EventType.TRADING_STATE})),
    ]
    for keep in filters:
        assert [keep.keeps_event(event) for event in events] == [keep.keeps(entry) for entry in entries_of(1, events)]
