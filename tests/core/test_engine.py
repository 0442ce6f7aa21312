"""The core's operations: admit, apply_quote, cancel and change_trading_state, driven
directly with an InstrumentState, a Book and an Account (no store)."""

import copy
from decimal import Context

import pytest

from app.core import engine
from app.core.balances import CUT_DIGITS, Account, Holding
from app.core.book import Book
from app.core.controls import Exposure, TradingState
from app.core.engine import BALANCE_CUT, InstrumentState, Policy
from app.core.errors import IntentRefused
from app.core.events import Event, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, TradingStateChanged
from app.core.matching import Reach
from app.core.order import Order
from app.core.positions import Position
from app.core.rules import InstrumentRules
from app.core.values import Costs, Quote
from app.core.vocabulary import CancelReason, Liquidity, OrderStatus, Side, TimeInForce, TradingStateName
from tests.core.factories import BTC, counter, d, exposure_from, make_instrument, make_order, make_quote

ACTIVE = TradingState()
PLAIN = Policy()
FEES = Policy(Costs(slippage_bps=d("10"), taker_fee_bps=d("5"), maker_fee_bps=d("2")))
WIDE = Context(prec=1000)


def account(usdt: str = "100000", btc: str = "100") -> Account:
    return Account({"USDT": Holding(d(usdt), d(usdt)), "BTC": Holding(d(btc), d(btc))})


def admit(
    order: Order,
    instrument: InstrumentState,
    policy: Policy = PLAIN,
    *,
    acct: Account | None = None,
    trading: TradingState = ACTIVE,
    now: int = 1,
) -> engine.Admitted:
    return engine.admit(order, instrument, trading, policy, acct, now=now, new_id=counter(1000))


def quote_book(
    instrument: InstrumentState,
    book: Book,
    quote: Quote,
    policy: Policy = PLAIN,
    *,
    acct: Account | None = None,
    now: int = 2,
) -> list[Event]:
    """A quote as the memory store applies it: the book's reached orders, then settle."""
    reach = Reach.of(quote)
    reached = book.reached_by(reach) if book else []
    events = engine.apply_quote(instrument, quote, reached, policy, acct, now=now, new_id=counter(2000))
    if reached:
        book.settle(reach)
    return events


def kinds(events: list[Event]) -> list[type]:
    return [type(event) for event in events]


def exposure_of_book(instrument: InstrumentState, book: Book) -> Exposure:
    return exposure_from(book)(instrument.position)


# --- admit ---------------------------------------------------------------------------


def test_without_quote_an_order_is_accepted_and_waits_as_taker() -> None:
    instrument = make_instrument()
    admitted = admit(make_order(1, Side.BUY, 1.0, 100.0), instrument)
    assert kinds(admitted.events) == [OrderAccepted]
    assert (admitted.rests, admitted.passive) == (True, False)


def test_unreached_limit_rests_passive() -> None:
    instrument = make_instrument(make_quote(99, 100))
    order = make_order(1, Side.BUY, 1.0, 99.5)
    admitted = admit(order, instrument)
    assert kinds(admitted.events) == [OrderAccepted]
    assert (admitted.rests, admitted.passive) == (True, True)
    assert order.status == OrderStatus.NEW


def test_crossing_limit_fills_at_the_touch_and_the_rest_waits_as_taker() -> None:
    """BUY 1 @100.3 against ask 100.1 x 0.4: 0.4 fill at 100.1 first (accepted event
    first), the rest rests taking; the quote's ask size is used up and the position moves."""
    instrument = make_instrument(make_quote(99.1, 100.1, bid_size=2, ask_size=0.4))
    order = make_order(1, Side.BUY, 1.0, 100.3)
    admitted = admit(order, instrument, FEES)
    assert kinds(admitted.events) == [OrderAccepted, OrderFilled]
    filled = admitted.events[1]
    assert isinstance(filled, OrderFilled)
    assert (filled.fill.qty, filled.fill.price, filled.fill.liquidity) == (d("0.4"), d("100.1"), Liquidity.TAKER)
    assert filled.fill.fee == d("0.4") * d("100.1") * d("5") / d("10000")
    assert (filled.before, filled.after, filled.filled_qty) == (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, d("0.4"))
    assert (admitted.rests, admitted.passive) == (True, False)
    assert instrument.quote == make_quote(99.1, 100.1, bid_size=2, ask_size=0)
    assert instrument.position.qty == d("0.4")
    assert instrument.position.cost == d("40.04")


