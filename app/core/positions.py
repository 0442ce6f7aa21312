"""Average-cost positions, built one fill at a time (pure).

A position is its signed quantity, its cost basis (what the open quantity cost: qty x
average entry price, signed like qty), the profit realized so far and the fees paid,
each an exact decimal. A fill that adds to the position adds its exact cost. A fill
that closes part of it takes that part's share of the cost, `cost x closed / held`,
rounded half-even to `COST_DIGITS` significant digits: the only rounding. A fill that
closes the whole position takes the whole cost, so a position that goes flat has
realized exactly what its fills paid and got, with no residue; and a position of any
history costs the same to update and to store (a kept fraction grew with every
partial close). The average entry price is shown as `cost / qty`.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

from app.core.values import EXACT, ZERO
from app.core.vocabulary import Side

COST_DIGITS = 20
_SHARE = Context(prec=COST_DIGITS, rounding=ROUND_HALF_EVEN)
_SHOWN = Context(prec=28)  # the average, for reading only: a float on the wire


@dataclass(frozen=True, slots=True)
class Position:
    qty: Decimal = ZERO  # signed: long > 0, short < 0
    cost: Decimal = ZERO  # what the open quantity cost, signed like qty
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def avg_entry_price(self) -> Decimal | None:
        return None if self.qty == 0 else _SHOWN.divide(self.cost, self.qty)

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return EXACT.subtract(EXACT.multiply(mark, self.qty), self.cost)


def apply_fill(position: Position, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Position:
    """The position after one fill. A fill that adds to the position adds its cost; one
    against it realizes profit on the part it closes; one that goes through zero opens
    the rest at the fill price."""
    signed = qty if side == Side.BUY else qty.copy_negate()
    held = position.qty
    fees = EXACT.add(position.fees, fee)
    after = EXACT.add(held, signed)
    if held == 0 or (held > 0) == (signed > 0):
        return Position(after, EXACT.add(position.cost, EXACT.multiply(signed, price)), position.realized_pnl, fees)
    closed = min(qty, held.copy_abs())
    if closed == held.copy_abs():
        taken = position.cost  # all of it: nothing is left to round
    else:
        taken = _SHARE.divide(EXACT.multiply(position.cost, closed), held.copy_abs())
    # What closing `closed` got back (the fill's price on the held side), less its cost.
    back = EXACT.multiply(closed, price) if held > 0 else EXACT.multiply(closed, price).copy_negate()
    realized = EXACT.add(position.realized_pnl, EXACT.subtract(back, taken))
    if after == 0:
        return Position(ZERO, ZERO, realized, fees)
    if (after > 0) == (held > 0):
        return Position(after, EXACT.subtract(position.cost, taken), realized, fees)
    return Position(after, EXACT.multiply(after, price), realized, fees)  # flipped: the rest opens at the fill price
