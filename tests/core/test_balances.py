"""The paper account: reservations recorded at admission, released exactly once, the
affordable cut of a MARKET BUY, and adopting the open orders of an existing store."""

from decimal import Context, Decimal, localcontext

import pytest

from app.core import engine
from app.core.balances import CUT_DIGITS, Account, Holding, Reservation, assets_of
from app.core.controls import TradingState
from app.core.engine import Policy
from app.core.errors import AccountMismatch, IntentRefused
from app.core.order import Order, OrderKind, OrderTerms, StoredFill, record_fill
from app.core.values import Costs
from app.core.vocabulary import Liquidity, OrderStatus, OrderType, Side
from tests.core.factories import BTC, counter, d, make_instrument, make_order, make_quote

FEES = Costs(slippage_bps=d("10"), taker_fee_bps=d("5"), maker_fee_bps=d("10"))


def account(usdt: str = "1000", btc: str = "10") -> Account:
    return Account({"USDT": Holding(d(usdt), d(usdt)), "BTC": Holding(d(btc), d(btc))})


def stored_fill(qty: str, price: str, fee: str = "0", number: int = 1) -> StoredFill:
    return StoredFill(number=number, qty=d(qty), price=d(price), fee=d(fee), liquidity=Liquidity.TAKER, ts=1)


def apply(acct: Account, order: Order, fill: StoredFill) -> None:
    """What the engine does with a fill: record it on the order, then on the account."""
    record_fill(order, fill)
    acct.filled(order, fill)


def test_assets_of_a_symbol() -> None:
    assert assets_of("BTC/USDT") == ("BTC", "USDT")


def test_limit_buy_reserves_qty_times_limit_times_the_highest_fee() -> None:
    """2 x 100.1 x (1 + 10 bps): the maker rate, higher than the taker one here."""
    acct = account()
    reservation = acct.reserve(make_order(1, Side.BUY, 2.0, 100.1), None, FEES)
    assert reservation == Reservation("USDT", d("100.2001"), d("200.4002"))
    assert acct.reservations == {1: reservation}
    assert acct.holdings["USDT"].reserved == d("200.4002")
    assert acct.holdings["USDT"].free == d("799.5998")


def test_sell_reserves_its_quantity_of_the_base() -> None:
    acct = account()
    assert acct.reserve(make_order(1, Side.SELL, 0.3), None, FEES) == Reservation("BTC", d(1), d("0.3"))
    assert acct.holdings["BTC"].reserved == d("0.3")


def test_market_buy_reserves_at_the_ask_moved_by_slippage() -> None:
    """MARKET BUY 1 at ask 100, 10 bps slippage, 10 bps highest fee: 100.1 x 1.001."""
    acct = account()
    reservation = acct.reserve(make_order(1, Side.BUY), make_quote(99, 100), FEES)
    assert reservation.held == d("100.2001")


def test_market_buy_without_quote_is_refused() -> None:
    acct = account()
    with pytest.raises(IntentRefused) as refused:
        acct.reserve(make_order(1, Side.BUY), None, FEES)
    assert refused.value.code == "NO_QUOTE"
    assert acct.reservations == {}
    assert acct.holdings["USDT"].reserved == 0


def test_insufficient_balance_refuses_and_reserves_nothing() -> None:
    acct = account(usdt="100", btc="0.2")
    acct.reserve(make_order(1, Side.BUY, 0.5, 100.0), None, Costs())
    for order in (make_order(2, Side.BUY, 0.6, 100.0), make_order(3, Side.SELL, 0.3)):
        with pytest.raises(IntentRefused) as refused:
            acct.reserve(order, None, Costs())
        assert refused.value.code == "INSUFFICIENT_BALANCE"
    assert set(acct.reservations) == {1}
    assert acct.holdings["USDT"] == Holding(d("100"), d("100"), d("50.0"))
    assert acct.holdings["BTC"] == Holding(d("0.2"), d("0.2"), d(0))


def test_exactly_the_free_balance_is_enough() -> None:
    acct = account(usdt="30.03")
    acct.reserve(make_order(1, Side.BUY, 0.3, 100.1), None, Costs())
    assert acct.holdings["USDT"].free == 0


def test_release_never_takes_more_than_is_held() -> None:
    """A release of more than the reservation holds frees only what it holds; an end frees the rest once."""
    acct = account()
    order = make_order(1, Side.BUY, 1.0, 100.0)
    acct.reserve(order, None, Costs())
    acct.release(order, d("30"))
    assert acct.reservations[1].held == d("70.0")
    acct.release(order, d("1000"))
    assert acct.reservations[1].held == 0
    assert acct.holdings["USDT"].reserved == 0
    acct.release(order)
    acct.release(order)  # nothing left: no effect
    assert acct.reservations == {}
    assert acct.holdings["USDT"] == Holding(d("1000"), d("1000"), d(0))


