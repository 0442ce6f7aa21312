"""Average-cost positions, built one fill at a time (pure).

Kept as exact fractions: an average entry price is a quotient (0.1 at 100 and 0.2 at
101 average to 100.666...), and any rounding of it would leave a residue in the
realized profit when the position closes.
"""

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

ZERO = Fraction(0)


@dataclass(frozen=True)
class Position:
    qty: Fraction = ZERO  # signed: long > 0, short < 0
    cost: Fraction = ZERO  # qty x average entry price (signed like qty)
    realized_pnl: Fraction = ZERO
    fees: Fraction = ZERO

    @property
    def avg_entry_price(self) -> Fraction | None:
        return None if self.qty == 0 else self.cost / self.qty

    def unrealized_pnl(self, mark: Fraction) -> Fraction:
        return mark * self.qty - self.cost


def apply_fill(position: Position, side: str, qty: Decimal, price: Decimal, fee: Decimal) -> Position:
    """The position after one fill. A fill that adds to the position moves the average
    entry; one against it realizes profit on the part it closes; one that goes through
    zero opens the rest at the fill price."""
    amount, at = Fraction(qty), Fraction(price)
    signed = amount if side == "BUY" else -amount
    held = position.qty
    fees = position.fees + Fraction(fee)
    if held == 0 or (held > 0) == (signed > 0):
        return Position(held + signed, position.cost + signed * at, position.realized_pnl, fees)
    avg = position.cost / held
    closed = min(amount, abs(held))
    direction = 1 if held > 0 else -1
    realized = position.realized_pnl + closed * (at - avg) * direction
    after = held + signed
    if (after > 0) == (held > 0) or after == 0:
        return Position(after, after * avg, realized, fees)
    return Position(after, after * at, realized, fees)  # flipped through zero
