"""Schema migrations (app/store/migrations, run by app.store.schema.prepare), on SQLite
and PostgreSQL.

The legacy databases are real: each fixture is a dump of a database that the service
itself made at an earlier commit, through its HTTP API (see fixtures/make_fixtures.py
and fixtures/sources.json): schema 1, schema 2, schema 3 as first committed (orders'
time_in_force only), schema 3 as last committed (trading state, balances, reserve
prices), and a schema 1 database that the last schema 3 code upgraded in place. All
ran one scenario: orders open, partly filled, filled, canceled and expired, positions
long, short, flat and flipped, one with an average of 301/3 and a realized 37/60.
"""

import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.store import schema
from app.store.schema import HEAD, SCHEMA_VERSION, SchemaError, migration_config, prepare

FIXTURES = Path(__file__).parent / "fixtures"
LEGACY = ["schema1", "schema2", "schema3_early", "schema3", "schema3_from1"]
LEGACY_VERSION = {"schema1": 1, "schema2": 2, "schema3_early": 3, "schema3": 3, "schema3_from1": 3}
# Fixtures whose code had time in force, and so traded binance ETH/USDT (IOC and FOK).
WITH_TIF = {"schema3_early", "schema3"}
NOW = 1_700_000_000_000_000

# Positions as the old code kept them (fractions "n/d": qty, cost, realized_pnl, fees).
OLD_POSITIONS = {
    ("binance", "BTC/USDT"): ("1/20", "301/60", "37/60", "257/5000"),
    ("coinbase", "ETH/USDT"): ("0", "0", "100", "41/10"),
    ("coinbase", "SOL/USDT"): ("-2", "-40", "-1", "81/1000"),
    ("coinbase", "BTC/USDT"): ("-2", "-110", "5", "43/200"),
}
OLD_TIF_POSITIONS = {("binance", "ETH/USDT"): ("1/2", "2001/2", "0", "2001/2000")}
# The same as version 4 keeps them, exact decimals but for the cost 301/60, rounded
# half to even to 20 significant digits, and the realized 37/60, to 100.
NEW_POSITIONS = {
    ("binance", "BTC/USDT"): ("0.05", "5.0166666666666666667", "0.61" + "6" * 97 + "7", "0.0514"),
    ("coinbase", "ETH/USDT"): ("0", "0", "100", "4.1"),  # flat
    ("coinbase", "SOL/USDT"): ("-2", "-40", "-1", "0.081"),
    ("coinbase", "BTC/USDT"): ("-2", "-110", "5", "0.215"),  # flipped through zero at 55
}
NEWER = f"{SCHEMA_VERSION + 1:04d}"  # a revision only a newer service knows
NEW_TIF_POSITIONS = {("binance", "ETH/USDT"): ("0.5", "1000.5", "0", "1.0005")}
COLUMNS = ("qty", "cost", "realized_pnl", "fees")
# Every table's rows in a stable order (its primary key).
ORDER_BY = {
    "orders": "seq",
    "fills": "seq",
    "quotes": "exchange, symbol",
    "queues": "exchange, symbol",
    "positions": "exchange, symbol",
    "balances": "asset",
    "trading_state": "id",
    "schema_version": "version",
}

# The provenance columns of a fill stored before schema 8.
NO_PROVENANCE = dict.fromkeys(
    ("source", "data_ts", "level_price", "level_size", "slippage_bps", "fee_bps", "queue_ahead")
)


# -- databases ------------------------------------------------------------------------------


