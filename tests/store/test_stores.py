"""STORAGE_URL picks the store; the SQL stores keep every promise the in-memory one makes,
under racing threads too, and a database failure is a 503, never a 500."""

import asyncio
import socket
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.engine import Policy
from app.core.errors import MarketDataRefused
from app.core.journal import EntryFilter
from app.core.vocabulary import OrderStatus, Side
from app.main import create_app
from app.service.settings import Settings, load_settings
from app.store.base import Admission, OrderFilter, OrderStore
from app.store.errors import StoreUnavailable
from app.store.group_commit import Waiting
from app.store.memory import InMemoryStore
from app.store.open import load_store, open_store
from app.store.sql import SCHEMA_VERSION, Arrival, QuoteArrival, SqlStore, _instrument_key
from app.store.sql_statements import Statements
from tests.conftest import PLAIN, URL, empty_postgres_store, intent, make_settings, market_order, race_one_key
from tests.store.test_contract import quote

SQL_STORES = ["sqlite", "postgresql"]


@contextmanager
def socket_that_refuses() -> Iterator[int]:
    """A loopback port with nothing listening on it (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture(params=SQL_STORES)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}"
    url: str = request.getfixturevalue("postgres_url")
    empty_postgres_store(url).close()
    return url


# -- choosing the store ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("", "memory://"),
        ("memory://", "memory://"),
        ("sqlite:////var/lib/execution/orders.db", "sqlite:////var/lib/execution/orders.db"),
        ("sqlite:///orders.db", "sqlite:///orders.db"),
        ("postgresql://user:secret@db:5432/orders", "postgresql://user:secret@db:5432/orders"),
        ("postgresql+psycopg://user@db/orders", "postgresql+psycopg://user@db/orders"),
    ],
)
def test_storage_url_accepts_the_three_stores(monkeypatch: pytest.MonkeyPatch, value: str, stored: str) -> None:
    monkeypatch.setenv("STORAGE_URL", value)
    assert Settings().storage_url == stored


def test_storage_url_defaults_to_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_URL", raising=False)
    assert Settings().storage_url == "memory://"
    assert isinstance(open_store(Settings().storage_url), InMemoryStore)


@pytest.mark.parametrize(
    "value",
    ["redis://localhost", "mysql://u:topsecret@h/db", "sqlite://", "sqlite:///", "sqlite:///:memory:", "orders.db"],
)
def test_any_other_storage_url_stops_start_up_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    monkeypatch.setenv("STORAGE_URL", value)
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("execution: invalid configuration: STORAGE_URL: ")
    assert "memory://, sqlite:///" in err
    assert "topsecret" not in err


def test_an_unreachable_database_stops_start_up_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket_that_refuses() as port, pytest.raises(SystemExit) as stopped:
        load_store(f"postgresql://execution:hunter2@127.0.0.1:{port}/orders")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("execution: cannot open the postgresql store: ")
    assert "hunter2" not in err


def test_a_database_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    SqlStore(url).close()
    with sqlite3.connect(tmp_path / "orders.db") as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(StoreUnavailable, match=f"schema version {SCHEMA_VERSION + 1}"):
        SqlStore(url)


def test_a_value_the_database_refuses_fails_only_its_own_intent(postgres_url: str) -> None:
    """A batch whose insert PostgreSQL refuses (a key longer than its column, which the
    API's validation never lets through) is admitted again intent by intent."""
    store = empty_postgres_store(postgres_url)
    loop = asyncio.new_event_loop()
    batch = [
        Waiting(Arrival(market_order(key), PLAIN, 0, None), loop, loop.create_future())
        for key in ("good-1", "k" * 300, "good-2")
    ]
    store._commit_batch(batch)  # what the writer thread does with a batch
    loop.close()
    assert [entry._error is None for entry in batch] == [True, False, True]
    assert isinstance(batch[1]._error, StoreUnavailable)
    assert {store.get_by_key("good-1") is not None, store.get_by_key("good-2") is not None} == {True}
    assert store.count() == 2
    store.close()


def test_intents_and_quotes_sharing_a_transaction_apply_in_arrival_order(storage_url: str) -> None:
    """The writer commits intents and quotes that arrived together in one transaction,
    as if each had been its own: a quote fills the intents before it, an intent after it
    fills against it, a value the database refuses fails only its own intent, and the
    journal numbers every event in arrival order."""
    store = SqlStore(storage_url)
    loop = asyncio.new_event_loop()
    works = [
        Arrival(market_order("before"), PLAIN, 1, None),
        QuoteArrival(("binance", "BTC/USDT"), quote("99", "100", ask_size="2"), PLAIN, 2, None),
        Arrival(market_order("after"), PLAIN, 3, None),
        QuoteArrival(("binance", "BTC/USDT"), quote("101", "102"), PLAIN, 4, None),
    ]
    if store.name == "postgresql":
        works.insert(2, Arrival(market_order("k" * 300), PLAIN, 2, None))  # over the column's length
    batch = [Waiting(work, loop, loop.create_future()) for work in works]
    store._commit_batch(batch)  # what the writer thread does with a batch
    loop.close()
    refused = [entry._error for entry in batch if entry._error is not None]
    assert len(refused) == (1 if store.name == "postgresql" else 0)
    before, after = store.get_by_key("before"), store.get_by_key("after")
    assert before is not None
    assert after is not None
    assert [(fill.qty, fill.price) for fill in before.fills] == [(Decimal(1), Decimal(100))]
    assert [(fill.qty, fill.price) for fill in after.fills] == [(Decimal(1), Decimal(100))]
    page = store.read_journal(0, 100, EntryFilter())
    assert [(entry.type.value, entry.order.idempotency_key if entry.order else None) for entry in page.entries] == [
        ("new", "before"),
        ("fill", "before"),
        ("new", "after"),
        ("fill", "after"),
    ]
    assert [entry.seq for entry in page.entries] == [1, 2, 3, 4]
    store.close()


def test_sqlite_batches_wait_in_the_writer_thread_while_another_process_writes(tmp_path: Path) -> None:
    """SQLite's batches run on the event loop, which must never wait for a lock: while
    another process holds the write lock, a batch goes to the writer thread and waits
    there (SQLite's busy timeout), the loop serves reads meanwhile, and the intent is
    stored once the lock is free."""
    path = tmp_path / "orders.db"
    store = SqlStore(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write transaction

    async def scenario() -> bool:
        admitting = asyncio.ensure_future(store.admit(market_order("waits"), PLAIN, 0))
        await asyncio.sleep(0.3)
        assert not admitting.done()
        assert store.get_by_key("waits") is None  # the loop is free: a read answers at once
        other.execute("COMMIT")
        admission = await asyncio.wait_for(admitting, 10)
        return admission.created

    try:
        assert asyncio.run(scenario())
        assert store.get_by_key("waits") is not None
    finally:
        other.close()
        store.close()


def test_sqlite_batches_on_the_event_loop_commit_in_arrival_order(tmp_path: Path) -> None:
    """Intents and quotes sent at once from the event loop share its batches: every one
    is answered after its commit, the quote fills the intent before it, the journal
    numbers them in arrival order, and a duplicate key answers with the first order."""
    store = SqlStore(f"sqlite:///{tmp_path / 'orders.db'}")

    async def scenario() -> list[object]:
        return await asyncio.gather(
            store.admit(market_order("first"), PLAIN, 1),
            store.add_quote(("binance", "BTC/USDT"), quote("99", "100", ask_size="5"), PLAIN, 2),
            store.admit(market_order("second"), PLAIN, 3),
            store.admit(market_order("first"), PLAIN, 4),
        )

    try:
        first, _, second, again = asyncio.run(scenario())
        assert isinstance(first, Admission)
        assert isinstance(second, Admission)
        assert isinstance(again, Admission)
        assert (first.created, second.created, again.created) == (True, True, False)
        assert again.order.order_id == first.order.order_id
        page = store.read_journal(0, 100, EntryFilter())
        assert [(entry.type.value, entry.order.idempotency_key if entry.order else None) for entry in page.entries] == [
            ("new", "first"),
            ("fill", "first"),
            ("new", "second"),
            ("fill", "second"),
        ]
    finally:
        store.close()


def test_postgresql_calls_from_a_loop_it_serves_are_awaited_there_and_its_connections_closed_after(
    postgres_url: str,
) -> None:
    """While the service runs on a loop (`serve`), PostgreSQL calls from it are made on
    that loop through asynchronous connections, not in worker threads; they are closed
    when it stops. A loop it does not serve gets threads, as before."""
    store = empty_postgres_store(postgres_url)

    def connections() -> int:
        with store.engine.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                ).scalar_one()
            )

    async def scenario() -> tuple[threading.Thread, threading.Thread, bool, int, int]:
        outside = await store.wait_for(threading.current_thread)
        before = connections()
        async with store.serve():
            inside = await store.wait_for(threading.current_thread)
            admission = await store.admit(market_order("served"), PLAIN, 0)
            during = connections()
        return outside, inside, admission.created, during - before, connections() - before

    try:
        outside, inside, created, opened, left = asyncio.run(scenario())
        assert outside is not threading.main_thread()
        assert inside is threading.main_thread()
        assert created
        assert store.get_by_key("served") is not None
        assert opened >= 1
        assert left == 0
    finally:
        store.close()


