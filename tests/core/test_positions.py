"""Average-cost positions: exact cost basis, rounding only on partial closes, no residue
when flat, and a representation that does not grow with the history."""

from decimal import Context, Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from app.core.positions import COST_DIGITS, Position, apply_fill
from app.core.vocabulary import Side
from tests.core.factories import d

WIDE = Context(prec=400)  # wide enough never to round in these checks
eights = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(1000), places=8)
fills = st.lists(st.tuples(st.sampled_from(Side), eights, eights, st.decimals(min_value=0, max_value=1, places=4)))


def run(steps: list[tuple[Side, Decimal, Decimal]]) -> Position:
    position = Position()
    for side, qty, price in steps:
        position = apply_fill(position, side, qty, price, Decimal(0))
    return position


def test_adding_keeps_the_exact_cost() -> None:
    position = run([(Side.BUY, d("0.1"), d("100.1")), (Side.BUY, d("0.2"), d("101.3"))])
    assert position == Position(d("0.3"), d("30.27"), d(0), d(0))
    assert position.avg_entry_price == d("100.9")
    assert position.unrealized_pnl(d("101")) == d("0.03")


def test_flat_after_partial_closes_has_no_residue() -> None:
    """0.1@100 + 0.2@101, sold 0.1@100 then 0.2@101: the partial close rounds, the
    close to flat takes the rest, and realized is exactly 0."""
    position = run(
        [
            (Side.BUY, d("0.1"), d("100")),
            (Side.BUY, d("0.2"), d("101")),
            (Side.SELL, d("0.1"), d("100")),
        ]
    )
    assert position.realized_pnl != 0  # the first sale closed at less than the average
    position = apply_fill(position, Side.SELL, d("0.2"), d("101"), d(0))
    assert position == Position(d(0), d(0), d(0), d(0))
    assert position.realized_pnl == 0


def test_short_then_cover() -> None:
    """Short 2@100, buy back 1@90: 10 realized, cost -100 for the short 1 left."""
    position = run([(Side.SELL, d(2), d(100)), (Side.BUY, d(1), d(90))])
    assert position == Position(d(-1), d(-100), d(10), d(0))
    assert position.avg_entry_price == d(100)
    assert position.unrealized_pnl(d(95)) == d(5)


def test_a_fill_through_zero_opens_the_rest_at_its_price() -> None:
    """Long 1@100, sell 3@110: 10 realized on the 1 closed, short 2 at 110."""
    position = run([(Side.BUY, d(1), d(100)), (Side.SELL, d(3), d(110))])
    assert position == Position(d(-2), d(-220), d(10), d(0))


def test_fees_add_up_apart_from_the_pnl() -> None:
    position = apply_fill(Position(), Side.BUY, d(1), d(100), d("0.05"))
    position = apply_fill(position, Side.SELL, d(1), d(100), d("0.07"))
    assert position == Position(d(0), d(0), d(0), d("0.12"))


def test_flat_position_has_no_average() -> None:
    assert Position().avg_entry_price is None


def exact_cost_after(cost: Fraction, held: Decimal, side: Side, qty: Decimal, price: Decimal) -> Fraction:
    """Average cost with no rounding at all, as a fraction: the reference for the rounded one."""
    signed = Fraction(qty if side == Side.BUY else qty.copy_negate())
    after = Fraction(held) + signed
    if held == 0 or (held > 0) == (signed > 0):
        return cost + signed * Fraction(price)
    if after == 0:
        return Fraction(0)
    if (after > 0) == (held > 0):
        return cost * (1 - Fraction(qty) / abs(Fraction(held)))
    return after * Fraction(price)


@given(steps=fills, mark=eights)
def test_realized_plus_unrealized_is_the_cash_flow(
    steps: list[tuple[Side, Decimal, Decimal, Decimal]], mark: Decimal
) -> None:
    """At any point: qty is the signed sum of fills, fees the sum of fees, and realized +
    unrealized at any mark is exactly mark x qty less what the fills paid (a partial
    close's rounding moves value between the cost basis and realized, never makes any);
    the cost basis strays from unrounded average cost by at most half a unit in the 20th
    digit of each partial close; whenever the position is flat, realized is exactly the
    cash flow."""
    position = Position()
    qty, paid, fees, slack = Decimal(0), Decimal(0), Decimal(0), Decimal(0)
    reference = Fraction(0)
    for side, fill_qty, price, fee in steps:
        signed = fill_qty if side == Side.BUY else fill_qty.copy_negate()
        if position.qty != 0 and (position.qty > 0) != (signed > 0) and fill_qty < position.qty.copy_abs():
            slack = WIDE.add(slack, WIDE.multiply(position.cost.copy_abs(), Decimal(10) ** (1 - COST_DIGITS)))
        reference = exact_cost_after(reference, position.qty, side, fill_qty, price)
        position = apply_fill(position, side, fill_qty, price, fee)
        qty, paid = WIDE.add(qty, signed), WIDE.add(paid, WIDE.multiply(signed, price))
        fees = WIDE.add(fees, fee)
        assert position.qty == qty
        assert position.fees == fees
        total = WIDE.add(position.realized_pnl, position.unrealized_pnl(mark))
        assert total == WIDE.subtract(WIDE.multiply(mark, qty), paid)
        assert abs(Fraction(position.cost) - reference) <= Fraction(slack)
        if position.qty == 0:
            assert position.cost == 0
            assert position.realized_pnl == paid.copy_negate()  # exactly: no residue


def cycles(count: int) -> Position:
    """`count` rounds of a BUY and a smaller SELL, 8-decimal quantities and prices."""
    buys = [d("1.23456789"), d("0.98765432"), d("2.34567891")]
    sells = [d("0.12345678"), d("0.87654321"), d("0.33333333")]
    prices = [d("101.12345678"), d("99.87654321"), d("100.00000001"), d("98.76543219")]
    position = Position()
    for i in range(count):
        position = apply_fill(position, Side.BUY, buys[i % 3], prices[i % 4], d("0.00012345"))
        position = apply_fill(position, Side.SELL, sells[i % 3], prices[(i + 1) % 4], d("0.00012345"))
    return position


def test_cost_and_pnl_do_not_grow_with_history() -> None:
    """Regression: each partial close once kept an exact fraction, and the cost's digits
    grew with every cycle. After 100 and 2,000 cycles they stay short and alike."""
    early, late = cycles(100), cycles(2000)
    for field in ("cost", "realized_pnl", "fees"):
        short, long = len(str(getattr(early, field))), len(str(getattr(late, field)))
        assert long < 60, (field, getattr(late, field))
        assert long <= short + 3, (field, getattr(early, field), getattr(late, field))  # 20x the volume: digits
    assert late.qty == 2000 // 3 * (d("1.23456789") + d("0.98765432") + d("2.34567891")) - 2000 // 3 * (
        d("0.12345678") + d("0.87654321") + d("0.33333333")
    ) + (d("1.23456789") - d("0.12345678")) + (d("0.98765432") - d("0.87654321"))
