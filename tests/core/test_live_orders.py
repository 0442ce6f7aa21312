"""The core's part in live orders: an order for a live exchange is vetted like any
other but neither matches nor rests here (market data only prices it), the kill switch
leaves it to its exchange, and what the exchange reports (fills with their trade ids,
a cancel, an expiry, a rejection) moves the order, the position and the exposure."""

from decimal import Decimal

import pytest

from app.core import engine
from app.core.balances import Account, Holding, Reservation
from app.core.controls import Exposure, TradingState
from app.core.engine import ExchangeFill, ExchangeReportRefused, Policy
from app.core.errors import IntentRefused
from app.core.events import OrderAccepted, OrderCanceled, OrderExpired, OrderFilled, OrderRejected
from app.core.exchange_funds import ExchangeFunds, FundsReading
from app.core.journal import EventType, entry_of, type_of
from app.core.order import IllegalTransition
from app.core.values import Trade
from app.core.vocabulary import CancelReason, FillSource, Liquidity, OrderStatus, Side, TradingStateName
from tests.core.factories import counter, d, make_instrument, make_order, make_quote

LIVE = Policy(live=frozenset({"binance"}))
ACTIVE = TradingState()


def fill(trade_id: str, qty: str, price: str, fee: str = "0", ts: int | None = 7) -> ExchangeFill:
    return ExchangeFill(trade_id, d(qty), d(price), d(fee), Liquidity.TAKER, ts)


def test_a_live_order_is_vetted_but_never_filled_by_market_data() -> None:
    instrument = make_instrument(make_quote(99, 100, 5, 5))
    order = make_order(1, Side.BUY, 1.0)  # a MARKET BUY the quote could fill at once
    admitted = engine.admit(order, instrument, ACTIVE, LIVE, None, now=1, new_id=counter())
    assert [type(event) for event in admitted.events] == [OrderAccepted]
    assert (admitted.rests, order.status) == (False, OrderStatus.NEW)

    # Quotes and prints reaching it fill nothing: the exchange fills it.
    events = engine.apply_quote(
        instrument, make_quote(101, 102, 5, 5), [(order, True)], LIVE, None, now=2, new_id=counter()
    )
    assert events == []
    assert instrument.quote == make_quote(101, 102, 5, 5)  # kept: it prices and marks
    trade = Trade(d(90), d(3), buys=False)
    assert engine.apply_trade(instrument, trade, [(order, None)], LIVE, None, now=3, new_id=counter()) == []
    assert order.status == OrderStatus.NEW

    # The same order on a paper exchange fills on arrival.
    paper = make_order(2, Side.BUY, 1.0)
    filled = engine.admit(
        paper, make_instrument(make_quote(99, 100, 5, 5)), ACTIVE, Policy(), None, now=1, new_id=counter()
    )
    assert paper.status == OrderStatus.FILLED
    assert OrderFilled in [type(event) for event in filled.events]


def test_a_live_order_meets_every_control_and_no_paper_balance() -> None:
    halted = TradingState(TradingStateName.HALTED, "maintenance", 1)
    with pytest.raises(IntentRefused):
        engine.admit(make_order(1), make_instrument(), halted, LIVE, None, now=1, new_id=counter())
    account = Account({"USDT": Holding(d(0), d(0)), "BTC": Holding(d(0), d(0))})
    order = make_order(2, Side.BUY, 1.0, limit=100.0)
    funds = ExchangeFunds("binance", FundsReading({"USDT": d(1000)}, taken_at=1))
    admitted = engine.admit(order, make_instrument(), ACTIVE, LIVE, account, now=1, new_id=counter(), funds=funds)
    assert account.holdings["USDT"] == Holding(d(0), d(0))  # the exchange's account pays, not the paper one
    assert admitted.claim == Reservation("USDT", d(100), d(100))
    assert funds.free("USDT") == d(900)


def test_with_balances_on_a_live_order_needs_its_exchange_account_read() -> None:
    account = Account({"USDT": Holding(d(5000), d(5000))})
    order = make_order(1, Side.BUY, 1.0, limit=100.0)
    with pytest.raises(IntentRefused) as refused:
        engine.admit(order, make_instrument(), ACTIVE, LIVE, account, now=1, new_id=counter())
    assert refused.value.code == "EXCHANGE_BALANCE_UNKNOWN"
    assert order.status == OrderStatus.NEW
    # Without balances a live order is left to its exchange to pay for: no claim.
    admitted = engine.admit(make_order(2), make_instrument(), ACTIVE, LIVE, None, now=1, new_id=counter())
    assert admitted.claim is None