def test_tables_without_a_schema_version_are_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "orders.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, what TEXT)")  # someone else's
    db.close()
    with pytest.raises(StoreUnavailable, match="no schema_version"):
        SqlStore(f"sqlite:///{tmp_path / 'orders.db'}")


def test_a_closed_store_refuses_intents_at_once(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'orders.db'}")
    with TestClient(create_app(make_settings(), store)) as client:
        store.close()
        response = client.post(URL, json=intent())
    assert response.status_code == 503
    assert "store is closed" in response.json()["detail"]


def test_postgresql_sessions_time_out_locks_and_statements(postgres_url: str) -> None:
    store = SqlStore(postgres_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "10s"
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "30s"
    store.close()


def test_a_lock_held_elsewhere_is_a_503_not_a_stall(postgres_url: str) -> None:
    """Another worker's transaction holds the instrument's lock: the intent waits at
    most lock_timeout (shortened here through the URL), then is a 503 to retry."""
    store = empty_postgres_store(f"{postgres_url}?options=-c%20lock_timeout%3D200")
    holder = SqlStore(postgres_url)
    with TestClient(create_app(make_settings(), store)) as client, holder.engine.begin() as conn:
        conn.execute(select(func.pg_advisory_xact_lock(_instrument_key(("binance", "BTC/USDT")))))
        response = client.post(URL, json=intent(idempotency_key="blocked"))
        assert response.status_code == 503
        assert "lock timeout" in response.json()["detail"]
        # Another instrument is not held up.
        assert client.post(URL, json=intent(idempotency_key="free", symbol="ETH/USDT")).status_code == 201
    with TestClient(create_app(make_settings(), store)) as client:
        assert client.post(URL, json=intent(idempotency_key="blocked")).status_code == 201  # the retry
    holder.close()
    store.close()


def test_the_schema_is_created_once_and_its_version_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    for _ in range(2):
        SqlStore(url).close()
    with sqlite3.connect(tmp_path / "orders.db") as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_the_app_opens_the_store_its_settings_name_and_closes_it(sql_url: str) -> None:
    app = create_app(make_settings(storage_url=sql_url))
    with TestClient(app) as client:
        name = "postgresql" if sql_url.startswith("postgresql") else "sqlite"
        assert client.get("/healthz").json()["store"] == name
        assert client.get("/capabilities").json()["store"] == name
        assert client.post(URL, json=intent()).status_code == 201
    # Closed at shutdown: its writer thread is gone.
    assert not [thread for thread in threading.enumerate() if thread.name == f"{name}-writer"]


# -- races -------------------------------------------------------------------------------


def test_many_threads_racing_one_key_create_exactly_one_order(store: OrderStore) -> None:
    # Not entered: each request runs on its own event loop in its own thread.
    client = TestClient(create_app(make_settings(log_level="WARNING"), store))
    results = race_one_key(client, 24)
    assert sorted(status for status, _ in results) == [201] + [409] * 23
    assert len({order_id for _, order_id in results}) == 1
    assert store.count() == 1


def test_two_workers_racing_one_key_on_postgresql_create_exactly_one_order(postgres_url: str) -> None:
    """Two stores on one database, each serving its own event loop as two uvicorn
    workers do (their batches pipelined on asynchronous connections): one key posted
    through both at once makes one order; every other answer is the 409 naming it."""
    stores = [empty_postgres_store(postgres_url), SqlStore(postgres_url)]
    clients = [TestClient(create_app(make_settings(log_level="WARNING"), store)) for store in stores]
    for client in clients:
        client.__enter__()
    barrier = threading.Barrier(16)

    def post(n: int) -> tuple[int, str]:
        barrier.wait()
        response = clients[n % 2].post(URL, json=intent(idempotency_key="same", qty=n + 1))
        return response.status_code, response.json()["order_id"]

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(post, range(16)))
    finally:
        for client in clients:
            client.__exit__(None, None, None)
        for store in stores:
            store.close()
    assert sorted(status for status, _ in results) == [201] + [409] * 15
    assert len({order_id for _, order_id in results}) == 1
    check = SqlStore(postgres_url)
    try:
        assert check.count() == 1
    finally:
        check.close()


