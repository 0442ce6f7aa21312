"""Schema version 9: books with depth, trades and queue position.

- `quotes.depth`: the levels behind the top of a book posted with depth (best first,
  each side, less what fills took from them). A plain quote, and every quote stored
  before this version, has none (null): its top is its whole book.
- `queues`: per instrument, the queues of its resting orders (one transform per price
  level) and the time of its latest print on the tape. None before this version.
- `orders.queue_place`: a resting LIMIT order's place in the queue at its price; null for
  every order stored before (nothing is known to be ahead of them).
- `fills.queue_ahead`: for a fill a trade made, the queue ahead it consumed first; null
  for every other fill.

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
    op.add_column("orders", sa.Column("queue_place", sa.Text()))
    op.add_column("fills", sa.Column("queue_ahead", sa.Text()))
    op.create_table(
        "queues",
        sa.Column("exchange", sa.String(64), primary_key=True),
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("trade_ts", sa.BigInteger()),
        sa.Column("levels", sa.Text(), nullable=False),
    )
    op.execute(sa.text("UPDATE schema_version SET version = 9"))


def downgrade() -> None:
    raise NotImplementedError("schema upgrades are one way: restore a backup to go back")
