"""Schema version 9: an instrument's latest market data keeps the depth of its book.

A book posted with depth keeps the levels behind its top (best first, each side, less
what fills took from them) as text in `depth`. A plain quote, and every quote stored
before this version, has none (null): its top is its whole book.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("quotes", sa.Column("depth", sa.Text()))
    op.execute(sa.text("UPDATE schema_version SET version = 9"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
