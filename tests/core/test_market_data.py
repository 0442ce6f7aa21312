"""Which market data the core takes (in order, fresh, not from the future) and which
it fills against (`MAX_QUOTE_AGE_MS`), called directly."""

import pytest

from app.core import engine
from app.core.controls import TradingState
from app.core.engine import InstrumentState, Policy
from app.core.errors import FutureMarketData, MarketDataRefused
from app.core.events import OrderAccepted, OrderExpired, OrderFilled
from app.core.market_data import FUTURE_TOLERANCE_US
from app.core.vocabulary import OrderStatus, Side, TimeInForce
from tests.core.factories import counter, d, make_instrument, make_order, make_quote

SECOND = 1_000_000
AGED = Policy(max_quote_age=2 * SECOND)  # MAX_QUOTE_AGE_MS=2000
ACTIVE = TradingState()


def test_a_quote_older_than_the_latest_is_refused_and_changes_nothing() -> None:
    instrument = make_instrument()
    engine.apply_quote(
        instrument, make_quote(99, 100), [], Policy(), None, now=10 * SECOND, new_id=counter(), ts=9 * SECOND
    )
    resting = make_order(1, Side.BUY, 1.0, 105.0)
    with pytest.raises(MarketDataRefused) as refused:
        engine.apply_quote(
            instrument, make_quote(101, 102), [(resting, False)], Policy(), None,
            now=11 * SECOND, new_id=counter(), ts=9 * SECOND - 1,
        )  # fmt: skip
    assert refused.value.code == "OUT_OF_ORDER"
    assert (instrument.quote, instrument.quote_ts) == (make_quote(99, 100), 9 * SECOND)
    assert (resting.status, resting.fills) == (OrderStatus.NEW, [])


def test_a_quote_as_old_as_the_latest_is_taken() -> None:
    instrument = make_instrument()
    for bid in (99, 100):
        engine.apply_quote(
            instrument, make_quote(bid, bid + 1), [], Policy(), None, now=SECOND, new_id=counter(), ts=SECOND
        )
    assert instrument.quote == make_quote(100, 101)


def test_a_quote_without_a_time_is_never_out_of_order() -> None:
    """Stamped when it arrives; after a quote stamped later than that (another worker's
    clock, or quotes that raced), it takes the latest's time."""
    instrument = make_instrument()
    engine.apply_quote(instrument, make_quote(99, 100), [], Policy(), None, now=SECOND, new_id=counter(), ts=5 * SECOND)
    engine.apply_quote(instrument, make_quote(98, 99), [], Policy(), None, now=2 * SECOND, new_id=counter())
    assert (instrument.quote, instrument.quote_ts) == (make_quote(98, 99), 5 * SECOND)
    engine.apply_quote(instrument, make_quote(97, 98), [], Policy(), None, now=7 * SECOND, new_id=counter())
    assert instrument.quote_ts == 7 * SECOND


def test_with_a_maximum_age_data_already_that_old_is_refused() -> None:
    now = 100 * SECOND
    taken = make_instrument()
    engine.apply_quote(taken, make_quote(99, 100), [], AGED, None, now=now, new_id=counter(), ts=now - 2 * SECOND)
    assert taken.quote_ts == now - 2 * SECOND
    refusing = make_instrument()
    with pytest.raises(MarketDataRefused) as refused:
        engine.apply_quote(
            refusing, make_quote(99, 100), [], AGED, None, now=now, new_id=counter(), ts=now - 2 * SECOND - 1
        )
    assert refused.value.code == "STALE_MARKET_DATA"
    assert (refusing.quote, refusing.quote_ts) == (None, None)