def test_ioc_keeps_its_filled_part_and_expires_the_rest() -> None:
    acct = account()
    instrument = make_instrument(make_quote(99, 100, ask_size=0.25))
    order = make_order(1, Side.BUY, 1.0, 100.0, tif=TimeInForce.IOC)
    admitted = admit(order, instrument, PLAIN, acct=acct)
    assert kinds(admitted.events) == [OrderAccepted, OrderFilled, OrderExpired]
    expired = admitted.events[2]
    assert isinstance(expired, OrderExpired)
    assert expired.before == OrderStatus.PARTIALLY_FILLED
    assert order.status == OrderStatus.EXPIRED
    assert order.filled_qty == d("0.25")
    assert not admitted.rests
    assert instrument.position.qty == d("0.25")
    assert acct.reservations == {}
    assert acct.holdings["USDT"] == Holding(d(100000), d(100000) - d(25), d(0))


def test_ioc_without_quote_expires_unfilled() -> None:
    acct = account()
    order = make_order(1, Side.SELL, 1.0, 100.0, tif=TimeInForce.IOC)
    admitted = admit(order, make_instrument(), PLAIN, acct=acct)
    assert kinds(admitted.events) == [OrderAccepted, OrderExpired]
    assert order.status == OrderStatus.EXPIRED
    assert acct.holdings["BTC"].reserved == 0


@pytest.mark.parametrize("limit", [None, 100.0, 99.0])
def test_fok_that_cannot_fill_whole_takes_none_of_the_size(limit: float | None) -> None:
    """FOK 1 against ask size 0.5 (or a limit the ask does not reach): nothing fills, the
    quote keeps its size, the position does not move, and the order expires."""
    quote = make_quote(99, 100, ask_size=0.5 if limit != 99.0 else None)
    instrument = make_instrument(quote)
    order = make_order(1, Side.BUY, 1.0, limit, tif=TimeInForce.FOK)
    admitted = admit(order, instrument, FEES, acct=account())
    assert kinds(admitted.events) == [OrderAccepted, OrderExpired]
    assert order.filled_qty == 0
    assert order.status == OrderStatus.EXPIRED
    assert instrument.quote == quote
    assert instrument.position == Position()
    assert not admitted.rests


def test_fok_that_can_fill_whole_fills() -> None:
    instrument = make_instrument(make_quote(99, 100, bid_size=1))
    order = make_order(1, Side.SELL, 1.0, tif=TimeInForce.FOK)
    admitted = admit(order, instrument, FEES)
    assert kinds(admitted.events) == [OrderAccepted, OrderFilled]
    assert order.status == OrderStatus.FILLED
    assert instrument.quote is not None
    assert instrument.quote.bid_size == 0
    assert order.fills[0].price == d("98.901")  # the bid less 10 bps of slippage


REFUSALS = [
    ("TRADING_HALTED", TradingState(TradingStateName.HALTED), make_order(1, Side.BUY, 1.0, 100.0)),
    ("MAX_QTY", ACTIVE, make_order(1, Side.BUY, 5.0, 100.0)),
    ("MAX_POSITION", ACTIVE, make_order(1, Side.BUY, 2.5, 100.0)),
    ("REDUCE_ONLY", TradingState(TradingStateName.REDUCING), make_order(1, Side.BUY, 1.0, 100.0)),
    ("INSUFFICIENT_BALANCE", ACTIVE, make_order(1, Side.BUY, 1.0, 100.0)),
    ("INSUFFICIENT_BALANCE", ACTIVE, make_order(1, Side.SELL, 2.4)),
]