def test_racing_intents_and_quotes_fill_each_order_exactly_once(store: OrderStore) -> None:
    """Orders arrive while quotes that cross them arrive: each order fills completely,
    once, whichever came first. No quote misses an order committed meanwhile, and no
    order misses a quote: after the last request, nothing is left unfilled."""
    client = TestClient(create_app(make_settings(log_level="WARNING"), store))
    quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99.0, "ask": 100.0}

    def post(n: int) -> str:
        if n % 4 == 0:
            response = client.post("/execution/market-data/quotes", json=quote)
            assert response.status_code == 200
            return ""
        response = client.post(URL, json=intent(idempotency_key=f"k-{n}", qty=0.5))
        assert response.status_code == 201
        order_id: str = response.json()["order_id"]
        return order_id

    with ThreadPoolExecutor(max_workers=12) as pool:
        order_ids = [order_id for order_id in pool.map(post, range(120)) if order_id]
    for order_id in order_ids:
        fills = client.get(f"/execution/orders/{order_id}/fills").json()["items"]
        assert [(fill["qty"], fill["price"]) for fill in fills] == [(0.5, 100.0)]
        assert client.get(f"/execution/orders/{order_id}").json()["status"] == "FILLED"
    position = client.get("/execution/positions").json()["items"][0]
    assert position["qty"] == 0.5 * len(order_ids)


