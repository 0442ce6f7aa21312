"""Schema version 10: the journal's id.

- `journal_head.journal_id`: names this database's journal, 32 hex digits made once,
  here. A `seq` means something only within its journal: a client following events
  is told the id with each stream, and a new database (a journal that numbers from 1
  again) has another one.

Revision ID: 0010
Revises: 0009
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("journal_head", sa.Column("journal_id", sa.String(32)))
    op.execute(sa.text("UPDATE journal_head SET journal_id = :id").bindparams(id=secrets.token_hex(16)))
    op.execute(sa.text("UPDATE schema_version SET version = 10"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
