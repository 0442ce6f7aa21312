"""The SQL store's tables (the current schema) and how a database gets them: the Alembic
migrations in app/store/migrations, run at start-up by `prepare`."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)

from app.core.vocabulary import OPEN_STATUSES

OPEN = sorted(OPEN_STATUSES)
# 2: positions kept in their own table, updated with each fill (1 computed them from
# every fill on each read). 3: orders have a time in force (GTC for older orders) and a
# reserve price, and the trading state and the paper balances have their tables.
# 4: positions as exact decimals (an average price, not a growing fraction), and each
# order records what it reserved.
# 5: the event journal (every order and trading-state event, numbered in commit order).
# 6: orders indexed by status and seq (a listing filtered by status reads its page),
# events by order and seq (a page of an order's fills reads that page).
# 12: the live outbox (live_orders) and the exchanges' trade ids already applied
# (exchange_fills). 13: live orders' claims on their exchange's account and when the
# exchange first answered for them, and each live exchange's account as last read
# (exchange_balances): intake's balance check for live orders; what the executor of each
# live exchange last saw of it (live_status), for every process to show.
SCHEMA_VERSION = 13

metadata = MetaData()
_ID = BigInteger().with_variant(Integer, "sqlite")  # INTEGER PRIMARY KEY: SQLite's rowid

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

# Quantities the client sent are floats (stored as 8-byte doubles, exact); quantities
# the service computed are exact decimals, stored as their text.
orders = Table(
    "orders",
    metadata,
    Column("seq", _ID, primary_key=True, autoincrement=True),  # acceptance order: listing and cursors
    Column("order_id", String(48), nullable=False, unique=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("exchange", String(64), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(6), nullable=False),
    Column("time_in_force", String(3), nullable=False, server_default="GTC"),
    # With PAPER_BALANCES, what the order holds of its asset per unit of quantity, and
    # what it still holds (text: exact); NULL when it holds nothing.
    Column("reserve_unit", Text),
    Column("reserved", Text),
    Column("qty", Double, nullable=False),
    Column("limit_price", Double),
    Column("client_ts", BigInteger),
    Column("accepted_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger),
    Column("status", String(16), nullable=False),
    Column("filled_qty", Text, nullable=False),
    # A resting LIMIT that a quote has passed by: it fills as maker from then on.
    Column("passive", Boolean, nullable=False),
    # A resting LIMIT order's place in the queue at its price (core.queue; null:
    # nothing ahead of it).
    Column("queue_place", Text),
)
_open = orders.c.status.in_(OPEN)
# Only open orders: what a quote searches, however many orders have ended.
Index(
    "orders_open_by_instrument",
    orders.c.exchange,
    orders.c.symbol,
    orders.c.side,
    orders.c.limit_price,
    postgresql_where=_open,
    sqlite_where=_open,
)
# A listing filtered by status, newest first: one index range per status.
Index("orders_by_status", orders.c.status, orders.c.seq)

fills = Table(
    "fills",
    metadata,
    Column("seq", _ID, primary_key=True, autoincrement=True),
    Column("fill_id", String(48), nullable=False, unique=True),
    Column("order_id", String(48), ForeignKey("orders.order_id"), nullable=False, index=True),
    Column("qty", Text, nullable=False),
    Column("price", Text, nullable=False),
    Column("fee", Text, nullable=False),
    Column("liquidity", String(5), nullable=False),
    Column("ts", BigInteger, nullable=False),
    # Its provenance (schema 8; all null for a fill stored before): the market data's
    # source and time, the level it met and that level's size before it, the rates.
    Column("source", String(16)),
    Column("data_ts", BigInteger),
    Column("level_price", Text),
    Column("level_size", Text),
    Column("slippage_bps", Text),
    Column("fee_bps", Text),
    # A trade's fill: the queue ahead of the order that the print consumed first.
    Column("queue_ahead", Text),
)

# The latest quote of each instrument, its sizes less what fills have taken since.
quotes = Table(
    "quotes",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("bid", Text, nullable=False),
    Column("ask", Text, nullable=False),
    Column("bid_size", Text),
    Column("ask_size", Text),
    # The time the quote describes (microseconds; null: stored before schema 7 kept it).
    Column("ts", BigInteger),
    # The levels behind the top of a book posted with depth (sql_rows.depth_text; null:
    # a plain quote, or one stored before schema 9).
    Column("depth", Text),
)

# Each instrument's queues of resting orders (core.queue, as sql_rows.queues_text
# writes them) and the time of its latest print on the tape.
queues = Table(
    "queues",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("trade_ts", BigInteger),
    Column("levels", Text, nullable=False),
)

# Each instrument's position, updated in the transaction that records its fills (which
# holds the instrument's lock), so a read is one row per instrument, not every fill.
# Exact decimals as text (app.core.positions says how the average is rounded).
positions = Table(
    "positions",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("qty", Text, nullable=False),
    Column("cost", Text, nullable=False),
    Column("realized_pnl", Text, nullable=False),
    Column("fees", Text, nullable=False),
)

# The paper account (PAPER_BALANCES): per asset, its starting amount, its total and what
# open orders reserve. Exact decimals as text.
balances = Table(
    "balances",
    metadata,
    Column("asset", String(64), primary_key=True),
    Column("start", Text, nullable=False),
    Column("total", Text, nullable=False),
    Column("reserved", Text, nullable=False),
)

# The kill switch: one row, shared by every worker, kept across restarts.
trading_state = Table(
    "trading_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    Column("updated_at", BigInteger, nullable=False),
)
_STATE_ROW = trading_state.c.id == 1

# Which process runs each instrument's market data feed, and until when: a lease its
# holder renews while it runs, and another process takes once it lapses.
feed_leases = Table(
    "feed_leases",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# The outbox of live orders: a row per order for a live exchange, inserted in the
# transaction that stores the order (no order the exchange must hold is stored without
# one); the live executor sends it, checks it and brings the order up to date until
# it is final. `state`: pending (not sent), sent (a send was tried, its answer not
# known), held (the exchange acknowledged it), done (final here and there). `cancel`:
# a cancel asked for and not yet confirmed (its reason).
live_orders = Table(
    "live_orders",
    metadata,
    Column("order_id", String(48), ForeignKey("orders.order_id"), primary_key=True),
    Column("exchange", String(64), nullable=False),
    Column("client_order_id", String(64), nullable=False, unique=True),
    Column("state", String(8), nullable=False),
    Column("exchange_order_id", String(128)),
    Column("cancel", String(16)),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),  # never written: a send's failures are logged
    Column("updated_at", BigInteger, nullable=False),
    # When balances apply: what the order claims of its exchange's account (an asset and
    # an exact amount), and when the exchange first answered for it (None: not yet).
    Column("claim_asset", String(32)),
    Column("claim", Text),
    Column("seen_at", BigInteger),
    Index("live_orders_by_state", "exchange", "state"),
    Index("live_orders_by_seen", "exchange", "seen_at"),
)

# Each live exchange's account as last read (when balances apply): the free amount of
# each asset (a JSON object of exact decimal texts) and when the reading was asked for.
exchange_balances = Table(
    "exchange_balances",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("free", Text, nullable=False),
    Column("taken_at", BigInteger, nullable=False),
)

# What the process executing each live exchange's orders last saw of it: whether it
# answered (None: not asked yet), its last error, and the open orders there that this
# service does not know (a JSON list), for /capabilities and /metrics in every process.
live_status = Table(
    "live_status",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("reachable", Boolean),
    Column("last_error", Text),
    Column("unknown_open_orders", Text, nullable=False),
    Column("executor", String(128)),  # which process (host:pid)
    Column("updated_at", BigInteger, nullable=False),
)

# The exchanges' trades applied as fills: each once, whatever resends and checks report
# (trade ids are an exchange's per symbol: Binance numbers each symbol's trades).
exchange_fills = Table(
    "exchange_fills",
    metadata,
    Column("exchange", String(64), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("trade_id", String(128), primary_key=True),
    Column("order_id", String(48), ForeignKey("orders.order_id"), nullable=False),
    Column("fill_id", String(48), nullable=False),
)

# The event journal: one row per event, `seq` 1, 2, 3, ... in commit order with no gaps.
# A writer takes its seqs from `journal_head` (one row) as the last step of its
# transaction: the row's lock orders the writers, so seqs commit in order, and one that
# rolls back takes none. Exchange and symbol are kept for the filters; an order's row,
# its fills and the status and filled quantity here show it as of the event.
journal_head = Table(
    "journal_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    # Names this journal (seqs mean something only within it): made once, by migration 10.
    Column("journal_id", String(32)),
)
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(16), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("order_id", String(48)),
    Column("exchange", String(64)),
    Column("symbol", String(64)),
    Column("status", String(16)),
    Column("filled_qty", Text),
    Column("fill_id", String(48), unique=True),
    # The instrument's position right after a fill (exact decimals as text).
    Column("position_qty", Text),
    Column("position_cost", Text),
    Column("position_realized_pnl", Text),
    Column("position_fees", Text),
    Column("reason", String(16)),  # a cancel's
    Column("detail", Text),
    # A trading-state change: the state, its reason and time; the one before; how many
    # open orders were canceled with it.
    Column("state", String(16)),
    Column("state_reason", Text),
    Column("state_updated_at", BigInteger),
    Column("previous_state", String(16)),
    Column("previous_reason", Text),
    Column("previous_updated_at", BigInteger),
    Column("canceled_orders", Integer),
)

# An order's events in seq order: its fills page by page, its entries in the journal.
Index("events_by_order", events.c.order_id, events.c.seq)

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
# The Alembic revision of each schema version: "0004" is version 4.
HEAD = f"{SCHEMA_VERSION:04d}"
# Databases from before Alembic record only their version, in schema_version: the
# revision that made each version, stamped before upgrading from there.
_LEGACY = {1: "0001", 2: "0002", 3: "0003"}
# Tables only this service makes; any of them without a version is another program's.
_OURS = {table.name for table in metadata.sorted_tables} - {schema_version.name}


class SchemaError(Exception):
    """The database cannot be used with this version of the service; the message says why."""


def migration_config(conn: Connection) -> Config:
    """Alembic's configuration, built in code (no alembic.ini ships): the migrations
    folder, and `conn`, which env.py runs them on, in its transaction."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))  # %: ini interpolation
    config.attributes["connection"] = conn
    return config