def test_exchange_fills_move_the_order_position_and_exposure() -> None:
    instrument = make_instrument()
    exposure = instrument.exposure()
    order = make_order(1, Side.BUY, 2.0, limit=100.0)
    engine.admit(order, instrument, ACTIVE, LIVE, None, now=1, new_id=counter())
    assert (exposure.open_orders, exposure.open_buy) == (1, d(2))

    events = engine.apply_exchange_fills(
        instrument, order, [fill("t1", "0.5", "99.5", "0.05")], now=5, new_id=counter(10)
    )
    [partial] = events
    assert isinstance(partial, OrderFilled)
    assert (partial.before, partial.after, order.status, order.filled_qty) == (
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        d("0.5"),
    )
    provenance = partial.fill.provenance
    assert provenance is not None
    assert (provenance.source, provenance.data_ts, provenance.level_price, provenance.level_size) == (
        FillSource.EXCHANGE,
        7,
        d("99.5"),
        None,
    )
    assert provenance.fee_bps == d("10.050251")  # 0.05 of 49.75
    assert (partial.fill.number, partial.fill.fee, partial.fill.ts) == (10, d("0.05"), 5)
    assert (instrument.position.qty, instrument.position.fees) == (d("0.5"), d("0.05"))

    engine.apply_exchange_fills(
        instrument, order, [fill("t2", "1", "100"), fill("t3", "0.5", "100")], now=6, new_id=counter(20)
    )
    assert (order.status, order.filled_qty, instrument.position.qty) == (OrderStatus.FILLED, d(2), d(2))
    assert (exposure.open_orders, exposure.open_buy, exposure.position) == (0, d(0), d(2))


@pytest.mark.parametrize(
    "fills",
    [
        [fill("t1", "1.5", "100"), fill("t2", "0.6", "100")],  # more than the order
        [fill("t1", "0", "100")],  # nothing
        [fill("t1", "1", "0")],  # at no price
        [fill("t1", "1", "NaN")],
        [fill("t1", "1", "100", "Infinity")],
    ],
)
def test_a_report_that_cannot_be_true_changes_nothing(fills: list[ExchangeFill]) -> None:
    instrument = make_instrument()
    order = make_order(1, Side.SELL, 2.0, limit=100.0)
    engine.admit(order, instrument, ACTIVE, LIVE, None, now=1, new_id=counter())
    with pytest.raises(ExchangeReportRefused):
        engine.apply_exchange_fills(instrument, order, fills, now=2, new_id=counter())
    assert (order.status, order.filled_qty, order.fills, instrument.position.qty) == (OrderStatus.NEW, d(0), [], d(0))


def test_fills_of_an_ended_order_are_refused() -> None:
    order = make_order(1, limit=100.0)
    engine.end_at_exchange(order, OrderStatus.CANCELED, None, now=2)
    with pytest.raises(ExchangeReportRefused):
        engine.apply_exchange_fills(make_instrument(), order, [fill("t1", "1", "100")], now=3, new_id=counter())


@pytest.mark.parametrize(
    ("status", "event_type", "journal_type"),
    [
        (OrderStatus.CANCELED, OrderCanceled, EventType.CANCELED),
        (OrderStatus.EXPIRED, OrderExpired, EventType.EXPIRED),
        (OrderStatus.REJECTED, OrderRejected, EventType.REJECTED),
    ],
)
def test_the_exchange_ends_an_order(status: OrderStatus, event_type: type, journal_type: EventType) -> None:
    instrument = make_instrument()
    exposure = instrument.exposure()
    order = make_order(1, Side.SELL, 1.0, limit=100.0)
    engine.admit(order, instrument, ACTIVE, LIVE, None, now=1, new_id=counter())
    [event] = engine.end_at_exchange(order, status, exposure, now=4, detail="Account has insufficient balance")
    assert isinstance(event, event_type)
    assert (order.status, order.updated_at, exposure.open_orders, exposure.open_sell) == (status, 4, 0, d(0))
    assert type_of(event) == journal_type
    entry = entry_of(9, event)
    assert (entry.type, entry.ts, entry.order_id) == (journal_type, 4, order.order_id)
    if status != OrderStatus.EXPIRED:
        assert entry.detail == "Account has insufficient balance"
    if isinstance(event, OrderCanceled):
        assert event.reason == CancelReason.EXCHANGE
    assert engine.end_at_exchange(order, status, exposure, now=5) == []  # ended already: nothing more


def test_only_a_new_order_can_be_rejected() -> None:
    order = make_order(1, limit=100.0)
    engine.apply_exchange_fills(make_instrument(), order, [fill("t1", "0.5", "100")], now=2, new_id=counter())
    with pytest.raises(IllegalTransition):
        engine.end_at_exchange(order, OrderStatus.REJECTED, None, now=3, detail="no")
    with pytest.raises(IllegalTransition):
        engine.end_at_exchange(order, OrderStatus.FILLED, None, now=3)


def test_the_kill_switch_leaves_live_orders_to_their_exchange() -> None:
    live = make_order(1, limit=100.0)
    paper = make_order(2, limit=100.0, instrument=("okx", "BTC/USDT"))
    events = engine.change_trading_state(
        ACTIVE,
        TradingState(TradingStateName.HALTED, "stop", 10),
        [live, paper],
        None,
        cancel_open=True,
        live=frozenset({"binance"}),
    )
    assert [type(event).__name__ for event in events] == ["TradingStateChanged", "OrderCanceled"]
    assert (live.status, paper.status) == (OrderStatus.NEW, OrderStatus.CANCELED)


def test_rejected_is_final() -> None:
    assert not OrderStatus.REJECTED.is_open
    exposure = Exposure()
    order = make_order(1, limit=100.0)
    exposure.opened(Side.BUY, order.remaining)
    engine.end_at_exchange(order, OrderStatus.REJECTED, exposure, now=2, detail="Filter failure: PRICE_FILTER")
    assert engine.apply_exchange_fills(make_instrument(), order, [], now=3, new_id=counter()) == []
    assert (order.status, exposure.open_orders, exposure.open_buy) == (OrderStatus.REJECTED, 0, Decimal(0))