@pytest.mark.parametrize(("code", "trading", "order"), REFUSALS, ids=[f"{c}-{i}" for i, (c, *_) in enumerate(REFUSALS)])
def test_a_refusal_raises_and_changes_nothing(code: str, trading: TradingState, order: Order) -> None:
    """A refused intent leaves the instrument's quote and position, the account's holdings
    and reservations, and the order itself as they were."""
    book = Book()
    instrument = make_instrument(make_quote(99, 100, ask_size=1), book=book)
    instrument.position = Position(d("0.5"), d("50"), d("1"), d("0.1"))
    acct = Account({"USDT": Holding(d(120), d(120)), "BTC": Holding(d(2), d(2))})
    resting = make_order(9, Side.BUY, 0.5, 99.0)
    admit(resting, instrument, acct=acct)
    book.add(resting, passive=True)
    policy = Policy(rules={BTC: InstrumentRules(max_qty=d(4), max_position=d(2))})
    before = (instrument.quote, instrument.position, copy.deepcopy(acct.holdings), copy.deepcopy(acct.reservations))
    with pytest.raises(IntentRefused) as refused:
        admit(order, instrument, policy, acct=acct, trading=trading)
    assert refused.value.code == code
    assert (instrument.quote, instrument.position, acct.holdings, acct.reservations) == before
    assert order.status == OrderStatus.NEW
    assert order.filled_qty == 0
    assert order.fills == []
    assert order.updated_at is None


def test_admit_keeps_a_known_exposure_up_to_date() -> None:
    book = Book()
    instrument = make_instrument(make_quote(99, 100, ask_size=0.5), book=book)
    policy = Policy(rules={BTC: InstrumentRules(max_open_orders=5)})
    for number, (side, qty, limit) in enumerate([(Side.BUY, 1.0, 100.0), (Side.SELL, 2.0, 101.0)], start=1):
        order = make_order(number, side, qty, limit, accepted_at=number)
        admitted = admit(order, instrument, policy)
        if admitted.rests:
            book.add(order, passive=admitted.passive)
        assert instrument.exposure_known == exposure_of_book(instrument, book)
    assert instrument.exposure_known == Exposure(d("0.5"), 2, d("0.5"), d("2"))


# --- apply_quote ---------------------------------------------------------------------


def rest(instrument: InstrumentState, book: Book, policy: Policy, acct: Account | None, *orders: Order) -> None:
    """Admit `orders` as a store does: whatever rests goes into the book."""
    for order in orders:
        admitted = admit(order, instrument, policy, acct=acct, now=order.accepted_at)
        if admitted.rests:
            book.add(order, passive=admitted.passive)


def test_quote_fills_what_it_reaches_oldest_first_and_uses_its_sizes() -> None:
    """Two passive BUYs fill as makers at their own limits in time order, sharing the ask
    size; the SELL is not reached. The quote kept is the one given, less what the fills took."""
    acct, book = account(), Book()
    instrument = make_instrument(make_quote(98, 102), book=book)
    old, new, sell = (
        make_order(1, Side.BUY, 1.0, 100.0, accepted_at=1),
        make_order(2, Side.BUY, 1.0, 101.0, accepted_at=2),
        make_order(3, Side.SELL, 1.0, 101.5, accepted_at=3),
    )
    rest(instrument, book, FEES, acct, old, new, sell)
    events = quote_book(instrument, book, make_quote(99, 99.9, bid_size=5, ask_size=1.5), FEES, acct=acct)
    assert [(type(e), e.order.number) for e in events if isinstance(e, OrderFilled)] == [
        (OrderFilled, 1),
        (OrderFilled, 2),
    ]
    assert [(o.fills[0].qty, o.fills[0].price, o.fills[0].liquidity) for o in (old, new)] == [
        (d(1), d(100), Liquidity.MAKER),
        (d("0.5"), d(101), Liquidity.MAKER),
    ]
    assert instrument.quote == make_quote(99, 99.9, bid_size=5, ask_size=0)
    assert instrument.position.qty == d("1.5")
    assert instrument.position.cost == d("150.5")
    assert (old.status, new.status, sell.status) == (
        OrderStatus.FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.NEW,
    )
    assert [order.number for order in book.orders()] == [2, 3]