def test_filled_moves_both_assets_and_releases_the_fills_part() -> None:
    """A BUY fill adds the base and costs qty x price + fee; its part of the reservation is freed."""
    acct = account()
    buy = make_order(1, Side.BUY, 1.0, 100.0)
    acct.reserve(buy, None, Costs())
    apply(acct, buy, stored_fill("0.4", "99.5", "0.02"))
    assert acct.holdings["BTC"].total == d("10.4")
    assert acct.holdings["USDT"].total == d("960.18")
    assert acct.reservations[1].held == d("60.0")
    assert acct.holdings["USDT"].reserved == d("60.0")
    sell = make_order(2, Side.SELL, 0.5)
    acct.reserve(sell, None, Costs())
    apply(acct, sell, stored_fill("0.5", "101", "0.05", number=2))
    assert acct.holdings["BTC"] == Holding(d("10"), d("9.9"), d(0))
    assert acct.holdings["USDT"].total == d("1010.63")
    assert 2 not in acct.reservations


@pytest.mark.parametrize(
    "later",
    [Costs(), Costs(d("50"), d("100"), d("100")), Costs(taker_fee_bps=d("0.5"))],
    ids=["no-costs", "higher", "lower"],
)
def test_reservation_is_not_recomputed_from_todays_costs(later: Costs) -> None:
    """Reserved under one fee schedule, filled in part and canceled under another: what is
    released is exactly what was reserved, never more or less (reserved ends at 0 exactly)."""
    acct = account()
    new_id = counter(100)
    instrument = make_instrument(make_quote(99, 100.3))
    order = make_order(1, Side.BUY, 1.0, 100.1)
    engine.admit(order, instrument, TradingState(), Policy(FEES), acct, now=1, new_id=new_id)
    reserved = acct.reservations[1].held
    assert reserved == d("100.2001")
    assert acct.holdings["USDT"].reserved == reserved
    # The fee schedule changes; a quote then fills 0.4 of the order as maker.
    events = engine.apply_quote(
        instrument, make_quote(99, 100, ask_size=0.4), [(order, False)], Policy(later), acct, now=2, new_id=new_id
    )
    assert len(events) == 1
    assert acct.reservations[1].held == d("60.12006")  # 0.6 x the unit recorded at admission
    assert acct.holdings["USDT"].reserved == d("60.12006")
    engine.cancel(order, None, acct, now=3)
    assert acct.reservations == {}
    assert acct.holdings["USDT"].reserved == 0
    fill = order.fills[0]
    assert acct.holdings["USDT"].total == d("1000") - fill.qty * fill.price - fill.fee


def test_fill_that_ends_an_order_releases_all_it_held() -> None:
    """A LIMIT BUY filled whole below its limit frees all of its reservation, not just qty x unit."""
    acct = account()
    order = make_order(1, Side.BUY, 1.0, 100.0)
    acct.reserve(order, None, FEES)
    apply(acct, order, stored_fill("1", "90"))
    assert order.status == OrderStatus.FILLED
    assert acct.reservations == {}
    assert acct.holdings["USDT"].reserved == 0
    assert acct.holdings["USDT"].total == d("910")


def test_affordable_is_all_of_a_fill_the_reservation_covers() -> None:
    """A fill within the order's share of its reservation is paid in full and spends nothing more."""
    acct = account(usdt="100")
    order = make_order(1, Side.BUY)
    acct.reserve(order, make_quote(99, 100), Costs())
    assert acct.holdings["USDT"].free == 0
    assert acct.affordable(order, d(1), d(100), d(0), Costs()) == (d(1), False)
    assert acct.affordable(order, d("0.5"), d(100), d(0), Costs()) == (d("0.5"), False)


def test_affordable_uses_the_free_balance_too() -> None:
    """Ask up from 100 to 150 with 50 free: the reservation's 100 and the 50 pay for all of it."""
    acct = account(usdt="150")
    order = make_order(1, Side.BUY)
    acct.reserve(order, make_quote(99, 100), Costs())
    assert acct.affordable(order, d(1), d(150), d(0), Costs()) == (d(1), False)


def test_affordable_cuts_a_market_buy_to_what_the_balance_covers() -> None:
    """Reserved 100.25 at ask 100, nothing free; the ask is 150 with a 25 bps taker fee: the
    fill is cut to 100.25 / (150 x 1.0025) rounded down to CUT_DIGITS significant digits,
    which costs no more than 100.25, and it spends the whole reservation."""
    costs = Costs(taker_fee_bps=d("25"))
    acct = account(usdt="100.25")
    order = make_order(1, Side.BUY)
    acct.reserve(order, make_quote(99, 100), costs)
    assert acct.holdings["USDT"].free == 0
    price = d(150)
    cut, spends_all = acct.affordable(order, d(1), price, price * d("0.0025"), costs)
    assert spends_all
    assert len(cut.as_tuple().digits) <= CUT_DIGITS
    with localcontext(Context(prec=500)):
        assert 0 < cut < 1
        assert cut * price * d("1.0025") <= d("100.25")
        step = Decimal(1).scaleb(cut.adjusted() - CUT_DIGITS + 1)  # one unit in the last kept digit
        assert (cut + step) * price * d("1.0025") > d("100.25")  # the most it covers at that precision


