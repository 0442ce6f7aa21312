"""Schema version 4: positions as exact decimals (no longer fractions that grow with
every partial close), and each order records what it reserved (per unit, and what it
still holds) instead of a reserve price.

Every existing order gets NULL for both: with PAPER_BALANCES the service reserves its
open orders again at start-up. Each position's fractions ("n/d") become decimal text:
qty exactly (a sum of fill quantities); the cost basis rounded half to even to 20
significant digits, version 4's only rounding of a cost (a fraction such as 301/60 has
no finite decimal); realized profit and fees to 100 significant digits (exact unless
the realized fraction has no finite decimal either).

Revision ID: 0004
Revises: 0003
"""

from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

import sqlalchemy as sa
from alembic import op

from app.store.migrations.versions.r0003_time_in_force_balances_trading_state import (
    create_balances,
    create_trading_state,
)

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_EXACT = Context(prec=100, rounding=ROUND_HALF_EVEN)
_COST = Context(prec=20, rounding=ROUND_HALF_EVEN)  # version 4's COST_DIGITS

_positions = sa.table(
    "positions",
    sa.column("exchange", sa.String()),
    sa.column("symbol", sa.String()),
    sa.column("qty", sa.Text()),
    sa.column("cost", sa.Text()),
    sa.column("realized_pnl", sa.Text()),
    sa.column("fees", sa.Text()),
)


def _decimal(value: Fraction, context: Context) -> str:
    """`value` as a decimal's text: exact when it fits `context`'s digits, else rounded."""
    return str(context.divide(Decimal(value.numerator), Decimal(value.denominator)))


def converted(qty: str, cost: str, realized_pnl: str, fees: str) -> dict[str, str]:
    """A version 3 position row's fractions as version 4's decimals."""
    return {
        "qty": _decimal(Fraction(qty), _EXACT),
        "cost": _decimal(Fraction(cost), _COST),
        "realized_pnl": _decimal(Fraction(realized_pnl), _EXACT),
        "fees": _decimal(Fraction(fees), _EXACT),
    }


def upgrade() -> None:
    bind = op.get_bind()
    tables = set(sa.inspect(bind).get_table_names())
    # Version 3 grew in steps without a version bump (time_in_force first, then
    # trading_state, then balances and reserve_price), and its start-up only created
    # missing tables: a version 3 database may lack the later parts.
    if "trading_state" not in tables:
        create_trading_state()
    if "balances" not in tables:
        create_balances()

    order_columns = {column["name"] for column in sa.inspect(bind).get_columns("orders")}
    op.add_column("orders", sa.Column("reserve_unit", sa.Text()))
    op.add_column("orders", sa.Column("reserved", sa.Text()))
    if "reserve_price" in order_columns:
        # In place on SQLite too (3.35+ drops an unindexed column): batch mode's copy
        # of orders would fail, as fills reference it and foreign keys are on.
        op.drop_column("orders", "reserve_price")

    held = bind.execute(sa.select(_positions)).all()
    for row in held:
        bind.execute(
            _positions.update()
            .where(_positions.c.exchange == row.exchange, _positions.c.symbol == row.symbol)
            .values(converted(row.qty, row.cost, row.realized_pnl, row.fees))
        )
    op.execute(sa.text("UPDATE schema_version SET version = 4"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
