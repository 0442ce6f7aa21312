"""The SQL store: SQLite (one machine) or PostgreSQL (many workers and replicas), through
SQLAlchemy Core. Every operation is one transaction that loads what the trading core
needs, calls it, and writes what its events describe, so what a 201 acknowledged is
on disk, and workers sharing the database never double-fill or double-create:

- matching an instrument (an arriving order, or a quote) holds that instrument's lock
  for the whole transaction: a transaction-scoped advisory lock on PostgreSQL, the
  database's single write lock on SQLite (every write begins IMMEDIATE);
- the orders a quote fills, and an order being canceled, are read FOR UPDATE, so a
  cancel and a fill of the same order are never both applied;
- the idempotency key is a unique constraint: an intent whose key another worker
  committed meanwhile makes the insert find it taken, and the whole batch is admitted
  again (it then answers with that order).

Where the work runs: SQLite's statements on the event loop, its commits in a thread;
PostgreSQL's round trips awaited on the event loop the service runs on (`serve`); what
may wait elsewhere in a thread (`quick`, `wait_for`).
"""

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

from anyio import to_thread
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    bindparam,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

from app.core import engine as core
from app.core.balances import Account, Holding, Reservation, assets_of, reserved_asset
from app.core.controls import Exposure, TradingState
from app.core.engine import ExchangeReport, InstrumentState, Policy
from app.core.errors import IntentRefused, MarketDataRefused
from app.core.events import Event, OrderCanceled, OrderExpired, OrderFilled, OrderRejected
from app.core.exchange_funds import ExchangeFunds, FundsReading
from app.core.ids import number_of, parse_order_id
from app.core.journal import EntryFilter
from app.core.matching import Reach
from app.core.order import Order, StoredFill
from app.core.positions import Position
from app.core.queue import QueuePlace, Queues
from app.core.values import EXACT, Instrument, Quote, Trade, exact
from app.core.vocabulary import CancelReason, FillSource, LiveState, Side, TradingStateName
from app.ops.clock import now_micros
from app.store import sql_journal as journal
from app.store import sql_live
from app.store.base import Admission, OrderFilter, PositionView, StateChange
from app.store.errors import StoreFull, StoreUnavailable
from app.store.group_commit import GroupCommit, LoopGroupCommit, Waiting
from app.store.ids import new_number
from app.store.journal import JournalPage
from app.store.prepared import Count, Pending, Record, pipelined
from app.store.schema import (
    OPEN,
    SCHEMA_VERSION,
    SchemaError,
    balances,
    events,
    feed_leases,
    fills,
    journal_head,
    orders,
    prepare,
    quotes,
    trading_state,
)
from app.store.sql_live import Expected, LiveOrder, SharedStatus
from app.store.sql_reachable import Reachable, widest
from app.store.sql_rows import (
    book_of_row,
    depth_text,
    fill_of,
    fill_row,
    order_of,
    orders_and_fills,
    position_of,
    queues_of,
    queues_text,
    quote_of,
    text_of,
    with_fills,
)
from app.store.sql_statements import ARRIVING, Statements

__all__ = ["SCHEMA_VERSION", "Arrival", "SqlStore"]

T = TypeVar("T")

# Threads the service may run store calls in at once; the pool never makes one wait
# for a connection it could have had.
POOL_SIZE = 16
# Intents admitted in one transaction at most (16 values each: well within either
# database's limit on parameters in one statement).
MAX_BATCH = 256
# Times a batch is admitted again when another worker took one of its keys meanwhile.
KEY_RACE_RETRIES = 5
# Seconds a PostgreSQL connect may take.
CONNECT_TIMEOUT = 10
# PostgreSQL advisory lock keys: creating the schema, admitting under MAX_ORDERS.
SCHEMA_LOCK = 0x6F72646572730001
CAPACITY_LOCK = 0x6F72646572730002
# `arrived_by` when every order has reached the venue (no latency): after any acceptance.
ALL_ARRIVED = 2**62
# PostgreSQL session limits (milliseconds): how long a lock may be waited for, and a
# statement may run, before the request fails with a 503.
SESSION_LIMITS = "-c lock_timeout=10000 -c statement_timeout=30000"

# SQLite reads of a few rows through an index (see `SqlStore.quick`).
_QUICK_READS = frozenset(
    {"get", "get_by_key", "order_fills", "positions", "balances", "trading_state", "journal_head", "market_data_times"}
)
# Items of one batch on the event loop at most: its statements hold the loop meanwhile.
LOOP_BATCH = 64

_open = orders.c.status.in_(OPEN)
_STATE_ROW = trading_state.c.id == 1
_UPDATE_ORDER = update(orders).where(orders.c.order_id == bindparam("b_order_id"))
_UPDATE_HOLDING = update(balances).where(balances.c.asset == bindparam("b_asset"))


def _reservation(row: Row[Any]) -> Reservation | None:
    if row.reserve_unit is None:
        return None
    asset = reserved_asset(Side(row.side), row.symbol)
    return Reservation(asset, Decimal(row.reserve_unit), Decimal(row.reserved))


def _instrument_key(instrument: Instrument) -> int:
    """A stable signed 64-bit number per instrument, for PostgreSQL's advisory locks."""
    digest = hashlib.blake2b("\0".join(instrument).encode(), digest_size=8).digest()
    return int.from_bytes(digest, signed=True)


def _reason(error: SQLAlchemyError) -> str:
    # The driver's own first line: no SQL, no parameters, no password.
    original = error.orig if isinstance(error, DBAPIError) else error
    return str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__


def _pristine(order: Order) -> Order:
    """The order as it arrived: a batch admitted again starts from scratch."""
    return Order(number=order.number, idempotency_key=order.idempotency_key, kind=order.kind, terms=order.terms)


class ValueRefused(StoreUnavailable):
    """The database refused a value of an order being inserted (too long for its column,
    say): the rest of its batch is not at fault."""


class _LoopEngines(NamedTuple):
    """PostgreSQL's asynchronous connections for one event loop, as engines the store's
    code uses from a greenlet on that loop: for writes, for reads of several statements
    (one snapshot), and for reads of one statement (no transaction)."""

    writer: Engine
    reader: Engine
    single: Engine


class _KeyRace(Exception):
    """Another worker committed one of the batch's keys between our look-up and our
    insert: the batch's transaction is rolled back and it is admitted again."""


@dataclass
class Arrival:
    """An order waiting to be admitted, and under what."""

    order: Order
    policy: Policy
    now: int
    cap: int | None


@dataclass
class QuoteArrival:
    """A quote waiting to be applied to its instrument, and under what."""

    instrument: Instrument
    quote: Quote
    policy: Policy
    now: int
    ts: int | None  # the time the quote describes (None: it arrives now)
    source: FillSource = FillSource.QUOTE  # what it came as: a quote or a book


@dataclass
class TradeArrival:
    """A print on the tape waiting to be applied to its instrument, and under what."""

    instrument: Instrument
    trade: Trade
    policy: Policy
    now: int
    ts: int | None  # the time of the print (None: it arrives now)


@dataclass
class ReportArrival:
    """What a live exchange reported of one of its orders, waiting to be applied."""

    instrument: Instrument
    live: LiveOrder
    report: ExchangeReport
    now: int
    exchange_order_id: str | None  # the exchange's id of the order, if it gave one
    expect: Expected | None = None  # applied only if the outbox row is still so


# What the writer takes (intents, market data and exchanges' reports, in arrival order)
# and what it answers.
Write = Arrival | QuoteArrival | TradeArrival | ReportArrival
Written = Admission | list[Event]
# An item and its answer, given once its batch has committed.
Answer = tuple[Waiting[Write, Written], Written | Exception]