def test_a_fill_beyond_its_share_spends_the_reservation_even_when_not_cut() -> None:
    """Reserved 90 at ask 90 with 15 free; 0.3 offered at 270 costs 81, more than its share
    (27) plus the free 15, though the 105 the order holds and the free cover it: all 0.3
    is paid, and the order's reservation counts as spent (the engine cancels the rest)."""
    acct = Account({"USDT": Holding(d(105), d(105))})
    order = make_order(1, Side.BUY)
    acct.reserve(order, make_quote(89, 90), Costs())
    assert acct.affordable(order, d("0.3"), d(270), d(0), Costs()) == (d("0.3"), True)


def test_affordable_never_cuts_a_limit_or_a_sell() -> None:
    acct = account(usdt="100", btc="1")
    limit, sell = make_order(1, Side.BUY, 1.0, 100.0), make_order(2, Side.SELL)
    acct.reserve(limit, None, Costs())
    acct.reserve(sell, None, Costs())
    assert acct.affordable(limit, d(1), d(1000), d(50), Costs()) == (d(1), False)
    assert acct.affordable(sell, d(1), d(1), d(50), Costs()) == (d(1), False)


def test_adopt_reserves_for_open_orders_and_recomputes_reserved() -> None:
    """Open orders without a reservation get one for what they have left; reserved is
    recomputed from the reservations, whatever it said before."""
    acct = Account({"USDT": Holding(d(1000), d(1000), reserved=d(999)), "BTC": Holding(d(2), d(2))})
    kept = make_order(1, Side.BUY, 1.0, 50.0)
    acct.reservations[1] = Reservation("USDT", d(50), d("20"))  # held from before: kept as it is
    partly = make_order(2, Side.BUY, 1.0, 100.0)
    record_fill(partly, stored_fill("0.25", "100"))
    market = make_order(3, Side.BUY, 2.0)
    sell = make_order(4, Side.SELL, 1.5)
    acct.adopt([kept, partly, market, sell], {BTC: make_quote(99, 100)}, FEES)
    assert acct.reservations[1] == Reservation("USDT", d(50), d("20"))
    assert acct.reservations[2].held == d("0.75") * d("100.1")
    assert acct.reservations[3].held == d(2) * d("100.1") * d("1.001")
    assert acct.reservations[4] == Reservation("BTC", d(1), d("1.5"))
    expected = d("20") + d("0.75") * d("100.1") + d(2) * d("100.1") * d("1.001")
    assert acct.holdings["USDT"].reserved == expected
    assert acct.holdings["BTC"].reserved == d("1.5")


def test_adopt_drops_reserved_no_order_holds() -> None:
    acct = Account({"USDT": Holding(d(10), d(10), reserved=d(7))})
    acct.adopt([], {}, Costs())
    assert acct.holdings["USDT"].reserved == 0


def test_adopt_refuses_when_free_would_go_negative() -> None:
    acct = account(usdt="100")
    with pytest.raises(AccountMismatch, match="USDT"):
        acct.adopt([make_order(1, Side.BUY, 1.0, 100.0), make_order(2, Side.BUY, 0.1, 100.0)], {}, Costs())


def test_adopt_refuses_a_market_buy_without_quote() -> None:
    order = make_order(1, Side.BUY)
    with pytest.raises(AccountMismatch, match=order.order_id):
        account().adopt([order], {}, Costs())


def test_a_kept_reservation_is_capped_at_what_the_remaining_quantity_needs() -> None:
    """An order that filled while the account was off still carries the reservation it
    had; turning the account on again holds only what its remaining quantity needs."""
    acct = Account({"USDT": Holding(Decimal(1000), Decimal(1000))})
    order = Order(
        number=7,
        idempotency_key="k",
        kind=OrderKind("binance", "BTC/USDT", Side.BUY, OrderType.LIMIT),
        terms=OrderTerms.of(10.0, 100.0, 1, None),
    )
    acct.reservations[7] = Reservation("USDT", Decimal(100), Decimal(1000))  # as stored before the fills
    record_fill(
        order, StoredFill(number=1, qty=Decimal(8), price=Decimal(95), fee=Decimal(0), liquidity=Liquidity.TAKER, ts=2)
    )
    acct.adopt([order], {}, Costs())
    assert acct.reservations[7].held == Decimal(200)
    assert acct.holdings["USDT"].reserved == Decimal(200)