def sqlite_engine(path: Path) -> Engine:
    """An engine set up as the store sets up SQLite: pysqlite's own transaction handling
    off (so DDL is transactional), foreign keys on, every transaction BEGIN IMMEDIATE."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Databases:
    """Makes empty databases, or ones loaded from a legacy fixture, of one dialect."""

    def __init__(self, dialect: str, tmp_path: Path, postgres_url: str | None) -> None:
        self.dialect = dialect
        self.tmp_path = tmp_path
        self.postgres_url = postgres_url
        self.engines: list[Engine] = []
        self.created: list[str] = []

    def new(self, fixture: str | None = None) -> Engine:
        name = f"migrations_{uuid.uuid4().hex[:12]}"
        if self.dialect == "sqlite":
            engine = sqlite_engine(self.tmp_path / f"{name}.db")
        else:
            with self._admin() as admin:
                admin.exec_driver_sql(f"CREATE DATABASE {name}")
            self.created.append(name)
            engine = create_engine(self._url(name), poolclass=NullPool)
        self.engines.append(engine)
        if fixture is not None:
            self._load(engine, (FIXTURES / f"{fixture}.{self.dialect}.sql").read_text())
        return engine

    def _url(self, database: str) -> str:
        assert self.postgres_url is not None
        url = make_url(self.postgres_url).set(drivername="postgresql+psycopg", database=database)
        return url.render_as_string(hide_password=False)

    def _admin(self) -> Connection:
        engine = create_engine(self._url("postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self.engines.append(engine)
        return engine.connect()

    @staticmethod
    def _load(engine: Engine, script: str) -> None:
        """The dump's statements as they are, straight through the driver."""
        if engine.dialect.name == "sqlite":
            # A plain connection: the dump lists tables by name, fills before the
            # orders they reference, which foreign keys on would refuse.
            with closing(sqlite3.connect(str(engine.url.database))) as plain:
                plain.executescript(script)
            return
        raw = engine.raw_connection()
        try:
            with closing(raw.cursor()) as cursor:
                cursor.execute(script)  # no parameters: one simple query of many statements
            raw.commit()
        finally:
            raw.close()

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        if self.created:
            with self._admin() as admin:
                for name in self.created:
                    admin.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            self.engines[-1].dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    made = Databases(request.param, tmp_path, url)
    yield made
    made.close()


def run_prepare(engine: Engine, initial_state: str = "ACTIVE", now: int = NOW) -> None:
    with engine.begin() as conn:
        prepare(conn, initial_state=initial_state, now=now)


def rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        if table not in inspect(conn).get_table_names():
            return []
        result = conn.execute(text(f"SELECT * FROM {table} ORDER BY {ORDER_BY[table]}"))
        return [dict(row._mapping) for row in result]


def rows_of(engine: Engine, query: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(query))]


def scalar(engine: Engine, query: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(query)).scalar_one()


def positions(engine: Engine, *columns: str) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(row["exchange"], row["symbol"]): tuple(row[c] for c in columns) for row in rows(engine, "positions")}


def predicate(where: object) -> str:
    """A partial index's predicate without casts, brackets or spaces: pg_dump writes
    `status IN (...)` in a form that PostgreSQL reads back with other casts."""
    return re.sub(r"::[a-z ]+(\[\])?|[() ]", "", str(where))