def _answer(answers: list[Answer]) -> None:
    for entry, answer in answers:
        if isinstance(answer, Exception):
            entry.fail(answer)
        else:
            entry.succeed(answer)


class _Batch:
    """What one writer transaction works with: each instrument's state, read once and
    kept as the core leaves it (its quote and position are written once, at the end),
    the orders accepted and not yet inserted, and the events not yet recorded."""

    def __init__(self, store: "SqlStore", conn: Connection) -> None:
        self.store = store
        self.conn = conn
        self.account: Account | None = None  # the current run's
        self.instruments: dict[Instrument, InstrumentState] = {}
        self.resting: dict[Instrument, list[Order]] = {}  # accepted, still open, not yet inserted
        # Not yet inserted, by key: the order, whether it is passive, its place in its queue.
        self.accepted: dict[str, tuple[Order, bool, QueuePlace | str | None]] = {}
        self.admitted: dict[str, Order] = {}  # every order this transaction accepted, by key
        self.events: list[Event] = []  # of the accepted orders not yet inserted
        # Accepted for live exchanges (with their claims), their outbox rows not yet inserted.
        self.live: list[tuple[Order, Reservation | None]] = []
        # The live exchanges' accounts (when balances apply), locked and read once for the
        # batch; each claim admitted adds to what is on its way.
        self.funds: dict[str, ExchangeFunds] = {}
        self.quoted: set[Instrument] = set()  # whose latest quote changed
        self.traded: set[Instrument] = set()  # whose position moved
        # Inserts of orders whose counts come back at the end (a pipeline): inserted, sent.
        self.inserted: list[tuple[Count, int]] = []
        # Each instrument's latest quote, position and queues, read (`read_instruments`),
        # and the queues' row as read (written again only if they changed).
        self.sent: dict[Instrument, tuple[Pending, Pending, Pending]] = {}
        self.queue_rows: dict[Instrument, Record | None] = {}
        # The quotes of each instrument in the batch, and the orders they may reach (read
        # at the first of them).
        self.quotes: dict[Instrument, list[Quote]] = {}
        self.reachables: dict[Instrument, Reachable] = {}

    def read_instruments(self, keys: Iterable[Instrument]) -> None:
        """Send the reads of the instruments' latest quotes and positions together (one
        round trip in a pipeline; elsewhere each runs when first needed). Both rows are
        written only at the batch's end (`_keep_instruments`): a read sent early reads
        what the batch would read later."""
        statements = self.store._sql
        for exchange, symbol in keys:
            where = {"exchange": exchange, "symbol": symbol}
            self.sent[(exchange, symbol)] = (
                statements.latest_quote.send(self.conn, where),
                statements.position.send(self.conn, where),
                statements.queues.send(self.conn, where),
            )

    def reachable(self, key: Instrument) -> Reachable:
        """The open orders of `key` that the batch's quotes may reach (the caller holds
        its lock), read at the first quote of the batch that asks."""
        found = self.reachables.get(key)
        if found is None:
            reach = widest(self.quotes[key])
            where = {"exchange": key[0], "symbol": key[1], "r_ask": reach.ask, "r_bid": reach.bid}
            found = self.reachables[key] = Reachable(self.store._sql.reached.rows(self.conn, where))
        return found

    def instrument(self, key: Instrument) -> InstrumentState:
        state = self.instruments.get(key)
        if state is None:
            if key not in self.sent:
                self.read_instruments([key])
            quote, position, queues = self.sent[key]
            row = quote.one_or_none()
            state = self.instruments[key] = InstrumentState(
                key,
                book_of_row(row),
                lambda: position_of(position.one_or_none()),
                lambda held: self._exposure(key, held),
                None if row is None else row.ts,
                queues=lambda: self._queues(key, queues),
            )
        return state

    def _queues(self, key: Instrument, sent: Pending) -> tuple[Queues, int | None]:
        row = self.queue_rows[key] = sent.one_or_none()
        return queues_of(row), None if row is None else row.trade_ts

    def _exposure(self, key: Instrument, position: Position) -> Exposure:
        """The position as the core has it now, and the open orders: those in the table
        (committed, the caller holding the instrument's lock, or inserted by this
        transaction) and those accepted and not inserted yet."""
        exchange, symbol = key
        rows = self.store._sql.open_sizes.rows(self.conn, {"exchange": exchange, "symbol": symbol})
        committed = [(Side(side), EXACT.subtract(exact(qty), Decimal(filled))) for side, qty, filled in rows]
        admitted = [(order.side, order.remaining) for order in self.resting.get(key, ())]
        return Exposure.of(position.qty, [*committed, *admitted])


def _state_of(row: Record) -> TradingState:
    return TradingState(TradingStateName(row.state), row.reason, row.updated_at)


def _instrument_of(work: Write) -> Instrument:
    return (work.order.exchange, work.order.symbol) if isinstance(work, Arrival) else work.instrument


def _runs(batch: list[Waiting[Write, Written]]) -> Iterator[list[Waiting[Write, Written]]]:
    """The batch cut into runs of consecutive intents and consecutive market data."""
    run: list[Waiting[Write, Written]] = []
    for entry in batch:
        if run and isinstance(run[-1].item, Arrival) != isinstance(entry.item, Arrival):
            yield run
            run = []
        run.append(entry)
    if run:
        yield run


