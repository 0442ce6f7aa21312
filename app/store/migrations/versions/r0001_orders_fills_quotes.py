"""Schema version 1: orders, their fills, the latest quote per instrument (positions
were computed from every fill on each read), and the schema_version row.

Revision ID: 0001
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# INTEGER PRIMARY KEY on SQLite (its rowid), BIGSERIAL on PostgreSQL.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The open statuses of version 1, frozen: the partial index's predicate.
_OPEN = "status IN ('NEW', 'PARTIALLY_FILLED')"


def upgrade() -> None:
    op.create_table("schema_version", sa.Column("version", sa.Integer(), nullable=False))
    op.execute(sa.text("INSERT INTO schema_version (version) VALUES (1)"))
    op.create_table(
        "orders",
        sa.Column("seq", _ID, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(48), nullable=False, unique=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("type", sa.String(6), nullable=False),
        sa.Column("qty", sa.Double(), nullable=False),
        sa.Column("limit_price", sa.Double()),
        sa.Column("client_ts", sa.BigInteger()),
        sa.Column("accepted_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("filled_qty", sa.Text(), nullable=False),
        sa.Column("passive", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "orders_open_by_instrument",
        "orders",
        ["exchange", "symbol", "side", "limit_price"],
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )
    op.create_table(
        "fills",
        sa.Column("seq", _ID, primary_key=True, autoincrement=True),
        sa.Column("fill_id", sa.String(48), nullable=False, unique=True),
        sa.Column("order_id", sa.String(48), sa.ForeignKey("orders.order_id"), nullable=False),
        sa.Column("qty", sa.Text(), nullable=False),
        sa.Column("price", sa.Text(), nullable=False),
        sa.Column("fee", sa.Text(), nullable=False),
        sa.Column("liquidity", sa.String(5), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_fills_order_id", "fills", ["order_id"])
    op.create_table(
        "quotes",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("bid", sa.Text(), nullable=False),
        sa.Column("ask", sa.Text(), nullable=False),
        sa.Column("bid_size", sa.Text()),
        sa.Column("ask_size", sa.Text()),
    )


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
