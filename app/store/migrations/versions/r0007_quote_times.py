"""Schema version 7: each instrument's latest quote keeps the time it describes.

Market data older than an instrument's latest is refused, and with MAX_QUOTE_AGE_MS
orders do not fill against data that has grown old: both need the latest data's time.
A quote stored before this version has none (null): its time is not known, so a maximum
age finds it stale, any newer data is in order, and fills against it name no time.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("quotes", sa.Column("ts", sa.BigInteger()))
    op.execute(sa.text("UPDATE schema_version SET version = 7"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