def prepare(conn: Connection, initial_state: str, now: int) -> None:
    """Bring the database to the current schema, in `conn`'s transaction (the caller
    holds the schema lock, so workers starting together upgrade one at a time, and the
    later ones find nothing to do), then make sure the trading state row exists."""
    config = migration_config(conn)
    tables = set(inspect(conn).get_table_names())
    revision = _alembic_revision(conn)
    versions = conn.execute(select(schema_version.c.version)).scalars().all() if schema_version.name in tables else []
    found = ", ".join(map(str, versions)) or "none"
    if revision is not None:
        known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
        if revision not in known:
            raise SchemaError(
                f"the database has schema version {revision} (an Alembic revision this service does not know; "
                f"its newest is {HEAD}): it was made by a newer version of the service"
            )
        # The migrations keep schema_version in step with the revision: anything else
        # was written by someone else (an operator, another program), so do not guess.
        if schema_version.name in tables and versions != [int(revision)]:
            raise SchemaError(
                f"the database has schema version {found} (Alembic revision {revision}); "
                f"this service uses {SCHEMA_VERSION}"
            )
    elif schema_version.name in tables:
        legacy = versions[0] if len(versions) == 1 else None
        if legacy not in _LEGACY:
            raise SchemaError(f"the database has schema version {found}; this service uses {SCHEMA_VERSION}")
        command.stamp(config, _LEGACY[legacy])  # what the old service's version says it is
    elif tables & _OURS:
        # Tables of that name, but no version: another program's, and misreading them
        # would be worse than not starting.
        raise SchemaError(
            "the database has tables named like this service's but no schema_version; use an empty database"
        )
    command.upgrade(config, "head")
    if conn.execute(select(trading_state.c.id).where(_STATE_ROW)).one_or_none() is None:
        conn.execute(trading_state.insert().values(id=1, state=initial_state, reason=None, updated_at=now))


def _alembic_revision(conn: Connection) -> str | None:
    """The database's Alembic revision; None before Alembic (no alembic_version row)."""
    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise SchemaError(f"the database has schema versions {', '.join(heads)} at once (Alembic branches)")
    return heads[0] if heads else None