def structure(engine: Engine) -> dict[str, Any]:
    """Every table's columns (type, nullability, default), keys, indexes (with their
    predicate) and foreign keys, as the database reports them; column order aside."""
    with engine.connect() as conn:
        inspector = inspect(conn)
        where = f"{conn.dialect.name}_where"
        tables: dict[str, Any] = {}
        for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
            tables[table] = {
                "columns": {
                    column["name"]: (
                        str(column["type"].compile(dialect=conn.dialect)),
                        column["nullable"],
                        column["default"],
                    )
                    for column in inspector.get_columns(table)
                },
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "unique": sorted(
                    (str(unique["name"]), tuple(unique["column_names"]))
                    for unique in inspector.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (
                        str(index["name"]),
                        tuple(str(c) for c in index["column_names"]),
                        bool(index["unique"]),
                        predicate(index.get("dialect_options", {}).get(where)),
                    )
                    for index in inspector.get_indexes(table)
                ),
                "foreign_keys": sorted(
                    (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                    for fk in inspector.get_foreign_keys(table)
                ),
            }
        return tables


def created_by_metadata(databases: Databases) -> Engine:
    """A database made straight from app.store.schema's table objects."""
    engine = databases.new()
    with engine.begin() as conn:
        schema.metadata.create_all(conn)
    return engine


def drift(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would change to match app.store.schema (nothing, if
    the migrations and the table objects agree)."""
    with engine.connect() as conn:
        options = {
            "compare_type": True,
            "compare_server_default": True,
            # Other programs' tables are theirs: only ours are compared.
            "include_name": lambda name, kind, _parent: kind != "table" or name in schema.metadata.tables,
        }
        context = MigrationContext.configure(conn, opts=options)
        return list(compare_metadata(context, schema.metadata))


# -- a fresh database --------------------------------------------------------------------------


def test_a_fresh_database_gets_exactly_the_tables_of_the_schema(databases: Databases) -> None:
    engine = databases.new()
    run_prepare(engine, initial_state="HALTED", now=42)
    assert structure(engine) == structure(created_by_metadata(databases))
    assert drift(engine) == []
    assert scalar(engine, "SELECT version_num FROM alembic_version") == schema.HEAD
    assert scalar(engine, "SELECT version FROM schema_version") == SCHEMA_VERSION
    assert rows(engine, "trading_state") == [{"id": 1, "state": "HALTED", "reason": None, "updated_at": 42}]
    for table in ("orders", "fills", "quotes", "positions", "balances"):
        assert rows(engine, table) == []


def test_the_newest_revision_is_the_schema_version() -> None:
    with create_engine("sqlite://").connect() as conn:
        script = ScriptDirectory.from_config(migration_config(conn))
        assert script.get_heads() == [schema.HEAD]
        assert [s.revision for s in reversed(list(script.walk_revisions()))] == [
            f"{n:04d}" for n in range(1, SCHEMA_VERSION + 1)
        ]


# -- legacy databases ------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", LEGACY)
def test_a_legacy_database_upgrades_in_place_with_its_data(databases: Databases, fixture: str) -> None:
    engine = databases.new(fixture)
    assert scalar(engine, "SELECT version FROM schema_version") == LEGACY_VERSION[fixture]
    before = {table: rows(engine, table) for table in ("orders", "fills", "quotes", "balances", "trading_state")}

    run_prepare(engine)

    assert scalar(engine, "SELECT version_num FROM alembic_version") == schema.HEAD
    assert scalar(engine, "SELECT version FROM schema_version") == SCHEMA_VERSION
    # The schema is the current one, whatever path the database took.
    assert structure(engine) == structure(created_by_metadata(databases))
    assert drift(engine) == []
    # Every order is kept; older orders are GTC; no order holds a reservation yet (the
    # service reserves open orders again at start-up).
    orders = rows(engine, "orders")
    assert len(orders) == len(before["orders"]) >= 12
    for old, new in zip(before["orders"], orders, strict=True):
        assert (new["reserve_unit"], new["reserved"], new["queue_place"]) == (None, None, None)
        kept = {k: v for k, v in new.items() if k not in {"reserve_unit", "reserved", "queue_place"}}
        assert kept == {"time_in_force": "GTC", **{k: v for k, v in old.items() if k != "reserve_price"}}
    assert {o["status"] for o in orders} >= {"NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED"}
    if fixture in WITH_TIF:
        assert {o["time_in_force"] for o in orders} == {"GTC", "IOC", "FOK"}
        assert "EXPIRED" in {o["status"] for o in orders}
    assert rows(engine, "balances") == before["balances"]
    # Schema 8: a fill stored before it has no recorded provenance.
    assert rows(engine, "fills") == [{**fill, **NO_PROVENANCE} for fill in before["fills"]]
    # Schema 7: a quote stored before it describes no known time.
    # Schema 9: nor any depth beyond its top.
    assert rows(engine, "quotes") == [{**quote, "ts": None, "depth": None} for quote in before["quotes"]]
    assert len(before["fills"]) >= 8
    # Positions as exact decimals, converted from the old fractions.
    expected = NEW_POSITIONS | (NEW_TIF_POSITIONS if fixture in WITH_TIF else {})
    assert positions(engine, *COLUMNS) == expected
    # The trading state: kept where the old code had one, ACTIVE as of now otherwise.
    state = before["trading_state"] or [{"id": 1, "state": "ACTIVE", "reason": None, "updated_at": NOW}]
    assert rows(engine, "trading_state") == state
    # Every past fill is journaled, oldest first, numbered 1..n; the head is n.
    journaled = rows_of(engine, "SELECT seq, type, order_id, fill_id, status, filled_qty FROM events ORDER BY seq")
    assert [row["fill_id"] for row in journaled] == [fill["fill_id"] for fill in before["fills"]]
    assert [row["seq"] for row in journaled] == list(range(1, len(before["fills"]) + 1))
    assert scalar(engine, "SELECT seq FROM journal_head") == len(before["fills"])
    # Schema 10: the journal gets its id, once.
    assert re.fullmatch(r"[0-9a-f]{32}", scalar(engine, "SELECT journal_id FROM journal_head"))
    final = {order["order_id"]: order for order in orders}
    so_far: dict[str, Decimal] = {}
    for row, fill in zip(journaled, before["fills"], strict=True):
        so_far[row["order_id"]] = so_far.get(row["order_id"], Decimal(0)) + Decimal(fill["qty"])
        assert Decimal(row["filled_qty"]) == so_far[row["order_id"]]
        whole = final[row["order_id"]]["status"] == "FILLED" and so_far[row["order_id"]] == Decimal(
            final[row["order_id"]]["filled_qty"]
        )
        assert (row["type"], row["status"]) == (("fill", "FILLED") if whole else ("partial_fill", "PARTIALLY_FILLED"))
    assert {row["type"] for row in journaled} == {"fill", "partial_fill"}


def test_the_last_schema_3_keeps_its_balances_and_trading_state(databases: Databases) -> None:
    engine = databases.new("schema3")
    reserved = {row["idempotency_key"]: row["reserve_price"] for row in rows(engine, "orders")}
    assert reserved["eth-market-waits"] == "2001.0"  # a reserve price, dropped with its column
    run_prepare(engine, initial_state="ACTIVE")
    assert [(b["asset"], b["start"], b["total"], b["reserved"]) for b in rows(engine, "balances")] == [
        ("BTC", "5", "3.05", "0.95"),
        ("ETH", "10", "10.5", "0.0"),
        ("SOL", "100", "98.0", "2.0"),
        ("USDT", "100000", "99243.6521", "545.795250"),
    ]
    [state] = rows(engine, "trading_state")
    assert (state["state"], state["reason"]) == ("REDUCING", "migration fixture")


@pytest.mark.parametrize("fixture", ["schema2", "schema3", "schema3_from1"])
def test_the_fixtures_hold_the_positions_the_old_code_computed(databases: Databases, fixture: str) -> None:
    engine = databases.new(fixture)
    expected = OLD_POSITIONS | (OLD_TIF_POSITIONS if fixture in WITH_TIF else {})
    assert positions(engine, *COLUMNS) == expected


def test_positions_from_version_1_fills_are_what_the_old_code_computed(databases: Databases) -> None:
    """Revision 0002 rebuilds positions from fills as version 2's code did: the same
    fractions the old service wrote when it upgraded this database (schema3_from1)."""
    engine = databases.new("schema1")
    with engine.begin() as conn:
        command.stamp(migration_config(conn), "0001")
        command.upgrade(migration_config(conn), "0002")
    assert positions(engine, *COLUMNS) == OLD_POSITIONS
    assert scalar(engine, "SELECT version FROM schema_version") == 2


def test_version_5_gets_the_status_index_and_keeps_its_orders(databases: Databases) -> None:
    """Revision 0006 adds orders_by_status (status, seq) to a version 5 database with
    orders in it, and changes no row."""
    engine = databases.new("schema3")
    with engine.begin() as conn:
        command.stamp(migration_config(conn), "0003")
        command.upgrade(migration_config(conn), "0005")
    before = {table: rows(engine, table) for table in ORDER_BY}
    with engine.connect() as conn:
        assert "orders_by_status" not in {index["name"] for index in inspect(conn).get_indexes("orders")}
    run_prepare(engine)
    with engine.connect() as conn:
        indexes = {index["name"]: index["column_names"] for index in inspect(conn).get_indexes("orders")}
    assert indexes["orders_by_status"] == ["status", "seq"]
    after = {table: rows(engine, table) for table in ORDER_BY}
    # (And 0007 gives each stored quote no known time, 0008 each fill no provenance,
    # 0009 each quote no depth, 0010 the journal its id: see the legacy upgrade above.)
    quotes = [{**quote, "ts": None, "depth": None} for quote in before["quotes"]]
    fills = [{**fill, **NO_PROVENANCE} for fill in before["fills"]]
    # 0009: no order has a place in a queue, and no instrument has queues.
    orders = [{**order, "queue_place": None} for order in before["orders"]]
    assert rows(engine, "queues") == []
    version = [{"version": SCHEMA_VERSION}]
    assert after == before | {"schema_version": version, "quotes": quotes, "fills": fills, "orders": orders}
    assert len(after["orders"]) >= 12
    assert drift(engine) == []


# -- idempotence, atomicity, workers starting together ------------------------------------------


@pytest.mark.parametrize("fixture", [None, "schema1", "schema3"])
def test_a_second_prepare_changes_nothing(databases: Databases, fixture: str | None) -> None:
    engine = databases.new(fixture)
    run_prepare(engine, now=1)
    first = {table: rows(engine, table) for table in ORDER_BY} | {"structure": structure(engine)}
    first_version = scalar(engine, "SELECT version_num FROM alembic_version")
    run_prepare(engine, initial_state="HALTED", now=2)  # a restart: its state does not overwrite the stored one
    assert {table: rows(engine, table) for table in ORDER_BY} | {"structure": structure(engine)} == first
    assert scalar(engine, "SELECT version_num FROM alembic_version") == first_version


def test_a_prepare_rolled_back_leaves_the_legacy_database_as_it_was(databases: Databases) -> None:
    """The migrations run in the caller's transaction and never commit on their own."""
    engine = databases.new("schema3")
    before = {table: rows(engine, table) for table in ORDER_BY} | {"structure": structure(engine)}
    with engine.connect() as conn:
        conn.begin()
        prepare(conn, initial_state="ACTIVE", now=NOW)
        assert "alembic_version" in inspect(conn).get_table_names()
        conn.rollback()
    assert {table: rows(engine, table) for table in ORDER_BY} | {"structure": structure(engine)} == before
    run_prepare(engine)  # and it still upgrades afterwards
    assert positions(engine, *COLUMNS) == NEW_POSITIONS | NEW_TIF_POSITIONS


def test_workers_starting_together_upgrade_once(databases: Databases) -> None:
    """Each worker prepares under the schema lock (PostgreSQL: an advisory lock;
    SQLite: its write lock): one upgrades, the others then find nothing to do."""
    engine = databases.new("schema1")
    workers = 4
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait()
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(0x6F72646572730001)))
                prepare(conn, initial_state="ACTIVE", now=NOW)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert rows_of(engine, "SELECT version_num FROM alembic_version") == [{"version_num": schema.HEAD}]
    assert positions(engine, *COLUMNS) == NEW_POSITIONS
    assert len(rows(engine, "trading_state")) == 1


