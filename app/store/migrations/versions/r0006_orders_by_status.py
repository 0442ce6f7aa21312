"""Schema version 6: orders indexed by (status, seq), events by (order_id, seq).

A listing filtered by status (`GET /execution/orders?status=EXPIRED`, or several
statuses) reads each status's newest rows from the index and stops at the page's size;
before, it read every newer order and kept those of the status. A page of an order's
fills (`GET /execution/orders/{id}/fills?after=...`) reads its events from the seq on;
the index on events' order_id alone, which this one serves as well, is dropped. No row
changes.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("orders_by_status", "orders", ["status", "seq"])
    op.drop_index("ix_events_order_id", "events")
    op.create_index("events_by_order", "events", ["order_id", "seq"])
    op.execute(sa.text("UPDATE schema_version SET version = 6"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
