"""Schema version 2: each instrument's position kept in its own table (exact fractions
as text, "n/d"), filled in here from every fill, in fill order.

The average-cost rules are those of version 2's app/positions.py, copied: a migration
must compute what the service of its time would have, whatever the service does now.

Revision ID: 0002
Revises: 0001
"""

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_ZERO = Fraction(0)

_orders = sa.table(
    "orders",
    sa.column("order_id", sa.String()),
    sa.column("exchange", sa.String()),
    sa.column("symbol", sa.String()),
    sa.column("side", sa.String()),
)
_fills = sa.table(
    "fills",
    sa.column("seq", sa.Integer()),
    sa.column("order_id", sa.String()),
    sa.column("qty", sa.Text()),
    sa.column("price", sa.Text()),
    sa.column("fee", sa.Text()),
)


@dataclass(frozen=True)
class _Position:
    qty: Fraction = _ZERO  # signed: long > 0, short < 0
    cost: Fraction = _ZERO  # qty x average entry price (signed like qty)
    realized_pnl: Fraction = _ZERO
    fees: Fraction = _ZERO


def _apply_fill(position: _Position, side: str, qty: Decimal, price: Decimal, fee: Decimal) -> _Position:
    """Version 2's apply_fill: a fill that adds to the position moves the average entry;
    one against it realizes profit on the part it closes; one that goes through zero
    opens the rest at the fill price."""
    amount, at = Fraction(qty), Fraction(price)
    signed = amount if side == "BUY" else -amount
    held = position.qty
    fees = position.fees + Fraction(fee)
    if held == 0 or (held > 0) == (signed > 0):
        return _Position(held + signed, position.cost + signed * at, position.realized_pnl, fees)
    avg = position.cost / held
    closed = min(amount, abs(held))
    direction = 1 if held > 0 else -1
    realized = position.realized_pnl + closed * (at - avg) * direction
    after = held + signed
    if (after > 0) == (held > 0) or after == 0:
        return _Position(after, after * avg, realized, fees)
    return _Position(after, after * at, realized, fees)  # flipped through zero


def upgrade() -> None:
    positions = op.create_table(
        "positions",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("qty", sa.Text(), nullable=False),
        sa.Column("cost", sa.Text(), nullable=False),
        sa.Column("realized_pnl", sa.Text(), nullable=False),
        sa.Column("fees", sa.Text(), nullable=False),
    )
    fills = op.get_bind().execute(
        sa.select(_orders.c.exchange, _orders.c.symbol, _orders.c.side, _fills.c.qty, _fills.c.price, _fills.c.fee)
        .join_from(_fills, _orders, _fills.c.order_id == _orders.c.order_id)
        .order_by(_fills.c.seq)
    )
    held: dict[tuple[str, str], _Position] = {}
    for fill in fills:
        instrument = (fill.exchange, fill.symbol)
        held[instrument] = _apply_fill(
            held.get(instrument, _Position()), fill.side, Decimal(fill.qty), Decimal(fill.price), Decimal(fill.fee)
        )
    rows = [
        {
            "exchange": exchange,
            "symbol": symbol,
            "qty": str(position.qty),
            "cost": str(position.cost),
            "realized_pnl": str(position.realized_pnl),
            "fees": str(position.fees),
        }
        for (exchange, symbol), position in held.items()
    ]
    if rows:
        op.bulk_insert(positions, rows)
    op.execute(sa.text("UPDATE schema_version SET version = 2"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
