"""Schema version 12: live orders.

- `live_orders`: the outbox of orders for live exchanges, one row per order, written
  with the order: its client order id at the exchange, how far its sending has come
  (`pending`, `sent`, `held`, `done`), the exchange's order id, a cancel asked for.
- `exchange_fills`: every exchange trade applied as a fill, by the exchange's trade id
  (per symbol), so that a report seen twice fills once.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "live_orders",
        sa.Column("order_id", sa.String(48), sa.ForeignKey("orders.order_id"), primary_key=True),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("client_order_id", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("exchange_order_id", sa.String(128)),
        sa.Column("cancel", sa.String(16)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("live_orders_by_state", "live_orders", ["exchange", "state"])
    op.create_table(
        "exchange_fills",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("trade_id", sa.String(128), primary_key=True),
        sa.Column("order_id", sa.String(48), sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("fill_id", sa.String(48), nullable=False),
    )
    op.execute(sa.text("UPDATE schema_version SET version = 12"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
