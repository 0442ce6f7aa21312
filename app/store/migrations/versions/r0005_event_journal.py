"""Schema version 5: the event journal (`events`, numbered from `journal_head`).

Fills made before the journal existed are journaled here, oldest first, as `fill` or
`partial_fill` entries (seq 1, 2, 3, ...), so listing fills by seq shows every fill of
the account. What those entries cannot know is left empty: the position after each
fill. Other past events (orders accepted, canceled, expired; trading-state changes)
were never recorded one by one and are not made up; the journal tells them from the
first start of version 5.

Revision ID: 0005
Revises: 0004
"""

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_fills = sa.table(
    "fills",
    sa.column("seq", sa.BigInteger()),
    sa.column("fill_id", sa.String()),
    sa.column("order_id", sa.String()),
    sa.column("qty", sa.Text()),
    sa.column("ts", sa.BigInteger()),
)
_orders = sa.table(
    "orders",
    sa.column("order_id", sa.String()),
    sa.column("exchange", sa.String()),
    sa.column("symbol", sa.String()),
    sa.column("status", sa.String()),
    sa.column("filled_qty", sa.Text()),
)


def upgrade() -> None:
    head = op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    events = op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.String(48)),
        sa.Column("exchange", sa.String(64)),
        sa.Column("symbol", sa.String(64)),
        sa.Column("status", sa.String(16)),
        sa.Column("filled_qty", sa.Text()),
        sa.Column("fill_id", sa.String(48), unique=True),
        sa.Column("position_qty", sa.Text()),
        sa.Column("position_cost", sa.Text()),
        sa.Column("position_realized_pnl", sa.Text()),
        sa.Column("position_fees", sa.Text()),
        sa.Column("reason", sa.String(16)),
        sa.Column("detail", sa.Text()),
        sa.Column("state", sa.String(16)),
        sa.Column("state_reason", sa.Text()),
        sa.Column("state_updated_at", sa.BigInteger()),
        sa.Column("previous_state", sa.String(16)),
        sa.Column("previous_reason", sa.Text()),
        sa.Column("previous_updated_at", sa.BigInteger()),
        sa.Column("canceled_orders", sa.Integer()),
    )
    op.create_index("ix_events_order_id", "events", ["order_id"])

    bind = op.get_bind()
    past = bind.execute(
        sa.select(_fills, _orders.c.exchange, _orders.c.symbol, _orders.c.status, _orders.c.filled_qty.label("total"))
        .join(_orders, _orders.c.order_id == _fills.c.order_id)
        .order_by(_fills.c.seq)
    ).all()
    filled: dict[str, Decimal] = {}
    rows = []
    for seq, fill in enumerate(past, start=1):
        so_far = filled[fill.order_id] = filled.get(fill.order_id, Decimal(0)) + Decimal(fill.qty)
        whole = fill.status == "FILLED" and so_far == Decimal(fill.total)
        rows.append(
            {
                "seq": seq,
                "type": "fill" if whole else "partial_fill",
                "ts": fill.ts,
                "order_id": fill.order_id,
                "exchange": fill.exchange,
                "symbol": fill.symbol,
                "status": "FILLED" if whole else "PARTIALLY_FILLED",
                "filled_qty": str(so_far),
                "fill_id": fill.fill_id,
            }
        )
    if rows:
        op.bulk_insert(events, rows)
    op.bulk_insert(head, [{"id": 1, "seq": len(rows)}])
    op.execute(sa.text("UPDATE schema_version SET version = 5"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