def test_quote_reaching_nothing_is_still_kept() -> None:
    instrument = make_instrument(make_quote(98, 102))
    assert engine.apply_quote(instrument, make_quote(97, 103), [], PLAIN, None, now=2, new_id=counter()) == []
    assert instrument.quote == make_quote(97, 103)


def test_quote_keeps_a_known_exposure_up_to_date() -> None:
    """After fills that finish some orders and not others, the kept exposure equals one
    counted afresh from the book and the position."""
    book = Book()
    instrument = make_instrument(make_quote(98, 102), book=book)
    rest(
        instrument,
        book,
        PLAIN,
        None,
        make_order(1, Side.BUY, 1.0, 100.0, accepted_at=1),
        make_order(2, Side.BUY, 2.0, 100.0, accepted_at=2),
        make_order(3, Side.SELL, 1.0, 99.0, accepted_at=3),
    )
    assert instrument.exposure() == Exposure(d(0), 3, d(3), d(1))
    quote_book(instrument, book, make_quote(99, 99.5, bid_size=0.25, ask_size=1.5))
    assert instrument.exposure_known == exposure_of_book(instrument, book)
    assert instrument.exposure_known == Exposure(d("1.25"), 2, d("1.5"), d("0.75"))


def test_market_buy_cut_to_the_balance_is_canceled_for_the_rest() -> None:
    """A waiting MARKET BUY reserved at ask 100; the ask doubles with nothing else free:
    it fills what its reservation covers and the rest is canceled (BALANCE)."""
    acct, book = Account({"USDT": Holding(d(100), d(100)), "BTC": Holding(d(0), d(0))}), Book()
    instrument = make_instrument(make_quote(99, 100, ask_size=0), book=book)
    order = make_order(1, Side.BUY, 1.0, accepted_at=1)
    rest(instrument, book, PLAIN, acct, order)
    events = quote_book(instrument, book, make_quote(199, 200), PLAIN, acct=acct)
    assert kinds(events) == [OrderFilled, OrderCanceled]
    canceled = events[1]
    assert isinstance(canceled, OrderCanceled)
    assert (canceled.before, canceled.reason, canceled.detail) == (
        OrderStatus.PARTIALLY_FILLED,
        CancelReason.BALANCE,
        BALANCE_CUT,
    )
    assert order.filled_qty == d("0.5")
    assert acct.reservations == {}
    assert acct.holdings["USDT"] == Holding(d(100), d(0), d(0))
    assert acct.holdings["BTC"].total == d("0.5")
    assert len(book) == 0


def test_what_a_balance_cut_leaves_at_the_level_goes_to_the_next_order() -> None:
    """A MARKET BUY of 5 reserved at ask 100 (500 USDT), then a LIMIT BUY of 7 at 200
    (1,400 USDT): nothing else is free. The ask moves to 200 with 10 on offer: the first
    fills the 2.5 its reservation covers (the rest canceled), and the second then finds
    7.5 left, not 5, and fills whole; each fill names the size it found."""
    acct, book = Account({"USDT": Holding(d(1900), d(1900)), "BTC": Holding(d(0), d(0))}), Book()
    instrument = make_instrument(make_quote(99, 100, ask_size=0), book=book)
    first, second = make_order(1, Side.BUY, 5.0, accepted_at=1), make_order(2, Side.BUY, 7.0, 200.0, accepted_at=1)
    rest(instrument, book, PLAIN, acct, first, second)
    events = quote_book(instrument, book, make_quote(199, 200, ask_size=10), PLAIN, acct=acct)
    filled = [(e.order.number, e.fill.qty, e.fill.provenance) for e in events if isinstance(e, OrderFilled)]
    assert [(number, qty, made.level_size) for number, qty, made in filled if made is not None] == [
        (1, d("2.5"), d(10)),
        (2, d(7), d("7.5")),
    ]
    assert (first.status, second.status) == (OrderStatus.CANCELED, OrderStatus.FILLED)
    assert instrument.quote == make_quote(199, 200, ask_size=0.5)