def test_a_cancel_racing_a_quote_either_wins_whole(store: OrderStore) -> None:
    """An order is canceled or filled, never both, however the two race."""
    client = TestClient(create_app(make_settings(log_level="WARNING"), store))
    order_ids = [client.post(URL, json=intent(idempotency_key=f"c-{n}")).json()["order_id"] for n in range(40)]
    quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99.0, "ask": 100.0}

    def act(n: int) -> None:
        if n % 10 == 0:
            client.post("/execution/market-data/quotes", json=quote)
        else:
            client.post(f"/execution/orders/{order_ids[n % 40]}/cancel")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(act, range(80)))
    for order_id in order_ids:
        order = client.get(f"/execution/orders/{order_id}").json()
        fills = client.get(f"/execution/orders/{order_id}/fills").json()["items"]
        if order["status"] == "CANCELED":
            assert fills == []
        else:
            assert order["status"] == "FILLED"
            assert [fill["qty"] for fill in fills] == [0.01]


# -- failures ----------------------------------------------------------------------------


def test_a_database_failure_is_a_503_and_the_service_goes_on(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'orders.db'}")
    client = TestClient(create_app(make_settings(), store))
    assert client.post(URL, json=intent(idempotency_key="before")).status_code == 201
    with sqlite3.connect(tmp_path / "orders.db") as db:
        db.execute("ALTER TABLE orders RENAME TO orders_away")
    db.close()
    quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 1, "ask": 2}
    for request in (
        lambda: client.post(URL, json=intent(idempotency_key="during")),
        lambda: client.get("/execution/orders"),
        lambda: client.post("/execution/market-data/quotes", json=quote),
    ):
        response = request()
        assert response.status_code == 503
        assert "sqlite store is unavailable" in response.json()["detail"]
    with sqlite3.connect(tmp_path / "orders.db") as db:
        db.execute("ALTER TABLE orders_away RENAME TO orders")
    db.close()
    assert client.post(URL, json=intent(idempotency_key="after")).status_code == 201
    assert {order["idempotency_key"] for order in client.get("/execution/orders").json()["items"]} == {
        "before",
        "after",
    }
    store.close()


