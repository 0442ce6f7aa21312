"""Schema version 13: the balance check of live orders.

- `live_orders` gains `claim_asset` and `claim` (what the order claims of its
  exchange's account, when balances apply) and `seen_at` (when the exchange first
  answered for it); orders already there claim nothing.
- `exchange_balances`: each live exchange's account as last read.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("live_orders", sa.Column("claim_asset", sa.String(32)))
    op.add_column("live_orders", sa.Column("claim", sa.Text()))
    op.add_column("live_orders", sa.Column("seen_at", sa.BigInteger()))
    op.create_index("live_orders_by_seen", "live_orders", ["exchange", "seen_at"])
    op.create_table(
        "exchange_balances",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("free", sa.Text(), nullable=False),
        sa.Column("taken_at", sa.BigInteger(), nullable=False),
    )
    op.execute(sa.text("UPDATE schema_version SET version = 13"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