# -- databases the service must refuse -----------------------------------------------------------


def test_a_database_from_a_newer_service_is_refused(databases: Databases) -> None:
    engine = databases.new()
    run_prepare(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :newer"), {"newer": NEWER})
    with pytest.raises(SchemaError, match=rf"schema version {NEWER}\b.*newer"):
        run_prepare(engine)


def test_a_schema_version_out_of_step_with_the_revision_is_refused(databases: Databases) -> None:
    """The migrations keep schema_version in step with Alembic's revision; a database
    where they disagree was changed by something else."""
    engine = databases.new()
    run_prepare(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(
        SchemaError,
        match=rf"schema version {SCHEMA_VERSION + 1} \(Alembic revision {HEAD}\); this service uses {SCHEMA_VERSION}",
    ):
        run_prepare(engine)


@pytest.mark.parametrize("version", [0, 4, 77])
def test_an_unknown_legacy_schema_version_is_refused(databases: Databases, version: int) -> None:
    engine = databases.new("schema3")
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": version})
    with pytest.raises(
        SchemaError, match=rf"^the database has schema version {version}; this service uses {SCHEMA_VERSION}$"
    ):
        run_prepare(engine)
    assert "alembic_version" not in inspect(engine).get_table_names()  # nothing was changed


@pytest.mark.parametrize("table", ["orders", "quotes", "positions"])
def test_tables_named_like_ours_without_a_version_are_refused(databases: Databases, table: str) -> None:
    engine = databases.new()
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, note TEXT)"))
    with pytest.raises(SchemaError, match="no schema_version; use an empty database"):
        run_prepare(engine)
    assert sorted(inspect(engine).get_table_names()) == [table]


def test_another_programs_unrelated_tables_are_left_alone(databases: Databases) -> None:
    engine = databases.new()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE audit_log (id INTEGER PRIMARY KEY, note TEXT)"))
    run_prepare(engine)
    assert "audit_log" in inspect(engine).get_table_names()
    assert drift(engine) == []


# -- the upgraded database works with today's table objects ------------------------------------


def test_the_table_objects_write_and_read_an_upgraded_database(databases: Databases) -> None:
    engine = databases.new("schema3_from1")
    run_prepare(engine)
    old_orders = len(rows(engine, "orders"))
    with engine.begin() as conn:
        conn.execute(
            schema.orders.insert().values(
                order_id="paper-new",
                idempotency_key="after-the-upgrade",
                exchange="binance",
                symbol="BTC/USDT",
                side="BUY",
                type="LIMIT",
                time_in_force="IOC",
                reserve_unit="100.1",
                reserved="10.01",
                qty=0.1,
                limit_price=100.0,
                accepted_at=NOW,
                status="NEW",
                filled_qty="0",
                passive=False,
            )
        )
        conn.execute(
            schema.positions.update()
            .where(schema.positions.c.exchange == "binance", schema.positions.c.symbol == "BTC/USDT")
            .values(qty="0.15", cost="15.0775")
        )
        seq = conn.execute(select(schema.orders.c.seq).where(schema.orders.c.order_id == "paper-new")).scalar_one()
        # The sequence (PostgreSQL) or rowid (SQLite) carries on after the old orders.
        assert seq == old_orders + 1
        open_orders = conn.execute(
            select(func.count()).select_from(schema.orders).where(schema.orders.c.status.in_(schema.OPEN))
        ).scalar_one()
        assert open_orders == 4  # the old NEW, PARTIALLY_FILLED and waiting MARKET, and this one
