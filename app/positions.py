"""Average-cost positions, built one fill at a time (pure, over `Decimal`)."""

from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class Position:
    qty: Decimal = ZERO  # signed: long > 0, short < 0
    avg_entry_price: Decimal | None = None
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        if self.avg_entry_price is None:
            return ZERO
        return (mark - self.avg_entry_price) * self.qty


def apply_fill(position: Position, side: str, qty: Decimal, price: Decimal, fee: Decimal) -> Position:
    """The position after one fill. A fill that adds to the position moves the average
    entry; one against it realizes profit on the part it closes; one that goes through
    zero opens the rest at the fill price."""
    signed = qty if side == "BUY" else -qty
    held = position.qty
    fees = position.fees + fee
    if held == ZERO or (held > ZERO) == (signed > ZERO):
        avg = position.avg_entry_price or ZERO
        new_avg = (abs(held) * avg + qty * price) / (abs(held) + qty)
        return Position(held + signed, new_avg, position.realized_pnl, fees)
    assert position.avg_entry_price is not None
    closed = min(qty, abs(held))
    direction = Decimal(1) if held > ZERO else Decimal(-1)
    realized = position.realized_pnl + closed * (price - position.avg_entry_price) * direction
    after = held + signed
    if after == ZERO:
        return Position(ZERO, None, realized, fees)
    if (after > ZERO) == (held > ZERO):
        return Position(after, position.avg_entry_price, realized, fees)
    return Position(after, price, realized, fees)  # flipped through zero
