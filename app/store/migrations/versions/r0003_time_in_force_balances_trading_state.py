"""Schema version 3: orders have a time in force (GTC for every older order) and a
reserve price; the trading state (kill switch) and the paper balances have tables.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def create_trading_state() -> None:
    """Version 3's trading_state table (its row is the service's to write at start-up)."""
    op.create_table(
        "trading_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )


def create_balances() -> None:
    """Version 3's balances table."""
    op.create_table(
        "balances",
        sa.Column("asset", sa.String(64), primary_key=True),
        sa.Column("start", sa.Text(), nullable=False),
        sa.Column("total", sa.Text(), nullable=False),
        sa.Column("reserved", sa.Text(), nullable=False),
    )


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: the default fills the existing rows.
    op.add_column("orders", sa.Column("time_in_force", sa.String(3), nullable=False, server_default="GTC"))
    op.add_column("orders", sa.Column("reserve_price", sa.Text()))
    create_trading_state()
    create_balances()
    op.execute(sa.text("UPDATE schema_version SET version = 3"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
