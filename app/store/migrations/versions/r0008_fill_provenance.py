"""Schema version 8: each fill records its provenance.

What market data a fill met (`source`: a quote as it came, or the latest quote when
the order arrived, and the time that data describes), the price of the level it met
and that level's size before it, and the slippage and fee rates applied. Fills stored
before this version keep null there: their provenance was not recorded.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("fills", sa.Column("source", sa.String(16)))
    op.add_column("fills", sa.Column("data_ts", sa.BigInteger()))
    for name in ("level_price", "level_size", "slippage_bps", "fee_bps"):
        op.add_column("fills", sa.Column(name, sa.Text()))
    op.execute(sa.text("UPDATE schema_version SET version = 8"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
