"""Schema version 11: feed leases.

- `feed_leases`: per instrument, which process runs its market data feed (`holder`)
  and until when (`expires_at`, microseconds). Processes sharing the database renew
  their leases while they run; once one lapses (its process died), another takes it,
  so exactly one feed per instrument runs.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "feed_leases",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.execute(sa.text("UPDATE schema_version SET version = 11"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
