"""Schema version 13: the balance check of live orders, and their exchanges' status shared.

- `live_orders` gains `claim_asset` and `claim` (what the order claims of its
  exchange's account, when balances apply) and `seen_at` (when the exchange first
  answered for it); orders already there claim nothing.
- `exchange_balances`: each live exchange's account as last read.
- `live_status`: what the process executing each live exchange's orders last saw of
  it (reachable, its last error, open orders there this service does not know), for
  every process to show.

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
    op.create_table(
        "live_status",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("reachable", sa.Boolean()),
        sa.Column("last_error", sa.Text()),
        sa.Column("unknown_open_orders", sa.Text(), nullable=False),
        sa.Column("executor", sa.String(128)),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    op.execute(sa.text("UPDATE schema_version SET version = 13"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