def test_after_a_balance_cut_quantities_still_add_up_exactly() -> None:
    """MARKET BUY 100 reserved at ask 1 (100 USDT): 90 fill at 1, then the ask is 7 and the
    10 USDT left buy 10/7, cut to CUT_DIGITS digits. filled_qty, the position and BTC
    held are exactly 90 plus that cut, and USDT exactly 100 less what both fills cost.
    Regression: the cut once had 100 digits, and every sum with it rounded."""
    acct, book = Account({"USDT": Holding(d(100), d(100)), "BTC": Holding(d(0), d(0))}), Book()
    instrument = make_instrument(make_quote(0.9, 1, ask_size=0), book=book)
    order = make_order(1, Side.BUY, 100.0, accepted_at=1)
    rest(instrument, book, PLAIN, acct, order)
    quote_book(instrument, book, make_quote(0.9, 1, ask_size=90), PLAIN, acct=acct, now=2)
    quote_book(instrument, book, make_quote(6.9, 7), PLAIN, acct=acct, now=3)
    assert order.status == OrderStatus.CANCELED
    first, cut = order.fills
    assert first.qty == 90
    filled = WIDE.add(first.qty, cut.qty)
    spent = WIDE.add(WIDE.multiply(first.qty, first.price), WIDE.multiply(cut.qty, cut.price))
    assert len(cut.qty.as_tuple().digits) <= CUT_DIGITS
    assert order.filled_qty == filled
    assert instrument.position.qty == filled
    assert acct.holdings["BTC"].total == filled
    assert acct.holdings["USDT"].total == WIDE.subtract(d(100), spent)


def test_a_market_buy_fill_beyond_its_share_never_leaves_free_below_zero() -> None:
    """MARKET BUY 1 reserves 90 at ask 90 of 105 USDT (15 free). The ask gaps to 270 with
    0.3 offered: 0.3 costs 81, more than its share of the reservation (27) plus the free
    15, though within all it holds plus the free. The 0.3 fills and the rest is canceled
    for the balance: nothing stays reserved that the account no longer has. Regression:
    the order stayed open holding 63 of a total of 24 (free -39)."""
    acct, book = Account({"USDT": Holding(d(105), d(105)), "BTC": Holding(d(0), d(0))}), Book()
    instrument = make_instrument(make_quote(90, 90, ask_size=0), book=book)
    order = make_order(1, Side.BUY, 1.0, accepted_at=1)
    rest(instrument, book, PLAIN, acct, order)
    assert acct.holdings["USDT"] == Holding(d(105), d(105), d("90.0"))
    events = quote_book(instrument, book, make_quote(267.3, 270, ask_size=0.3), PLAIN, acct=acct)
    assert kinds(events) == [OrderFilled, OrderCanceled]
    assert isinstance(events[1], OrderCanceled)
    assert events[1].reason == CancelReason.BALANCE
    assert order.filled_qty == d("0.3")
    assert order.status == OrderStatus.CANCELED
    assert acct.reservations == {}
    assert acct.holdings["USDT"] == Holding(d(105), d(24), d(0))
    assert acct.holdings["USDT"].free >= 0


# --- cancel --------------------------------------------------------------------------


def test_cancel_frees_the_reservation_and_updates_the_exposure() -> None:
    acct, book = account(), Book()
    instrument = make_instrument(make_quote(99, 100, ask_size=0.25), book=book)
    order = make_order(1, Side.BUY, 1.0, 100.0)
    rest(instrument, book, FEES, acct, order)
    instrument.exposure()
    event = engine.cancel(order, instrument.exposure_known, acct, now=5)
    assert event == OrderCanceled(order, OrderStatus.PARTIALLY_FILLED, CancelReason.REQUESTED, None)
    assert order.status == OrderStatus.CANCELED
    assert order.updated_at == 5
    assert acct.reservations == {}
    assert acct.holdings["USDT"].reserved == 0
    book.remove(order)
    assert instrument.exposure_known == exposure_of_book(instrument, book)
    assert instrument.exposure_known == Exposure(d("0.25"), 0, d(0), d(0))