def test_data_stamped_well_ahead_of_the_clock_is_refused() -> None:
    instrument = make_instrument()
    engine.apply_quote(
        instrument, make_quote(99, 100), [], Policy(), None, now=0, new_id=counter(), ts=FUTURE_TOLERANCE_US
    )
    with pytest.raises(FutureMarketData) as refused:
        engine.apply_quote(
            instrument, make_quote(99, 100), [], Policy(), None, now=0, new_id=counter(), ts=FUTURE_TOLERANCE_US + 1
        )
    assert refused.value.code == "FUTURE_MARKET_DATA"
    assert instrument.quote_ts == FUTURE_TOLERANCE_US


def _with_quote_at(ts: int) -> InstrumentState:
    """An instrument whose latest quote (99/100, 5 on offer) is stamped `ts`."""
    instrument = make_instrument()
    engine.apply_quote(instrument, make_quote(99, 100, ask_size=5), [], AGED, None, now=ts, new_id=counter(), ts=ts)
    return instrument


def test_a_market_order_waits_while_the_data_is_stale_and_fills_on_fresh_data() -> None:
    instrument = _with_quote_at(10 * SECOND)
    order = make_order(1, Side.BUY, 1.0, accepted_at=12 * SECOND + 1)
    admitted = engine.admit(order, instrument, ACTIVE, AGED, None, now=12 * SECOND + 1, new_id=counter())
    assert [type(event) for event in admitted.events] == [OrderAccepted]
    assert (admitted.rests, admitted.passive, order.status) == (True, False, OrderStatus.NEW)
    fresh = make_quote(100, 101, ask_size=5)
    events = engine.apply_quote(
        instrument, fresh, [(order, True)], AGED, None, now=13 * SECOND, new_id=counter(), ts=13 * SECOND
    )
    assert [(type(e), e.fill.price) for e in events if isinstance(e, OrderFilled)] == [(OrderFilled, d(101))]
    assert order.status == OrderStatus.FILLED


def test_at_the_age_limit_data_still_fills() -> None:
    instrument = _with_quote_at(10 * SECOND)
    order = make_order(1, Side.BUY, 1.0, accepted_at=12 * SECOND)
    admitted = engine.admit(order, instrument, ACTIVE, AGED, None, now=12 * SECOND, new_id=counter())
    assert [e.fill.price for e in admitted.events if isinstance(e, OrderFilled)] == [d(100)]


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_an_ioc_or_fok_order_expires_against_stale_data(tif: TimeInForce) -> None:
    instrument = _with_quote_at(10 * SECOND)
    order = make_order(1, Side.BUY, 1.0, tif=tif, accepted_at=13 * SECOND)
    admitted = engine.admit(order, instrument, ACTIVE, AGED, None, now=13 * SECOND, new_id=counter())
    assert [type(event) for event in admitted.events] == [OrderAccepted, OrderExpired]
    assert (order.status, order.fills) == (OrderStatus.EXPIRED, [])


def test_without_a_maximum_age_old_data_fills_as_before() -> None:
    instrument = make_instrument()
    engine.apply_quote(instrument, make_quote(99, 100), [], Policy(), None, now=SECOND, new_id=counter(), ts=SECOND)
    order = make_order(1, Side.BUY, 1.0, accepted_at=10_000 * SECOND)
    admitted = engine.admit(order, instrument, ACTIVE, Policy(), None, now=10_000 * SECOND, new_id=counter())
    assert order.status == OrderStatus.FILLED
    assert [e.fill.price for e in admitted.events if isinstance(e, OrderFilled)] == [d(100)]


def test_a_quote_without_a_time_is_never_refused_even_behind_a_later_stamp() -> None:
    """The latest was stamped as far ahead as clocks may differ, and this worker's clock
    is behind it: an unstamped quote takes the latest's time, with no refusal."""
    instrument = make_instrument()
    engine.apply_quote(instrument, make_quote(99, 100), [], AGED, None, now=0, new_id=counter(), ts=FUTURE_TOLERANCE_US)
    engine.apply_quote(instrument, make_quote(98, 99), [], AGED, None, now=-SECOND, new_id=counter())
    assert (instrument.quote, instrument.quote_ts) == (make_quote(98, 99), FUTURE_TOLERANCE_US)
