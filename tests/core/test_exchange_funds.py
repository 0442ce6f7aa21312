"""Intake's balance check of live orders (core.exchange_funds): an order must fit in what
its exchange's account had free when last read, less the claims of the orders on their
way there; it is priced as a paper reservation is; a refusal claims nothing."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.balances import Reservation, claim
from app.core.errors import FundsUnknown, IntentRefused
from app.core.exchange_funds import CLOCK_MARGIN_US, READING_MAX_AGE_US, ExchangeFunds, FundsReading
from app.core.order import Order
from app.core.values import Costs, Quote
from app.core.vocabulary import Side
from tests.core.factories import d, make_order, make_quote

FREE = Costs()
FEES = Costs(taker_fee_bps=d(10), maker_fee_bps=d(20))
TAKEN_AT = 1_000_000_000
NOW = TAKEN_AT + 3_000_000  # 3 s after the reading was asked for


def funds(free: dict[str, str], on_the_way: dict[str, str] | None = None) -> ExchangeFunds:
    reading = FundsReading({asset: d(amount) for asset, amount in free.items()}, taken_at=TAKEN_AT)
    return ExchangeFunds("binance", reading, {asset: d(amount) for asset, amount in (on_the_way or {}).items()})


def refusal(account: ExchangeFunds, order: Order, quote: Quote | None, costs: Costs, now: int) -> IntentRefused:
    with pytest.raises(IntentRefused) as refused:
        account.claim(order, quote, costs, now)
    return refused.value


def test_a_buy_claims_its_quote_asset_at_its_limit_with_the_highest_fee() -> None:
    account = funds({"USDT": "1000"})
    claimed = account.claim(make_order(1, Side.BUY, 2.0, limit=100.0), None, FEES, NOW)
    assert claimed == Reservation("USDT", d("100.2"), d("200.4"))  # 100 x (1 + 20 bps), twice
    assert account.free("USDT") == d("799.6")


def test_a_sell_claims_its_base_asset() -> None:
    account = funds({"BTC": "0.5"})
    assert account.claim(make_order(1, Side.SELL, 0.5), None, FEES, NOW) == Reservation("BTC", d(1), d("0.5"))
    assert account.free("BTC") == 0
    assert refusal(account, make_order(2, Side.SELL, 0.1), None, FEES, NOW).code == "INSUFFICIENT_BALANCE"


def test_a_market_buy_is_priced_by_the_book_it_would_walk() -> None:
    account = funds({"USDT": "1000"})
    quote = make_quote(99, 100, 5, 5)
    assert account.claim(make_order(1, Side.BUY, 3.0), quote, FREE, NOW) == Reservation("USDT", d(100), d(300))
    refused = refusal(account, make_order(2, Side.BUY, 1.0), None, FREE, NOW)
    assert refused.code == "NO_QUOTE"


def test_the_orders_on_their_way_are_taken_off_the_reading() -> None:
    account = funds({"USDT": "1000"}, on_the_way={"USDT": "950"})
    refused = refusal(account, make_order(1, Side.BUY, 1.0, limit=100.0), None, FREE, NOW)
    assert refused.code == "INSUFFICIENT_BALANCE"
    assert refused.detail == (
        "BUY 1 BTC/USDT needs 100 USDT; 50 USDT is free at binance "
        "(its account as last read, less the orders on their way to it)"
    )
    assert account.on_the_way == {"USDT": d(950)}  # a refusal claims nothing
    account.claim(make_order(2, Side.BUY, 0.5, limit=100.0), None, FREE, NOW)
    assert account.free("USDT") == 0


def test_an_asset_the_reading_does_not_list_has_none_free() -> None:
    refused = refusal(funds({"USDT": "1000"}), make_order(1, Side.SELL, 0.001), None, FREE, NOW)
    assert refused.code == "INSUFFICIENT_BALANCE"
    assert "0 BTC is free at binance" in refused.detail


def test_an_account_not_known_well_enough_refuses_every_order_for_now() -> None:
    """Never read, read too long ago, or orders of unknown cost on their way: a 503
    (FundsUnknown), not a guess."""
    sell = make_order(1, Side.SELL, 0.001)
    unread = ExchangeFunds("binance", None)
    refused = refusal(unread, sell, None, FREE, NOW)
    assert (type(refused), refused.code) == (FundsUnknown, "EXCHANGE_BALANCE_UNKNOWN")
    assert "have not been read" in refused.detail
    assert unread.on_the_way == {}
    stale = funds({"BTC": "1"})
    assert stale.claim(sell, None, FREE, TAKEN_AT + READING_MAX_AGE_US).held == d("0.001")
    refused = refusal(stale, sell, None, FREE, TAKEN_AT + READING_MAX_AGE_US + 1_000_000)
    assert (type(refused), refused.detail) == (
        FundsUnknown,
        "The balances of the binance account were last read 61 s ago (the exchange has not answered since); "
        "retry once it does",
    )
    unclaimed = ExchangeFunds("binance", FundsReading({"BTC": d(1)}, TAKEN_AT), unclaimed=2)
    assert refusal(unclaimed, sell, None, FREE, NOW).detail == (
        "2 order(s) placed while balances were off are on their way to binance; "
        "retry once the exchange has answered for them"
    )


def test_a_reading_may_miss_orders_answered_for_just_before_it() -> None:
    """Two processes' clocks may differ: an order answered for up to CLOCK_MARGIN_US
    before the reading was asked for is still counted as on its way."""
    assert FundsReading({}, TAKEN_AT).counts_from == TAKEN_AT - CLOCK_MARGIN_US


@given(
    free=st.decimals(min_value=0, max_value=10_000, places=2),
    orders=st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.decimals(min_value=Decimal("0.01"), max_value=50, places=2),
            st.decimals(min_value=1, max_value=500, places=1),
        ),
        max_size=20,
    ),
)
def test_what_is_claimed_never_exceeds_what_was_free(
    free: Decimal, orders: list[tuple[Side, Decimal, Decimal]]
) -> None:
    account = funds({"USDT": str(free), "BTC": str(free / 100)})
    claimed: dict[str, Decimal] = {"USDT": Decimal(0), "BTC": Decimal(0)}
    for number, (side, qty, price) in enumerate(orders, start=1):
        order = make_order(number, side, float(qty), limit=float(price))
        needed = claim(order, order.exact_qty, None, FEES)
        if needed.held > account.free(needed.asset):
            assert refusal(account, order, None, FEES, NOW).code == "INSUFFICIENT_BALANCE"
            continue
        assert account.claim(order, None, FEES, NOW) == needed
        claimed[needed.asset] += needed.held
    assert claimed["USDT"] <= free
    assert claimed["BTC"] <= free / 100
    assert account.on_the_way.get("USDT", Decimal(0)) == claimed["USDT"]