def test_cancel_of_a_finished_order_is_none_and_changes_nothing() -> None:
    acct = account()
    instrument = make_instrument(make_quote(99, 100))
    order = make_order(1, Side.BUY, 1.0, 100.0)
    admit(order, instrument, PLAIN, acct=acct)
    assert order.status == OrderStatus.FILLED
    exposure = Exposure(d(1))
    holdings = copy.deepcopy(acct.holdings)
    assert engine.cancel(order, exposure, acct, now=9) is None
    assert (order.status, exposure, acct.holdings) == (OrderStatus.FILLED, Exposure(d(1)), holdings)
    assert order.updated_at == 1


# --- change_trading_state ------------------------------------------------------------


def test_only_stricter_changes_nothing_unless_stricter() -> None:
    reducing = TradingState(TradingStateName.REDUCING, "risk", 10)
    assert engine.change_trading_state(reducing, ACTIVE, [], None, cancel_open=True, only_stricter=True) == []
    halted = TradingState(TradingStateName.HALTED, "ops", 11)
    events = engine.change_trading_state(reducing, halted, [], None, cancel_open=False, only_stricter=True)
    assert events == [TradingStateChanged(reducing, halted, 0)]


def test_only_stricter_cancels_nothing_when_it_does_not_take_effect() -> None:
    order = make_order(1, Side.BUY, 1.0, 100.0)
    halted = TradingState(TradingStateName.HALTED)
    assert engine.change_trading_state(halted, halted, [order], None, cancel_open=True, only_stricter=True) == []
    assert order.status == OrderStatus.NEW


def test_a_change_without_cancel_leaves_orders_open() -> None:
    order = make_order(1, Side.BUY, 1.0, 100.0)
    wanted = TradingState(TradingStateName.HALTED, "ops", 5)
    assert engine.change_trading_state(ACTIVE, wanted, [order], None, cancel_open=False) == [
        TradingStateChanged(ACTIVE, wanted, 0)
    ]
    assert order.is_open


def test_kill_switch_cancels_open_orders_oldest_first() -> None:
    """cancel_open: the state change first (with the count), then one KILL_SWITCH cancel
    per open order, oldest first whatever order they were given in; finished orders are
    skipped; every reservation is freed and each instrument's exposure follows."""
    acct, book = account(), Book()
    instrument = make_instrument(make_quote(99, 100, ask_size=0.5), book=book)
    orders = [
        make_order(1, Side.BUY, 1.0, 100.0, accepted_at=30),  # partly filled on arrival
        make_order(2, Side.SELL, 1.0, 101.0, accepted_at=10),
        make_order(3, Side.BUY, 1.0, 98.0, accepted_at=20),
        make_order(4, Side.BUY, 1.0, 98.0, accepted_at=5, tif=TimeInForce.IOC),  # expires at once
    ]
    rest(instrument, book, FEES, acct, *sorted(orders, key=lambda order: order.accepted_at))
    instrument.exposure()
    wanted = TradingState(TradingStateName.HALTED, "ops", 99)
    events = engine.change_trading_state(
        ACTIVE,
        wanted,
        list(reversed(orders)),
        acct,
        cancel_open=True,
        exposure_of=lambda _order: instrument.exposure_known,
    )
    assert events[0] == TradingStateChanged(ACTIVE, wanted, 3)
    canceled = events[1:]
    assert all(isinstance(event, OrderCanceled) for event in canceled)
    assert [event.order.number for event in canceled if isinstance(event, OrderCanceled)] == [2, 3, 1]
    for event in canceled:
        assert isinstance(event, OrderCanceled)
        assert event.reason == CancelReason.KILL_SWITCH
        assert event.detail is not None
        assert "HALTED" in event.detail
        assert event.order.updated_at == 99
    assert [event.before for event in canceled if isinstance(event, OrderCanceled)] == [
        OrderStatus.NEW,
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
    ]
    assert acct.reservations == {}
    assert acct.holdings["USDT"].reserved == 0
    assert acct.holdings["BTC"].reserved == 0
    for event in canceled:
        assert isinstance(event, OrderCanceled)
        book.remove(event.order)
    assert instrument.exposure_known == exposure_of_book(instrument, book) == Exposure(d("0.5"), 0, d(0), d(0))