class SqlStore:
    """Orders, fills, latest quotes, positions, balances and the trading state in SQLite
    or PostgreSQL."""

    blocking = True

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.name = "postgresql" if parsed.get_backend_name() == "postgresql" else "sqlite"
        # SQLite takes one writer at a time: threads of this process queue on this lock
        # rather than polling SQLite's busy handler; other processes still wait on that.
        self._sqlite_lock = threading.Lock()
        self._write_lock: AbstractContextManager[Any] = nullcontext()
        if self.name == "postgresql":
            self._insert: Any = postgresql.insert
            # A server that does not answer fails a connect in bounded time (503, or a
            # start-up error) rather than hanging a request; the URL may set its own.
            if "connect_timeout" not in parsed.query:
                parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
            # A lock another worker holds too long, or a statement that hangs, fails the
            # request (503, retry with the same key) rather than stalling every intent
            # behind it in the writer thread.
            if "options" not in parsed.query:
                parsed = parsed.update_query_dict({"options": SESSION_LIMITS})
            self.engine = create_engine(
                parsed.set(drivername="postgresql+psycopg"), pool_size=POOL_SIZE, max_overflow=0, pool_timeout=60
            )
        else:
            self._insert = sqlite.insert
            self._write_lock = self._sqlite_lock
            self.engine = _sqlite_engine(parsed.database or "")
            # For batches on the event loop: a write lock another process holds is not
            # waited for there (no busy timeout); such a batch goes to the writer thread.
            self._loop_writer: Engine = _sqlite_engine(parsed.database or "", busy_seconds=0).execution_options(
                begin_immediate=True
            )
        self._writer = self.engine.execution_options(begin_immediate=True)
        # A read is one snapshot: an order and its fills read by two statements must not
        # straddle a fill another worker commits (SQLite's read transactions already are).
        self._reader = (
            self.engine.execution_options(isolation_level="REPEATABLE READ")
            if self.name == "postgresql"
            else self.engine
        )
        self._single = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # PostgreSQL from the event loops the service runs on (`serve`): the same code,
        # its connections the driver's asynchronous ones for that loop.
        self._loops: dict[asyncio.AbstractEventLoop, _LoopEngines] = {}
        self._sql = Statements(self.engine.dialect)
        self._closed = False
        self._account_on = False  # set by open_account (PAPER_BALANCES)
        try:
            with self._write_lock, self._writer.begin() as conn:
                # Workers starting together each try this: one at a time.
                if self.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
                prepare(conn, TradingStateName.ACTIVE.value, now_micros())
                self.journal_id: str = conn.execute(select(journal_head.c.journal_id)).scalar_one()
        except SchemaError as error:
            self.engine.dispose()
            raise StoreUnavailable(f"cannot open the {self.name} store: {error}") from None
        except SQLAlchemyError as error:
            self.engine.dispose()
            raise StoreUnavailable(f"cannot open the {self.name} store: {_reason(error)}") from None
        # Intents and quotes that arrive while a transaction commits share the next one.
        self._writes: GroupCommit[Write, Written] = GroupCommit(
            self._commit_batch, MAX_BATCH, name=f"{self.name}-writer"
        )
        # Batches are formed on the event loop: SQLite's statements run there and only its
        # commits in a thread (see `_commit_on_loop`); PostgreSQL's whole transaction
        # runs there, awaiting each round trip.
        self._loop_writes = LoopGroupCommit(
            self._commit_on_loop if self.name == "sqlite" else self._commit_awaiting, LOOP_BATCH
        )

    # -- transactions ---------------------------------------------------------------

    def _writing(self) -> AbstractContextManager[Connection]:
        """A write transaction: SQLite's BEGIN IMMEDIATE, behind this process's writers."""
        return self._transaction(self._loop().writer if in_greenlet() else self._writer, self._write_lock)

    def _reading(self) -> AbstractContextManager[Connection]:
        """A read of several statements: one snapshot (PostgreSQL: REPEATABLE READ)."""
        return self._transaction(self._loop().reader if in_greenlet() else self._reader, nullcontext())

    @contextmanager
    def _reading_once(self) -> Iterator[Connection]:
        """A read of one statement, which is its own snapshot. PostgreSQL: outside any
        transaction (autocommit), one round trip where BEGIN and COMMIT made three."""
        if self.name != "postgresql":
            with self._reading() as conn:
                yield conn
            return
        engine = self._loop().single if in_greenlet() else self._single
        try:
            with engine.connect() as conn:
                yield conn
        except SQLAlchemyError as error:
            raise self._unavailable(error) from None

    def _loop(self) -> "_LoopEngines":
        return self._loops[asyncio.get_running_loop()]

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[None]:
        """PostgreSQL: while the service runs on this event loop, calls made from it use
        the driver's asynchronous connections, each round trip awaited on the loop
        (SQLAlchemy runs the store's code in a greenlet), rather than worker threads,
        which gave up the interpreter at each round trip and waited to get it back.
        Asynchronous connections belong to one loop: they are made for it here and
        closed at its end."""
        if self.name != "postgresql":
            yield
            return
        loop = asyncio.get_running_loop()
        engine = create_async_engine(self.engine.url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=60)
        writer = engine.sync_engine
        self._loops[loop] = _LoopEngines(
            writer,
            writer.execution_options(isolation_level="REPEATABLE READ"),
            writer.execution_options(isolation_level="AUTOCOMMIT"),
        )
        try:
            yield
        finally:
            del self._loops[loop]
            await engine.dispose()

    def _on_this_loop(self) -> bool:
        return asyncio.get_running_loop() in self._loops

    async def wait_for(self, call: Callable[[], T]) -> T:
        """Make a call that may wait (not `quick`): on the event loop if the store serves
        it (PostgreSQL, see `serve`), else in a worker thread. Either way it runs to its
        end even if its caller stops waiting (the deadline): a thread cannot be
        interrupted, and a connection interrupted mid-statement is not worth keeping."""
        if self._on_this_loop():
            return await asyncio.shield(asyncio.ensure_future(greenlet_spawn(call)))
        return await to_thread.run_sync(call, abandon_on_cancel=True)

    @contextmanager
    def _transaction(self, engine: Engine, lock: AbstractContextManager[Any]) -> Iterator[Connection]:
        try:
            with lock, engine.begin() as conn:
                yield conn
        except SQLAlchemyError as error:
            raise self._unavailable(error) from None

    def _unavailable(self, error: SQLAlchemyError) -> StoreUnavailable:
        return StoreUnavailable(
            f"The {self.name} store is unavailable ({_reason(error)}); whether a change was made is unknown: "
            "retry (an intent with the same idempotency_key)"
        )

    def _lock_instrument(self, conn: Connection, instrument: Instrument) -> None:
        # SQLite: the transaction already holds the database's only write lock.
        if self.name == "postgresql":
            self._sql.lock.run(conn, {"key": _instrument_key(instrument)}, counted=False)

    # -- admission ----------------------------------------------------------------------

    async def admit(self, order: Order, policy: Policy, now: int, cap: int | None = None) -> Admission:
        admission = await self._write(Arrival(order, policy, now, cap))
        assert isinstance(admission, Admission)  # the writer answers an intent with one
        return admission

    async def add_quote(
        self,
        instrument: Instrument,
        quote: Quote,
        policy: Policy,
        now: int,
        cap: int | None = None,
        *,
        ts: int | None = None,
        source: FillSource = FillSource.QUOTE,
    ) -> list[Event]:
        # `cap` counts orders only here: fills are rows on disk, not this process's memory.
        events = await self._write(QuoteArrival(instrument, quote, policy, now, ts, source))
        assert isinstance(events, list)  # the writer answers a quote with its events
        return events

    async def add_trade(
        self,
        instrument: Instrument,
        trade: Trade,
        policy: Policy,
        now: int,
        cap: int | None = None,
        *,
        ts: int | None = None,
    ) -> list[Event]:
        # `cap` counts orders only here, as for a quote.
        events = await self._write(TradeArrival(instrument, trade, policy, now, ts))
        assert isinstance(events, list)  # the writer answers a print with its events
        return events

    # -- live orders (app.store.sql_live) ----------------------------------------------

    async def apply_report(
        self,
        live: LiveOrder,
        report: ExchangeReport,
        now: int,
        exchange_order_id: str | None = None,
        expect: Expected | None = None,
    ) -> list[Event]:
        """Apply what a live order's exchange reports of it (each trade once; raises
        core.ExchangeReportRefused, changing nothing, if it cannot be true); its outbox
        row says the exchange holds it, or that it is done. Nothing if the row is no
        longer as `expect` says."""
        order = live.order
        arrival = ReportArrival((order.exchange, order.symbol), live, report, now, exchange_order_id, expect)
        events = await self._write(arrival)
        assert isinstance(events, list)  # the writer answers a report with its events
        return events

    def live_orders(self, exchange: str) -> list[LiveOrder]:
        """The live orders of `exchange` not yet done, oldest first."""
        with self._reading_once() as conn:
            return sql_live.unfinished(conn, exchange, self._sql.fills_of)

    def unfinished_live_exchanges(self) -> set[str]:
        """The exchanges with live orders not yet done."""
        with self._reading_once() as conn:
            return sql_live.unfinished_exchanges(conn)

    def open_paper_exchanges(self, exchanges: frozenset[str]) -> set[str]:
        """Those of `exchanges` with open orders that are not live orders (paper ones)."""
        with self._reading_once() as conn:
            return sql_live.open_paper_exchanges(conn, exchanges)

    def live_order(self, order_id: str) -> LiveOrder | None:
        with self._reading_once() as conn:
            return sql_live.find(conn, order_id, self._sql.fills_of)

    def known_client_ids(self, client_order_ids: Sequence[str]) -> set[str]:
        """Those of `client_order_ids` that name live orders of this store not final here."""
        with self._reading_once() as conn:
            return sql_live.known(conn, client_order_ids)

    def mark_live(
        self,
        order_id: str,
        state: LiveState,
        *,
        expect: Expected,
        now: int,
        attempt: bool = False,
        exchange_order_id: str | None = None,
    ) -> bool:
        """Move a live order's sending on if its row is as `expect` says (see sql_live.mark)."""
        with self._writing() as conn:
            return sql_live.mark(
                conn,
                order_id,
                state,
                expect=expect,
                now=now,
                attempt=attempt,
                exchange_order_id=exchange_order_id,
            )

    def ask_cancel(self, order_id: str, reason: CancelReason, now: int) -> LiveOrder | None:
        """Ask for the cancel of a live order at its exchange (if it is still open there:
        a cancel asked for earlier keeps its reason); the order as it is now. None: no
        such live order."""
        with self._writing() as conn:
            live = sql_live.find(conn, order_id, self._sql.fills_of, lock=True)
            if live is not None and live.order.is_open:
                sql_live.ask_cancel(conn, [order_id], reason, now)
        return self.live_order(order_id) if live is not None else None

    def keep_exchange_balances(self, exchange: str, reading: FundsReading) -> None:
        """Keep what `exchange`'s account had free as its latest reading, for intake's
        balance check of live orders (an older reading than the one kept is dropped)."""
        with self._writing() as conn:
            sql_live.keep_reading(conn, exchange, reading, self._insert)

    def keep_live_status(self, status: SharedStatus) -> None:
        """Keep what the executor of a live exchange last saw of it, for every process."""
        with self._writing() as conn:
            sql_live.keep_status(conn, status, self._insert)

    def live_status(self, exchange: str) -> SharedStatus | None:
        """What the executor of `exchange` last saw of it (None: nothing kept yet)."""
        with self._reading() as conn:
            return sql_live.status_of(conn, exchange)

    def exchange_balances(self, exchange: str) -> FundsReading | None:
        """`exchange`'s account as last read (None: never)."""
        with self._reading() as conn:
            return sql_live.reading_of(conn, exchange)

    async def _write(self, work: Write) -> Written:
        if self._closed:  # shutting down: the writer takes nothing more
            raise StoreUnavailable(f"The {self.name} store is closed (the service is stopping); retry")
        if self.name == "sqlite" or self._on_this_loop():
            return await self._loop_writes.submit(work)
        return await self._writes.submit(work)

    async def _commit_awaiting(self, batch: list[Waiting[Write, Written]]) -> None:
        """PostgreSQL: the batch committed as the writer thread would (`_commit_batch`),
        on the event loop."""
        await greenlet_spawn(self._commit_batch, batch)

    async def _commit_on_loop(self, batch: list[Waiting[Write, Written]]) -> None:
        """SQLite: the batch's statements run on the event loop, only its commit (the
        fsync) in a thread. SQLite's work is CPU on a local file, and made in a thread it
        gave up the interpreter at every row and waited to get it back: the hand-offs
        between the threads cost more than the work. What might wait goes to the writer
        thread instead, whole: the write lock held by another of this process's loops or
        by another process, and the rare batch that needs its fallbacks (a value the
        database refused, a key another process took)."""
        if not self._sqlite_lock.acquire(blocking=False):
            await self._in_writer_thread(batch)
            return
        try:
            conn = self._loop_writer.connect()
        except BaseException:
            self._sqlite_lock.release()
            raise
        try:
            conn.begin()  # BEGIN IMMEDIATE, refused at once if another process writes
            answers = self._write_batch(conn, batch)
        except (OperationalError, ValueRefused, _KeyRace):
            self._finish(conn, commit=False)
            await self._in_writer_thread(batch)
            return
        except SQLAlchemyError as error:
            self._finish(conn, commit=False)
            raise self._unavailable(error) from None
        except BaseException:
            self._finish(conn, commit=False)
            raise
        try:
            await asyncio.to_thread(self._finish, conn, commit=True)
        except SQLAlchemyError as error:
            raise self._unavailable(error) from None
        _answer(answers)

    def _finish(self, conn: Connection, *, commit: bool) -> None:
        """End a loop batch's transaction (in a thread, for a commit: it waits for the
        disk), give its connection back and release the write lock: none of it needs
        the event loop, so a store closing on it can wait for this."""
        try:
            if commit:
                conn.commit()
            else:
                conn.rollback()
        finally:
            try:
                conn.close()
            finally:
                self._sqlite_lock.release()

    async def _in_writer_thread(self, batch: list[Waiting[Write, Written]]) -> None:
        """Hand each item of a batch to the writer thread and answer it as that does."""
        outcomes = await asyncio.gather(*(self._writes.submit(entry.item) for entry in batch), return_exceptions=True)
        for entry, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                entry.fail(outcome)
            else:
                entry.succeed(outcome)

    def _commit_batch(self, batch: list[Waiting[Write, Written]]) -> None:
        """Commit a batch in one transaction; if the database refused a value in it, commit
        each item on its own, so one bad intent does not fail its neighbours."""
        try:
            self._commit_retrying(batch)
        except ValueRefused:
            if len(batch) == 1:
                raise
            for entry in batch:
                try:
                    self._commit_retrying([entry])
                except StoreUnavailable as alone:
                    entry.fail(alone)

    def _commit_retrying(self, batch: list[Waiting[Write, Written]]) -> None:
        # A key another worker committed after this transaction looked it up makes the
        # insert find it taken: everything is rolled back and the batch committed again.
        for _ in range(KEY_RACE_RETRIES):
            try:
                self._commit_together(batch)
                return
            except _KeyRace:
                pass
        raise StoreUnavailable("Intents with these idempotency keys keep racing with other workers; retry")

    def _commit_together(self, batch: list[Waiting[Write, Written]]) -> None:
        """One transaction for the whole batch, in arrival order: each run of intents is
        admitted together, each quote applied where it came (so it fills the intents
        before it, and those after it see its fills); the instruments' quotes and
        positions and every event are written at the end. Answers go out only once it
        has committed."""
        with self._writing() as conn:
            answers = self._write_batch(conn, batch)
        _answer(answers)

    def _write_batch(self, conn: Connection, batch: list[Waiting[Write, Written]]) -> list[Answer]:
        """The batch's work in `conn`'s write transaction; the answers, to give once it
        has committed."""
        intents = [entry.item for entry in batch if isinstance(entry.item, Arrival)]
        caps = [arrival.cap for arrival in intents if arrival.cap is not None]
        work = _Batch(self, conn)
        piped = False
        try:
            # (The cap's count, the account's rows and a live order's rows are read
            # through SQLAlchemy itself, which cannot read them in pipeline mode.)
            reports = any(isinstance(entry.item, ReportArrival) for entry in batch)
            with pipelined(conn, wanted=not (caps or self._account_on or reports)) as piped:
                answers = self._write_batch_in(work, batch, intents, caps)
        except DataError as error:  # a value of an intent being inserted
            raise ValueRefused(
                f"The {self.name} store refused a value of this intent ({_reason(error)}); it was not stored"
            ) from None
        except IntegrityError:
            if piped:  # the fills of an order whose key another worker took found no order
                raise _KeyRace from None
            raise
        if any(count.value != expected for count, expected in work.inserted):
            raise _KeyRace
        return answers

    def _write_batch_in(
        self, work: "_Batch", batch: list[Waiting[Write, Written]], intents: list[Arrival], caps: list[int]
    ) -> list[Answer]:
        conn = work.conn
        answers: list[Answer] = []
        events: list[Event] = []
        # Every lock the batch needs, up front and always in the same order (the
        # capacity lock, then the instruments sorted, then the trading state), so
        # two workers' batches never deadlock.
        if caps and self.name == "postgresql":
            # Every capped admission, in every worker, counts and inserts one at a time.
            conn.execute(select(func.pg_advisory_xact_lock(CAPACITY_LOCK)))
        instruments = sorted({_instrument_of(entry.item) for entry in batch})
        for entry in batch:
            if isinstance(entry.item, QuoteArrival):
                work.quotes.setdefault(entry.item.instrument, []).append(entry.item.quote)
        for instrument in instruments:
            self._lock_instrument(conn, instrument)
        state: TradingState | None = None
        owners: dict[str, Order] = {}
        # What the batch reads before it writes, sent together (one round trip in a
        # pipeline, the locks' wait included).
        if intents:
            # Read under a share lock: a change of state waits for this batch, and a
            # batch after it sees the new state (cancel_open_orders misses no order).
            # (SQLite: the batch holds the only write lock already.)
            shared = self.name == "postgresql"
            state_row = (self._sql.trading_state_shared if shared else self._sql.trading_state).send(conn)
            # Keys already taken answer with their order (also when trading is
            # halted): one look-up for the whole batch.
            keys = list({arrival.order.idempotency_key for arrival in intents})
            owner_rows = self._sql.owners.send(conn, keys)
        work.read_instruments(instruments)
        if intents:
            state = _state_of(state_row.rows()[0])
            owners = {order.idempotency_key: order for order in orders_and_fills(owner_rows.rows())}
            if self._account_on:  # balances apply: live orders must fit their exchange's account
                live = sorted({a.order.exchange for a in intents if a.policy.is_live(a.order.exchange)})
                work.funds = {exchange: sql_live.funds(conn, exchange) for exchange in live}
        for run in _runs(batch):
            if isinstance(run[0].item, Arrival):
                assert state is not None  # read above: the batch has intents
                answered, admitted = self._admit_run(work, run, state, owners, min(caps) if caps else None)
                answers += answered
                events += admitted
            else:
                for entry in run:
                    applied = self._apply_market_data(work, entry.item)
                    answers.append((entry, applied))
                    if not isinstance(applied, Exception):
                        events += applied
        self._keep_instruments(work)
        self._journal(conn, events)
        return answers

    def _apply_market_data(
        self, work: _Batch, item: Write
    ) -> list[Event] | MarketDataRefused | core.ExchangeReportRefused:
        """A quote's, a print's or an exchange report's events, or its refusal (then
        nothing changed)."""
        try:
            if isinstance(item, QuoteArrival):
                return self._apply_quote(work, item)
            if isinstance(item, ReportArrival):
                return self._apply_report(work, item)
            assert isinstance(item, TradeArrival)  # a run holds intents or market data
            return self._apply_trade(work, item)
        except (MarketDataRefused, core.ExchangeReportRefused) as refusal:
            return refusal

    def _apply_report(self, work: _Batch, arrival: ReportArrival) -> list[Event]:
        """Apply a live exchange's report of an order (the caller holds its instrument's
        lock, writes its position and journals the events)."""
        live = sql_live.find(work.conn, arrival.live.order.order_id, self._sql.fills_of, lock=True)
        assert live is not None  # the executor read it from the outbox
        events = sql_live.apply_report(
            work.conn,
            work.instrument(arrival.instrument),
            live,
            arrival.report,
            now=arrival.now,
            new_id=new_number,
            exchange_order_id=arrival.exchange_order_id,
            expect=arrival.expect,
        )
        self._record(work.conn, events, inserted=False)
        if any(isinstance(event, OrderFilled) for event in events):
            work.traded.add(arrival.instrument)
        work.reachables.pop(arrival.instrument, None)  # its orders changed
        return events

    def _admit_run(
        self,
        work: _Batch,
        run: list[Waiting[Write, Written]],
        state: TradingState,
        owners: dict[str, Order],
        cap: int | None,
    ) -> tuple[list[Answer], list[Event]]:
        """Admit a run of intents in arrival order: each whose key is free goes through
        the core (and sees what the ones before it did), then the accepted orders and
        their fills are inserted together. Returns the answers and the events."""
        conn = work.conn
        arrivals: list[tuple[Waiting[Write, Written], Arrival, Order]] = []
        for entry in run:
            assert isinstance(entry.item, Arrival)
            arrivals.append((entry, entry.item, _pristine(entry.item.order)))
        new_keys = {order.idempotency_key for _, _, order in arrivals} - owners.keys() - work.admitted.keys()
        room = self._room(conn, cap, len(new_keys)) if cap is not None else None
        work.account = self._account(conn, {order.symbol for _, _, order in arrivals}, [])
        answers: list[Answer] = []
        events: list[Event] = []
        # A taken key answers with its stored order: all of the run's read in one query.
        for entry, arrival, order in arrivals:
            key = order.idempotency_key
            if key in owners:
                answers.append((entry, Admission(owners[key], False, [])))
            elif key in work.admitted:
                answers.append((entry, Admission(work.admitted[key], False, [])))
            elif room is not None and cap is not None and room <= 0:
                answers.append((entry, StoreFull(cap)))
            else:
                try:
                    admitted = self._admit_one(work, order, arrival, state)
                except IntentRefused as refusal:
                    answers.append((entry, refusal))
                    continue
                room = None if room is None else room - 1
                answers.append((entry, Admission(order, True, admitted)))
                events += admitted
        self._insert_accepted(work)
        return answers, events

    def _admit_one(self, work: _Batch, order: Order, arrival: Arrival, state: TradingState) -> list[Event]:
        key = (order.exchange, order.symbol)
        instrument = work.instrument(key)
        admitted = core.admit(
            order,
            instrument,
            state,
            arrival.policy,
            work.account,
            now=arrival.now,
            new_id=new_number,
            funds=work.funds.get(order.exchange),
        )
        place = ARRIVING if admitted.arriving else admitted.queue_place
        work.accepted[order.idempotency_key] = (order, admitted.passive, place)
        work.admitted[order.idempotency_key] = order
        if arrival.policy.is_live(order.exchange):
            work.live.append((order, admitted.claim))
        if admitted.rests:
            work.resting.setdefault(key, []).append(order)
            if key in work.reachables:
                # Its own copy, as the table's orders are: the answer to this intent is
                # the order as admitted, whatever a later quote of the batch does.
                work.reachables[key].add(order.copy(), passive=admitted.passive)
        work.events += admitted.events
        return admitted.events

    def _room(self, conn: Connection, cap: int, new_keys: int) -> int | None:
        """How many more orders fit under `cap` (None: more than this batch can bring)."""
        # (PostgreSQL: the caller holds the capacity lock.) Sequence numbers are distinct
        # and positive, so the highest bounds the count: far from the cap, one index
        # lookup settles it and nothing is counted.
        highest = self._sql.highest_seq.rows(conn)[0].seq or 0
        if highest + new_keys <= cap:
            return None
        return cap - int(conn.execute(select(func.count()).select_from(orders)).scalar_one())

    def _insert_accepted(self, work: _Batch) -> None:
        """Insert the accepted orders in their state so far, then their fills and what
        they moved; the orders are then in the table for whatever comes next."""
        conn, account = work.conn, work.account
        if work.accepted:
            rows = [self._order_row(order, passive, x, account) for order, passive, x in work.accepted.values()]
            # A key another worker took meanwhile inserts nothing. In a pipeline the count
            # comes back later: checked at the end of the batch.
            inserted = self._sql.insert_orders.count_many(conn, rows)
            if not inserted.known:
                work.inserted.append((inserted, len(rows)))
            elif inserted.value != len(rows):
                raise _KeyRace
            sql_live.insert_outbox(conn, work.live, self.journal_id)
            self._record(conn, work.events, inserted=True)
            work.traded |= {(e.order.exchange, e.order.symbol) for e in work.events if isinstance(e, OrderFilled)}
            if account is not None:
                self._keep_account(conn, account, [])
        work.accepted, work.resting, work.events, work.live = {}, {}, [], []

    def _keep_instruments(self, work: _Batch) -> None:
        """Write the latest quote of every instrument whose quote changed or traded, and
        the position of every instrument that traded, and the queues that changed: once
        per transaction."""
        self._keep_queues(work)
        changed = sorted(work.quoted | work.traded)
        if not changed:
            return
        quote_rows = []
        for key in changed:
            quote = work.instruments[key].quote
            if quote is None:  # a print filled an order on an instrument with no book yet
                continue
            quote_rows.append(
                {
                    "u_exchange": key[0],
                    "u_symbol": key[1],
                    "u_bid": str(quote.bid),
                    "u_ask": str(quote.ask),
                    "u_bid_size": text_of(quote.bid_size),
                    "u_ask_size": text_of(quote.ask_size),
                    "u_ts": work.instruments[key].quote_ts,
                    "u_depth": depth_text(quote),
                }
            )
        if quote_rows:
            self._sql.upsert_quote.run_many(work.conn, quote_rows, counted=False)
        position_rows = []
        for key in sorted(work.traded):
            position = work.instruments[key].position
            position_rows.append(
                {
                    "u_exchange": key[0],
                    "u_symbol": key[1],
                    "u_qty": str(position.qty),
                    "u_cost": str(position.cost),
                    "u_realized_pnl": str(position.realized_pnl),
                    "u_fees": str(position.fees),
                }
            )
        if position_rows:
            self._sql.upsert_position.run_many(work.conn, position_rows, counted=False)

    def _keep_queues(self, work: _Batch) -> None:
        """Write the queues (and time of the latest print) of each instrument whose
        queues the batch read, where they changed."""
        rows = []
        for key in sorted(work.queue_rows):
            state = work.instruments[key]
            queues = state.queues_known
            assert queues is not None  # read: its row is in queue_rows
            read = work.queue_rows[key]
            text, trade_ts = queues_text(queues), state.trade_ts
            if read is None and not queues and queues.next_epoch == 1 and trade_ts is None:
                continue  # nothing yet, as before
            if read is not None and (read.levels, read.trade_ts) == (text, trade_ts):
                continue
            rows.append({"u_exchange": key[0], "u_symbol": key[1], "u_trade_ts": trade_ts, "u_levels": text})
        if rows:
            self._sql.upsert_queues.run_many(work.conn, rows, counted=False)

    # -- market data, cancels, the trading state ------------------------------------

    def _apply_quote(self, work: _Batch, arrival: QuoteArrival) -> list[Event]:
        """Fill what the quote reaches and make it the instrument's latest (the caller
        holds the instrument's lock, writes the quote and position, and journals the
        events)."""
        conn, instrument = work.conn, arrival.instrument
        exchange, symbol = instrument
        reach = Reach.of(arrival.quote)
        where = {"exchange": exchange, "symbol": symbol, "r_ask": reach.ask, "r_bid": reach.bid}
        account: Account | None = None
        reachable = None
        if self._account_on:
            # The reservations of the orders it reaches are read with them, each quote.
            rows = self._sql.reached.rows(conn, where)
            account = self._account(conn, {symbol}, rows)
            reached = [(order_of(row), not row.passive) for row in rows]
        else:
            reachable = work.reachable(instrument)
            reached = reachable.reached_by(reach)
        state = work.instrument(instrument)
        ts = core.stamp(state, arrival.ts, arrival.now, arrival.policy)  # refused: nothing written yet
        self._arrive(work, instrument, arrival.policy, ts)
        events = core.apply_quote(
            state,
            arrival.quote,
            reached,
            arrival.policy,
            account,
            now=arrival.now,
            new_id=new_number,
            ts=ts,
            source=arrival.source,
        )
        assert state.quote_ts is not None  # the quote's, just applied
        arrived_by = arrival.policy.arrived_by(state.quote_ts)
        if reachable is not None:
            reachable.settle(reach, arrived_by)
        work.quoted.add(instrument)
        self._record(conn, events, inserted=False)
        if any(isinstance(event, OrderFilled) for event in events):
            work.traded.add(instrument)
        if account is not None:
            self._keep_account(conn, account, [order for order, _ in reached])
        # The LIMIT orders still waiting to take that this quote passed by rest
        # passively from now on.
        self._sql.pass_by.run(
            conn, {**where, "arrived_by": ALL_ARRIVED if arrived_by is None else arrived_by}, counted=False
        )
        return events

    def _arrive(self, work: _Batch, instrument: Instrument, policy: Policy, ts: int) -> None:
        """The LIMIT orders that reach the venue by data stamped `ts` (a latency) take
        their places in the queues before it applies."""
        arrived_by = policy.arrived_by(ts)
        if arrived_by is None:
            return
        where = {"exchange": instrument[0], "symbol": instrument[1], "arrived_by": arrived_by}
        orders_arriving = [order_of(row) for row in self._sql.arriving.rows(work.conn, where)]
        if not orders_arriving:
            return
        placed = core.arrive(work.instrument(instrument), orders_arriving, policy, ts)
        rows = [
            {"b_order_id": order.order_id, "b_queue_place": None if place is None else place.text()}
            for order, place in placed
        ]
        self._sql.set_queue_place.run_many(work.conn, rows, counted=False)

    def _apply_trade(self, work: _Batch, arrival: TradeArrival) -> list[Event]:
        """Fill the passive orders a print meets (the caller holds the instrument's lock,
        writes its queues and position, and journals the events)."""
        conn, instrument, trade = work.conn, arrival.instrument, arrival.trade
        exchange, symbol = instrument
        side = Side.SELL if trade.buys else Side.BUY
        where = {"exchange": exchange, "symbol": symbol, "t_side": side.value, "t_price": float(trade.price)}
        state = work.instrument(instrument)
        ts = core.stamp(state, arrival.ts, arrival.now, arrival.policy)  # refused: nothing written yet
        self._arrive(work, instrument, arrival.policy, ts)
        rows = self._sql.met_by_trade.rows(conn, where)
        account = self._account(conn, {symbol}, rows) if self._account_on else None
        met = [
            (order_of(row), None if row.queue_place == ARRIVING else QueuePlace.parse(row.queue_place)) for row in rows
        ]
        events = core.apply_trade(state, trade, met, arrival.policy, account, now=arrival.now, new_id=new_number, ts=ts)
        self._record(conn, events, inserted=False)
        if any(isinstance(event, OrderFilled) for event in events):
            work.traded.add(instrument)
            # The orders a later quote of the batch reaches are read again: these changed.
            work.reachables.pop(instrument, None)
        if account is not None:
            self._keep_account(conn, account, [order for order, _ in met])
        return events

    def cancel(self, order_id: str, now: int) -> tuple[Order, OrderCanceled | None] | None:
        if parse_order_id(order_id) is None:
            return None
        with self._writing() as conn:
            row = conn.execute(select(orders).where(orders.c.order_id == order_id).with_for_update()).one_or_none()
            if row is None:
                return None
            order = with_fills(conn, [row], self._sql.fills_of)[0]
            account = self._account(conn, {row.symbol}, [row]) if order.is_open else None
            event = core.cancel(order, None, account, now=now)
            if event is not None:
                self._record(conn, [event], inserted=False)
                if account is not None:
                    self._keep_account(conn, account, [order])
                self._journal(conn, [event])
        return order, event

    def _trading_state(self, conn: Connection, *, lock: str | None = None) -> TradingState:
        """The state row; `lock` "share" or "update" locks it (PostgreSQL; SQLite's
        write transactions already hold the only write lock)."""
        if lock is None or self.name != "postgresql":
            row = self._sql.trading_state.rows(conn)[0]
        elif lock == "share":
            row = self._sql.trading_state_shared.rows(conn)[0]
        else:
            row = conn.execute(select(trading_state).where(_STATE_ROW).with_for_update()).one()
        return _state_of(row)

    def trading_state(self) -> TradingState:
        with self._reading_once() as conn:
            return self._trading_state(conn)

    def claim_feeds(self, holder: str, instruments: Sequence[Instrument], now: int, ttl: int) -> set[Instrument]:
        won: set[Instrument] = set()
        with self._writing() as conn:
            for exchange, symbol in instruments:
                # A lease nobody held is made; then the row is locked (PostgreSQL: two
                # processes claiming at once take turns) and taken if it is free.
                conn.execute(
                    self._insert(feed_leases)
                    .values(exchange=exchange, symbol=symbol, holder=holder, expires_at=now + ttl)
                    .on_conflict_do_nothing()
                )
                lease = feed_leases.c.exchange == exchange, feed_leases.c.symbol == symbol
                row = conn.execute(select(feed_leases).where(*lease).with_for_update()).one()
                if row.holder == holder or row.expires_at <= now:
                    conn.execute(update(feed_leases).where(*lease).values(holder=holder, expires_at=now + ttl))
                    won.add((exchange, symbol))
        return won

    def release_feeds(self, holder: str, instruments: Sequence[Instrument]) -> None:
        with self._writing() as conn:
            for exchange, symbol in instruments:
                conn.execute(
                    update(feed_leases)
                    .where(feed_leases.c.exchange == exchange, feed_leases.c.symbol == symbol)
                    .where(feed_leases.c.holder == holder)
                    .values(expires_at=0)
                )

    def set_trading_state(
        self,
        state: TradingState,
        *,
        cancel_open: bool = False,
        only_stricter: bool = False,
        live: frozenset[str] = frozenset(),
    ) -> StateChange:
        with self._writing() as conn:
            # FOR UPDATE: waits for the batches reading the state under a share lock.
            before = self._trading_state(conn, lock="update")
            rows = (
                conn.execute(select(orders).where(_open).order_by(orders.c.seq).with_for_update()).all()
                if cancel_open
                else []
            )
            open_orders = with_fills(conn, rows, self._sql.fills_of)
            account = self._account(conn, {row.symbol for row in rows}, rows) if rows else None
            events = core.change_trading_state(
                before, state, open_orders, account, cancel_open=cancel_open, only_stricter=only_stricter, live=live
            )
            if events and cancel_open:
                # Live orders end when their exchange says so: their cancels are asked for.
                held = [order.order_id for order in open_orders if order.exchange in live]
                sql_live.ask_cancel(conn, held, CancelReason.KILL_SWITCH, state.updated_at)
            if events:
                conn.execute(
                    update(trading_state)
                    .where(_STATE_ROW)
                    .values(state=state.state.value, reason=state.reason, updated_at=state.updated_at)
                )
                self._record(conn, events, inserted=False)
                if account is not None:
                    self._keep_account(conn, account, open_orders)
                self._journal(conn, events)
        return StateChange(before, events)

    # -- the paper account ----------------------------------------------------------

    def open_account(self, start: dict[str, Decimal], assets: set[str], policy: Policy) -> None:
        """Rows for the assets not yet in the table (a database opened again keeps its
        balances: they are the fills' history, not settings); open orders that hold no
        reservation (placed while balances were off) get one."""
        with self._writing() as conn:
            for asset in sorted(assets | set(start)):
                amount = str(start.get(asset, Decimal(0)))
                conn.execute(
                    self._insert(balances)
                    .values(asset=asset, start=amount, total=amount, reserved="0")
                    .on_conflict_do_nothing(index_elements=[balances.c.asset])
                )
            rows = conn.execute(select(orders).where(_open).order_by(orders.c.seq).with_for_update()).all()
            # Live orders hold nothing of the paper account: their exchange's account pays.
            rows = [row for row in rows if not policy.is_live(row.exchange)]
            held = {
                row.asset: Holding(Decimal(row.start), Decimal(row.total), Decimal(row.reserved))
                for row in conn.execute(select(balances).with_for_update())
            }
            account = Account(held, self._reservations(rows))
            open_orders = [order_of(row) for row in rows]
            latest = {(row.exchange, row.symbol): book_of_row(row) for row in conn.execute(select(quotes))}
            account.adopt(open_orders, {key: quote for key, quote in latest.items() if quote is not None}, policy.costs)
            self._keep_account(conn, account, open_orders)
        self._account_on = True

    def balances(self) -> dict[str, Holding]:
        if not self._account_on:
            return {}
        with self._reading() as conn:
            return {
                row.asset: Holding(Decimal(row.start), Decimal(row.total), Decimal(row.reserved))
                for row in conn.execute(select(balances).order_by(balances.c.asset))
            }

    def _account(self, conn: Connection, symbols: set[str], rows: Sequence[Row[Any]]) -> Account | None:
        """The account's holdings of the assets `symbols` trade, locked for this
        transaction (in asset order: no two transactions wait on each other), and the
        reservations of the order `rows`. None when the account is off."""
        if not self._account_on:
            return None
        assets = sorted({asset for symbol in symbols for asset in assets_of(symbol)})
        query = select(balances).where(balances.c.asset.in_(assets)).order_by(balances.c.asset)
        held = {
            row.asset: Holding(Decimal(row.start), Decimal(row.total), Decimal(row.reserved))
            for row in conn.execute(query.with_for_update())
        }
        return Account(held, self._reservations(rows))

    @staticmethod
    def _reservations(rows: Sequence[Row[Any]]) -> dict[int, Reservation]:
        found = {number_of(row.order_id): _reservation(row) for row in rows}
        return {number: reservation for number, reservation in found.items() if reservation is not None}

    def _keep_account(self, conn: Connection, account: Account, touched: Sequence[Order]) -> None:
        """Write the holdings back, and the reservations of the `touched` orders (one
        that no longer holds any is written as none)."""
        if account.holdings:
            conn.execute(
                _UPDATE_HOLDING,
                [
                    {"b_asset": asset, "total": str(held.total), "reserved": str(held.reserved)}
                    for asset, held in account.holdings.items()
                ],
            )
        if touched:
            conn.execute(
                _UPDATE_ORDER,
                [
                    {
                        "b_order_id": order.order_id,
                        "reserve_unit": text_of(
                            None if (held := account.reservations.get(order.number)) is None else held.unit
                        ),
                        "reserved": text_of(None if held is None else held.held),
                    }
                    for order in touched
                ],
            )

    # -- reads ----------------------------------------------------------------------

    def quick(self, call: str, *args: object) -> bool:
        """SQLite's reads that touch a bounded number of rows through an index: made on
        the event loop (a WAL reader never waits for a writer; in a thread, SQLite gives
        up the interpreter at every row and waits to get it back). A listing filtered
        on anything but status, a count, and a journal read may read many rows: they
        stay in a thread. PostgreSQL's calls wait on the network: never quick."""
        if self.name != "sqlite":
            return False
        if call == "newest_first":
            keep = args[2]
            assert isinstance(keep, OrderFilter)
            return keep.exchange is None and keep.symbol is None and keep.side is None
        return call in _QUICK_READS

    def get(self, order_id: str) -> Order | None:
        if parse_order_id(order_id) is None:
            return None
        with self._reading_once() as conn:
            found = orders_and_fills(self._sql.order_by_id.rows(conn, {"order_id": order_id}))
        return found[0] if found else None

    def get_by_key(self, idempotency_key: str) -> Order | None:
        with self._reading_once() as conn:
            found = orders_and_fills(self._sql.order_by_key.rows(conn, {"key": idempotency_key}))
        return found[0] if found else None

    def newest_first(self, before: int | None, limit: int, keep: OrderFilter) -> tuple[list[Order], int | None]:
        # One row more than the page: whether an older one is left.
        statement, params = self._sql.listing(keep, before, limit + 1)
        with self._reading_once() as conn:
            rows = statement.rows(conn, params)
        # An order's seq once per order (its row comes once per fill).
        seqs = list(dict.fromkeys(row.seq for row in rows))
        return orders_and_fills(rows)[:limit], (seqs[limit - 1] if len(seqs) > limit else None)

    def count(self) -> int:
        with self._reading() as conn:
            return int(conn.execute(select(func.count()).select_from(orders)).scalar_one())

    def held(self) -> int:
        return self.count()

    def count_by_status(self) -> dict[str, int]:
        with self._reading() as conn:
            rows = conn.execute(select(orders.c.status, func.count()).group_by(orders.c.status)).all()
        return {status: int(count) for status, count in rows}

    def market_data_times(self) -> dict[Instrument, int | None]:
        with self._reading_once() as conn:
            return {(row.exchange, row.symbol): row.ts for row in self._sql.quote_times.rows(conn)}

    def positions(self) -> list[PositionView]:
        with self._reading_once() as conn:
            rows = self._sql.positions.rows(conn)
        return [PositionView(row.exchange, row.symbol, position_of(row), quote_of(row)) for row in rows]

    # -- the journal --------------------------------------------------------------------

    def _journal(self, conn: Connection, steps_events: Sequence[Event]) -> None:
        """The transaction's last writes: its events, numbered (PostgreSQL: listeners in
        every worker hear of them at the commit)."""
        journal.append(conn, steps_events, self._sql, notify=self.name == "postgresql")

    def read_journal(self, after: int, limit: int, keep: EntryFilter) -> JournalPage:
        with self._reading() as conn:
            return journal.read(conn, after, limit, keep, self._sql)

    def journal_head(self) -> int:
        with self._reading_once() as conn:
            return journal.head(conn, self._sql)

    def order_fills(self, order_id: str, after: int, limit: int) -> tuple[Order, list[StoredFill], bool] | None:
        if parse_order_id(order_id) is None:
            return None
        with self._reading() as conn:
            row = conn.execute(select(orders).where(orders.c.order_id == order_id)).one_or_none()
            if row is None:
                return None
            # The order's fill events from `after` on (the events_by_order index), one
            # more than the page: whether more follow.
            page = (
                select(events.c.seq.label("event_seq"), events.c.fill_id)
                .where(events.c.order_id == order_id, events.c.seq > after, events.c.fill_id.is_not(None))
                .order_by(events.c.seq)
                .limit(limit + 1)
                .subquery()
            )
            rows = conn.execute(
                select(fills, page.c.event_seq).join(page, page.c.fill_id == fills.c.fill_id).order_by(page.c.event_seq)
            ).all()
        # The order without its fills: a fill's view needs only its id and instrument.
        return order_of(row), [fill_of(fill, fill.event_seq) for fill in rows[:limit]], len(rows) > limit

    def fills_after(self, after: int, limit: int) -> list[tuple[Order, StoredFill]]:
        with self._reading() as conn:
            return journal.fills_after(conn, after, limit)

    def follow(self) -> AsyncIterator[int]:
        """The journal's head each time another process may have moved it."""
        if self.name == "postgresql":
            return journal.follow_postgresql(journal.listen_conninfo(self.engine.url), self.journal_head)
        return journal.follow_by_polling(self.journal_head)

    def close(self) -> None:
        self._closed = True
        self._writes.close()
        with self._write_lock:  # a batch of the event loop's commits meanwhile
            self.engine.dispose()
            if self.name == "sqlite":
                self._loop_writer.dispose()

    # -- rows -------------------------------------------------------------------------

    @staticmethod
    def _order_row(
        order: Order, passive: bool, queue_place: QueuePlace | str | None, account: Account | None
    ) -> dict[str, Any]:
        held = None if account is None else account.reservations.get(order.number)
        return {
            "order_id": order.order_id,
            "idempotency_key": order.idempotency_key,
            "exchange": order.exchange,
            "symbol": order.symbol,
            "side": order.side.value,
            "type": order.type.value,
            "time_in_force": order.time_in_force.value,
            "qty": order.qty,
            "limit_price": order.limit_price,
            "client_ts": order.client_ts,
            "accepted_at": order.accepted_at,
            "updated_at": order.updated_at,
            "status": order.status.value,
            "filled_qty": str(order.filled_qty),
            "passive": passive,
            "queue_place": queue_place.text() if isinstance(queue_place, QueuePlace) else queue_place,
            "reserve_unit": None if held is None else str(held.unit),
            "reserved": None if held is None else str(held.held),
        }

    def _record(self, conn: Connection, events: Sequence[Event], *, inserted: bool) -> None:
        """Write what `events` describe: fills, and the orders' new state (unless the
        orders were just inserted in it). The caller holds the instruments' locks."""
        new_fills = [event for event in events if isinstance(event, OrderFilled)]
        if new_fills:
            self._sql.insert_fills.run_many(
                conn, [fill_row(e.order.order_id, e.fill) for e in new_fills], counted=False
            )
        if not inserted:
            # An order changed more than once in one step: its last state is what counts.
            changes = OrderFilled | OrderCanceled | OrderExpired | OrderRejected
            changed = {e.order.order_id: e.order for e in events if isinstance(e, changes)}
            if changed:
                self._sql.update_progress.run_many(
                    conn,
                    [
                        {
                            "b_order_id": order.order_id,
                            "b_status": order.status.value,
                            "b_filled_qty": str(order.filled_qty),
                            "b_updated_at": order.updated_at,
                        }
                        for order in changed.values()
                    ],
                    counted=False,
                )


def _sqlite_engine(path: str, busy_seconds: float = 30) -> Engine:
    # check_same_thread off: connections move between the service's worker threads.
    # The busy timeout is how long a writer waits for another process's write.
    engine = create_engine(
        f"sqlite+pysqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": busy_seconds},
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_timeout=60,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN is off: transactions begin as `_on_begin` says.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never wait for the writer. FULL: a commit is on disk (fsync of
        # the log) before it returns, so a 201 is never sent for an order a crash loses.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock when it begins, not at its first write: a read
        # then a write in one deferred transaction could fail instead of waiting.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("begin_immediate") else "BEGIN")

    return engine