@pytest.mark.parametrize(
    "statuses", [{OrderStatus.EXPIRED}, {OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED}], ids=["one", "several"]
)
def test_a_listing_by_status_reads_the_status_index(sql_url: str, statuses: set[OrderStatus]) -> None:
    """The plan of a status filter's page (with other filters and a cursor) reads the
    orders_by_status index, one range per status, instead of every newer order."""
    store = SqlStore(sql_url)
    try:
        keep = OrderFilter(statuses=frozenset(statuses), symbol="BTC/USDT", side=Side.BUY)
        with store.engine.connect() as conn:
            statement, params = Statements(conn.dialect).listing(keep, 1_000, 101)
            if conn.dialect.name == "postgresql":
                # The case the index is for, in the planner's statistics: many orders, the
                # statuses asked for rare. (With the few rows earlier tests leave, any plan
                # is cheap, and a primary-key scan with a filter was picked in CI.) Then
                # ordered index scans only, as on a big table. Rolled back at the end.
                conn.exec_driver_sql(
                    "INSERT INTO orders (order_id, idempotency_key, exchange, symbol, side, type, qty, "
                    "accepted_at, status, filled_qty, passive) "
                    "SELECT 'plan-' || n, 'plan-' || n, 'binance', 'BTC/USDT', 'BUY', 'MARKET', 1, n, "
                    "'FILLED', '1', false FROM generate_series(1, 20000) AS n"
                )
                conn.exec_driver_sql("ANALYZE orders")
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                    conn.exec_driver_sql(f"SET {setting} = off")
                explain = "EXPLAIN "
            else:
                explain = "EXPLAIN QUERY PLAN "
            # The statement as the store sends it, with its parameters.
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(explain + statement.sql, statement.bind(params))
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
        assert plan.count("orders_by_status") == len(statuses), plan
    finally:
        store.close()


def test_the_latest_market_data_time_outlives_a_restart(sql_url: str) -> None:
    """Reopened, a SQL store still refuses data older than what it took before."""
    store = SqlStore(sql_url)
    asyncio.run(store.add_quote(("binance", "BTC/USDT"), quote("99", "100"), PLAIN, 10, ts=9))
    store.close()
    store = SqlStore(sql_url)
    try:
        assert store.market_data_times() == {("binance", "BTC/USDT"): 9}
        with pytest.raises(MarketDataRefused):
            asyncio.run(store.add_quote(("binance", "BTC/USDT"), quote("99", "100"), PLAIN, 11, ts=8))
    finally:
        store.close()


def test_a_quote_kept_before_times_were_recorded_has_no_time(sql_url: str) -> None:
    """A quote from before schema 7 (its ts null): fills against it name no time, and a
    maximum age finds it stale."""
    store = SqlStore(sql_url)
    try:
        instrument = ("binance", "BTC/USDT")
        asyncio.run(store.add_quote(instrument, quote("99", "100"), PLAIN, 10, ts=9))
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE quotes SET ts = NULL")
        assert store.market_data_times() == {instrument: None}
        waiting = asyncio.run(store.admit(market_order("waits"), Policy(max_quote_age=1_000_000), 11, None))
        assert (waiting.order.status, waiting.events[1:]) == (OrderStatus.NEW, [])
        filled = asyncio.run(store.admit(market_order("fills"), PLAIN, 12, None))
        provenance = filled.order.fills[0].provenance
        assert provenance is not None
        assert (provenance.data_ts, provenance.level_price) == (None, Decimal(100))
    finally:
        store.close()
