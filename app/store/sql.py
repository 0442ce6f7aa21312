"""The SQL store: SQLite (one machine) or PostgreSQL (many workers and replicas), through
SQLAlchemy Core. Every operation is one transaction, so what a 201 acknowledged is on
disk, and workers sharing the database never double-fill or double-create:

- the idempotency key is a unique constraint: of racing inserts exactly one wins and
  the others read the winner;
- matching an instrument (an arriving order, or a quote) holds that instrument's lock
  for the whole transaction: a transaction-scoped advisory lock on PostgreSQL, the
  database's single write lock on SQLite (every write begins IMMEDIATE);
- the orders a quote fills, and an order being canceled, are read FOR UPDATE, so a
  cancel and a fill of the same order are never both applied.

Calls block on the database: the service makes them from worker threads.
"""

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, SQLAlchemyError

from app.core.balances import Account, Holding, assets_of
from app.core.controls import STRICTNESS, Controls, Exposure, TradingState, as_decimal
from app.core.errors import IntentRefused, StoreFull, StoreUnavailable
from app.core.fills import EXACT, Costs, Quote, exact
from app.core.ids import number_of, parse_order_id
from app.core.positions import Position, apply_fill
from app.ops.clock import now_micros
from app.store.group_commit import GroupCommit, Waiting
from app.store.memory import (
    OPEN_STATUSES,
    Admission,
    Execution,
    Funds,
    Instrument,
    Matcher,
    Order,
    OrderFilter,
    OrderKind,
    PositionView,
    StateChange,
    StoredFill,
    execute,
    expire_unfilled,
    remaining,
    rests_passively,
    takes_on_arrival,
)

# 2: positions kept in their own table, updated with each fill (1 computed them from
# every fill on each read). 3: orders have a time in force (GTC for older orders) and a
# reserve price, and the trading state and the paper balances have their tables.
# Older databases are upgraded at start-up.
SCHEMA_VERSION = 3
OPEN = sorted(OPEN_STATUSES)
# Threads the service may run store calls in at once; the pool never makes one wait
# for a connection it could have had.
POOL_SIZE = 16
# Intents admitted in one transaction at most (14 values each: well within either
# database's limit on parameters in one statement).
MAX_BATCH = 256
# Seconds a PostgreSQL connect may take.
CONNECT_TIMEOUT = 10
# PostgreSQL advisory lock keys: creating the schema, admitting under MAX_ORDERS.
SCHEMA_LOCK = 0x6F72646572730001
CAPACITY_LOCK = 0x6F72646572730002
# PostgreSQL session limits (milliseconds): how long a lock may be waited for, and a
# statement may run, before the request fails with a 503.
SESSION_LIMITS = "-c lock_timeout=10000 -c statement_timeout=30000"

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
    # What an open MARKET BUY reserved each unit at, with PAPER_BALANCES (text: exact).
    Column("reserve_price", Text),
    Column("qty", Double, nullable=False),
    Column("limit_price", Double),
    Column("client_ts", BigInteger),
    Column("accepted_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger),
    Column("status", String(16), nullable=False),
    Column("filled_qty", Text, nullable=False),
    # A resting LIMIT that a quote has passed by: it fills as maker from then on.
    Column("passive", Boolean, nullable=False),
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
)

# Each instrument's position, updated in the transaction that records its fills (which
# holds the instrument's lock), so a read is one row per instrument, not every fill.
# Exact fractions as text ("n/d").
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

_UPDATE_FILLED = (
    update(orders)
    .where(orders.c.order_id == bindparam("b_order_id"))
    .values(status=bindparam("b_status"), filled_qty=bindparam("b_filled_qty"), updated_at=bindparam("b_updated_at"))
)


def _order_state(order: Order) -> dict[str, Any]:
    """Parameters of `_UPDATE_FILLED`: what filling or expiring changed of an order."""
    return {
        "b_order_id": order.order_id,
        "b_status": order.status,
        "b_filled_qty": str(order.filled_qty),
        "b_updated_at": order.updated_at,
    }


def _vet(
    arrival: "Arrival",
    state: TradingState | None,
    quote: Quote | None,
    exposure: Callable[[], Exposure],
    funds: Funds | None,
) -> IntentRefused | None:
    """What the arrival's controls, then the paper account, refuse it for, if anything
    (an intent they let in has its balance reserved)."""
    try:
        if arrival.controls is not None and state is not None:
            arrival.controls.vet(arrival.order, state, quote, exposure)
        if funds is not None:
            funds.admit(arrival.order, quote)
    except IntentRefused as refusal:
        return refusal
    return None


def _holding(row: Row[Any]) -> Holding:
    return Holding(Decimal(row.start), Decimal(row.total), Decimal(row.reserved))


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _order(row: Row[Any], order_fills: list[StoredFill] | None = None) -> Order:
    order = Order(
        number=number_of(row.order_id),
        idempotency_key=row.idempotency_key,
        kind=OrderKind(row.exchange, row.symbol, row.side, row.type, row.time_in_force),
        qty=row.qty,
        limit_price=row.limit_price,
        client_ts=row.client_ts,
        accepted_at=row.accepted_at,
    )
    order.status = row.status
    order.filled_qty = Decimal(row.filled_qty)
    order.updated_at = row.updated_at
    order.fills = order_fills or None
    return order


def _fill(row: Row[Any]) -> StoredFill:
    return StoredFill(
        number=number_of(row.fill_id),
        qty=Decimal(row.qty),
        price=Decimal(row.price),
        fee=Decimal(row.fee),
        liquidity=row.liquidity,
        ts=row.ts,
    )


# Built once: a statement made per call costs its cache key every time.
LATEST_QUOTE = select(quotes).where(quotes.c.exchange == bindparam("exchange"), quotes.c.symbol == bindparam("symbol"))


def _position(row: Row[Any]) -> Position:
    return Position(Fraction(row.qty), Fraction(row.cost), Fraction(row.realized_pnl), Fraction(row.fees))


def _quote(row: Row[Any] | None) -> Quote | None:
    if row is None:
        return None
    return Quote(Decimal(row.bid), Decimal(row.ask), _decimal(row.bid_size), _decimal(row.ask_size))


def _reached_by(quote: Quote) -> Any:
    """SQL for "this quote can fill the order". Limits are floats and the quote's
    prices decimals of floats, so comparing as floats is exact."""
    return or_(
        orders.c.type == "MARKET",
        and_(orders.c.side == "BUY", orders.c.limit_price >= float(quote.ask)),
        and_(orders.c.side == "SELL", orders.c.limit_price <= float(quote.bid)),
    )


def _instrument_key(instrument: Instrument) -> int:
    """A stable signed 64-bit number per instrument, for PostgreSQL's advisory locks."""
    digest = hashlib.blake2b("\0".join(instrument).encode(), digest_size=8).digest()
    return int.from_bytes(digest, signed=True)


def _reason(error: SQLAlchemyError) -> str:
    # The driver's own first line: no SQL, no parameters, no password.
    original = error.orig if isinstance(error, DBAPIError) else error
    return str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__


class ValueRefused(StoreUnavailable):
    """The database refused a value of an order being inserted (too long for its column,
    say): the rest of its batch is not at fault."""


@dataclass
class Arrival:
    """An order waiting to be admitted, and what matching it gave."""

    order: Order
    match: Matcher
    now: int
    cap: int | None
    controls: Controls | None = None
    executions: list[Execution] = field(default_factory=list)


class SqlStore:
    """Orders, fills and latest quotes in SQLite or PostgreSQL."""

    blocking = True

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.name = "postgresql" if parsed.get_backend_name() == "postgresql" else "sqlite"
        # SQLite takes one writer at a time: threads of this process queue on this lock
        # rather than polling SQLite's busy handler; other processes still wait on that.
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
            self._write_lock = threading.Lock()
            self.engine = _sqlite_engine(parsed.database or "")
        self._writer = self.engine.execution_options(begin_immediate=True)
        # A read is one snapshot: an order and its fills read by two statements must not
        # straddle a fill another worker commits (SQLite's read transactions already are).
        self._reader = (
            self.engine.execution_options(isolation_level="REPEATABLE READ")
            if self.name == "postgresql"
            else self.engine
        )
        self._closed = False
        self._costs: Costs | None = None  # set when the paper account is on
        # Executed with many rows: SQLAlchemy sends them as multi-row inserts, compiled once.
        self._insert_orders = (
            self._insert(orders)
            .on_conflict_do_nothing(index_elements=[orders.c.idempotency_key])
            .returning(orders.c.order_id)
        )
        try:
            self._create_schema()
        except SQLAlchemyError as error:
            self.engine.dispose()
            raise StoreUnavailable(f"cannot open the {self.name} store: {_reason(error)}") from None
        self._admissions: GroupCommit[Arrival, Admission] = GroupCommit(
            self._admit_batch, MAX_BATCH, name=f"{self.name}-writer"
        )

    # -- transactions ---------------------------------------------------------------

    def _writing(self) -> AbstractContextManager[Connection]:
        """A write transaction: SQLite's BEGIN IMMEDIATE, behind this process's writers."""
        return self._transaction(self._writer, self._write_lock)

    def _reading(self) -> AbstractContextManager[Connection]:
        return self._transaction(self._reader, nullcontext())

    @contextmanager
    def _transaction(self, engine: Engine, lock: AbstractContextManager[Any]) -> Iterator[Connection]:
        try:
            with lock, engine.begin() as conn:
                yield conn
        except SQLAlchemyError as error:
            raise StoreUnavailable(
                f"The {self.name} store is unavailable ({_reason(error)}); whether a change was made is unknown: "
                "retry (an intent with the same idempotency_key)"
            ) from None

    def _lock_instrument(self, conn: Connection, instrument: Instrument) -> None:
        # SQLite: the transaction already holds the database's only write lock.
        if self.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_instrument_key(instrument))))

    def _create_schema(self) -> None:
        # Workers starting together each try this: one at a time, and each checks first.
        with self._write_lock, self._writer.begin() as conn:
            if self.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
            existing = set(inspect(conn).get_table_names())
            if schema_version.name not in existing and existing & {orders.name, fills.name, quotes.name}:
                # Tables of that name, but no version: another program's, and misreading
                # them would be worse than not starting.
                self.engine.dispose()
                raise StoreUnavailable(
                    f"the {self.name} database has tables named like this service's but no schema_version; "
                    "use an empty database"
                )
            metadata.create_all(conn)
            version = conn.execute(select(schema_version.c.version)).scalar_one_or_none()
            if conn.execute(select(trading_state.c.id).where(_STATE_ROW)).one_or_none() is None:
                conn.execute(trading_state.insert().values(id=1, state="ACTIVE", reason=None, updated_at=now_micros()))
            if version is None:
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            elif version in (1, 2):
                if version == 1:
                    self._positions_from_fills(conn)
                conn.exec_driver_sql("ALTER TABLE orders ADD COLUMN time_in_force VARCHAR(3) NOT NULL DEFAULT 'GTC'")
                conn.exec_driver_sql("ALTER TABLE orders ADD COLUMN reserve_price TEXT")
                conn.execute(schema_version.update().values(version=SCHEMA_VERSION))
            elif version != SCHEMA_VERSION:
                self.engine.dispose()
                raise StoreUnavailable(
                    f"the {self.name} database has schema version {version}; this service uses {SCHEMA_VERSION}"
                )

    # -- the store interface ----------------------------------------------------------

    async def admit(
        self, order: Order, match: Matcher, now: int, cap: int | None = None, controls: Controls | None = None
    ) -> Admission:
        if self._closed:  # shutting down: the writer takes nothing more
            raise StoreUnavailable(f"The {self.name} store is closed (the service is stopping); retry")
        # Intents that arrive while a transaction commits share the next one.
        return await self._admissions.submit(Arrival(order, match, now, cap, controls))

    def _admit_batch(self, batch: list[Waiting["Arrival", Admission]]) -> None:
        """Admit a batch in one transaction; if the database refused a value in it, admit
        each intent on its own, so one bad intent does not fail its neighbours."""
        try:
            self._admit_together(batch)
        except ValueRefused:
            if len(batch) == 1:
                raise
            for entry in batch:
                try:
                    self._admit_together([entry])
                except StoreUnavailable as alone:
                    entry.fail(alone)

    def _admit_together(self, batch: list[Waiting["Arrival", Admission]]) -> None:
        """Admit a batch of orders in one transaction: one multi-row insert whose unique
        key decides which are new, then matching of the new ones in arrival order."""
        # The first of a batch's intents with a key is the one inserted; any later one is
        # a duplicate of whichever order then owns the key.
        first: dict[str, Arrival] = {}
        for entry in batch:
            first.setdefault(entry.item.order.idempotency_key, entry.item)
        arrivals = list(first.values())
        caps = [a.cap for a in arrivals if a.cap is not None]
        cap = min(caps) if caps else None
        refused: set[str] = set()
        vetoed: dict[str, IntentRefused] = {}
        with self._writing() as conn:
            if cap is not None:
                arrivals, refused = self._within_cap(conn, arrivals, cap)
            # Sorted, so two workers locking the same instruments never deadlock.
            instruments = sorted({(a.order.exchange, a.order.symbol) for a in arrivals})
            for instrument in instruments:
                self._lock_instrument(conn, instrument)
            # Read under a share lock: a change of state waits for this batch, and a
            # batch after it sees the new state (cancel_open_orders misses no order).
            state = self._trading_state(conn, lock="share") if any(a.controls for a in arrivals) else None
            funds = self._funds(conn, {symbol for _, symbol in instruments}, [])
            latest = {instrument: self._latest_quote(conn, instrument) for instrument in instruments}
            rows = [self._order_row(a.order, passive=False) for a in arrivals]
            try:
                created = set(conn.execute(self._insert_orders, rows).scalars()) if rows else set()
            except DataError as error:  # before any matching: the orders are untouched
                raise ValueRefused(
                    f"The {self.name} store refused a value of this intent ({_reason(error)}); it was not stored"
                ) from None
            new = [a for a in arrivals if a.order.order_id in created]
            vetoed = self._match_arrivals(conn, new, latest, state, funds)
            if vetoed:  # refused after the insert that told them new: not kept, key free again
                conn.execute(orders.delete().where(orders.c.idempotency_key.in_(list(vetoed))))
            owners = {
                a.order.idempotency_key: a.order
                for a in arrivals
                if a.order.order_id in created and a.order.idempotency_key not in vetoed
            }
            taken = [key for key in first if key not in owners and key not in refused and key not in vetoed]
            if taken:
                for row in conn.execute(select(orders).where(orders.c.idempotency_key.in_(taken))).all():
                    owners[row.idempotency_key] = self._with_fills(conn, [row])[0]
        for entry in batch:
            arrival = entry.item
            key = arrival.order.idempotency_key
            if key in refused:
                entry.fail(StoreFull(cap or 0))
            elif key in vetoed:
                # Another intent of this batch with the same key, refused: this one was
                # never checked, and is not stored either.
                entry.fail(
                    vetoed[key]
                    if first[key] is arrival
                    else StoreUnavailable("An intent with this idempotency_key was refused at the same moment; retry")
                )
            elif first[key] is arrival and arrival.order.order_id in created:
                entry.succeed(Admission(arrival.order, True, arrival.executions))
            else:
                entry.succeed(Admission(owners[key], False, []))

    def _within_cap(self, conn: Connection, arrivals: list[Arrival], cap: int) -> tuple[list[Arrival], set[str]]:
        """The arrivals that fit under `cap` (in arrival order; a key already taken
        always fits: it answers with its order), and the keys of those that do not."""
        if self.name == "postgresql":
            # Every capped admission, in every worker, counts and inserts one at a time.
            # Taken before any instrument lock, and quotes never take it: no deadlock.
            conn.execute(select(func.pg_advisory_xact_lock(CAPACITY_LOCK)))
        # Sequence numbers are distinct and positive, so the highest bounds the count:
        # far from the cap, one index lookup settles it and nothing is counted.
        highest = conn.execute(select(func.max(orders.c.seq))).scalar_one_or_none() or 0
        if highest + len(arrivals) <= cap:
            return arrivals, set()
        room = cap - int(conn.execute(select(func.count()).select_from(orders)).scalar_one())
        keys = [a.order.idempotency_key for a in arrivals]
        taken = select(orders.c.idempotency_key).where(orders.c.idempotency_key.in_(keys))
        existing = set(conn.execute(taken).scalars())
        admitted: list[Arrival] = []
        refused: set[str] = set()
        for arrival in arrivals:
            key = arrival.order.idempotency_key
            if key in existing or room > 0:
                admitted.append(arrival)
                room -= key not in existing
            else:
                refused.add(key)
        return admitted, refused

    def _match_arrivals(
        self,
        conn: Connection,
        arrivals: list[Arrival],
        latest: dict[Instrument, Quote | None],
        state: TradingState | None,
        funds: Funds | None,
    ) -> dict[str, IntentRefused]:
        """Vet just-inserted orders and match them against their instruments' quotes,
        in arrival order (each takes what the one before left of a quote's size, and
        is vetted with what the ones before it hold), and write it. Returns the
        refused ones by key; the caller removes them."""
        executions: list[Execution] = []
        moved: dict[Instrument, Quote] = {}  # quotes whose sizes fills took from
        passive: list[str] = []
        expired: list[Order] = []
        vetoed: dict[str, IntentRefused] = {}
        exposures: dict[Instrument, Exposure] = {}  # read when first needed, then kept up to date here
        batch = {arrival.order.order_id for arrival in arrivals}

        def exposure_of(instrument: Instrument) -> Exposure:
            if instrument not in exposures:
                exposures[instrument] = self._exposure(conn, instrument, batch)
            return exposures[instrument]

        for arrival in arrivals:
            order = arrival.order
            instrument = (order.exchange, order.symbol)
            quote = latest[instrument]
            refusal = _vet(arrival, state, quote, partial(exposure_of, instrument), funds)
            if refusal is not None:
                vetoed[order.idempotency_key] = refusal
                continue
            if quote is not None and takes_on_arrival(order, quote, arrival.match):
                arrival.executions, left = execute(quote, [(order, True)], arrival.match, arrival.now, funds)
                latest[instrument] = left
                if arrival.executions:
                    executions += arrival.executions
                    moved[instrument] = left
            if expire_unfilled(order, arrival.now) is not None:
                expired.append(order)
                if funds is not None:
                    funds.ended(order)
            elif order.is_open and rests_passively(order, quote):
                passive.append(order.order_id)
            if instrument in exposures:
                exposures[instrument].arrived(order.side, order.filled_qty, remaining(order), order.is_open)
        self._write_matched(conn, executions, moved, passive, expired)
        if funds is not None:
            self._keep_funds(conn, funds, [a.order for a in arrivals if a.order.number in funds.reserve_prices])
        return vetoed

    def _write_matched(
        self,
        conn: Connection,
        executions: list[Execution],
        moved: dict[Instrument, Quote],
        passive: list[str],
        expired: list[Order],
    ) -> None:
        """What matching arrivals did: fills, expiries, quotes' sizes taken, and the
        orders that now rest passively."""
        if executions:
            self._record_fills(conn, executions)
        if expired:
            conn.execute(_UPDATE_FILLED, [_order_state(order) for order in expired])
        for instrument, left in moved.items():
            self._keep_quote(conn, instrument, left)
        if passive:
            conn.execute(update(orders).where(orders.c.order_id.in_(passive)).values(passive=True))

    def _exposure(self, conn: Connection, instrument: Instrument, batch: set[str]) -> Exposure:
        """The instrument's position and open orders as committed (the caller holds its
        lock), leaving out `batch`: orders just inserted and not yet vetted."""
        exchange, symbol = instrument
        row = conn.execute(
            select(positions.c.qty).where(positions.c.exchange == exchange, positions.c.symbol == symbol)
        ).one_or_none()
        held = Exposure(position=Decimal(0) if row is None else as_decimal(Fraction(row.qty)))
        for order_id, side, qty, filled in conn.execute(
            select(orders.c.order_id, orders.c.side, orders.c.qty, orders.c.filled_qty).where(
                orders.c.exchange == exchange, orders.c.symbol == symbol, _open
            )
        ):
            if order_id not in batch:
                held.opened(side, EXACT.subtract(exact(qty), Decimal(filled)))
        return held

    def open_account(self, start: dict[str, Decimal], assets: set[str], costs: Costs) -> None:
        """Rows for the assets not yet in the table (a database opened again keeps its
        balances: they are the fills' history, not settings)."""
        with self._writing() as conn:
            for asset in sorted(assets | set(start)):
                amount = str(start.get(asset, Decimal(0)))
                conn.execute(
                    self._insert(balances)
                    .values(asset=asset, start=amount, total=amount, reserved="0")
                    .on_conflict_do_nothing(index_elements=[balances.c.asset])
                )
        self._costs = costs

    def balances(self) -> dict[str, Holding]:
        if self._costs is None:
            return {}
        with self._reading() as conn:
            return {row.asset: _holding(row) for row in conn.execute(select(balances).order_by(balances.c.asset))}

    def _funds(self, conn: Connection, symbols: set[str], rows: Sequence[Row[Any]]) -> Funds | None:
        """The account's holdings of the assets `symbols` trade, locked for this
        transaction (in asset order: no two transactions wait on each other), and the
        reserve prices of the order `rows` that have one. None when the account is off."""
        if self._costs is None:
            return None
        assets = sorted({asset for symbol in symbols for asset in assets_of(symbol)})
        query = select(balances).where(balances.c.asset.in_(assets)).order_by(balances.c.asset)
        held = {row.asset: _holding(row) for row in conn.execute(query.with_for_update())}
        prices = {number_of(row.order_id): Decimal(row.reserve_price) for row in rows if row.reserve_price is not None}
        return Funds(Account(held, self._costs), prices)

    def _keep_funds(self, conn: Connection, funds: Funds, priced: Sequence[Order] = ()) -> None:
        """Write the holdings back, and the reserve prices of the `priced` new orders."""
        conn.execute(
            update(balances).where(balances.c.asset == bindparam("b_asset")),
            [
                {"b_asset": asset, "total": str(held.total), "reserved": str(held.reserved)}
                for asset, held in funds.account.holdings.items()
            ],
        )
        if priced:
            conn.execute(
                update(orders).where(orders.c.order_id == bindparam("b_order_id")),
                [
                    {"b_order_id": order.order_id, "reserve_price": str(funds.reserve_prices[order.number])}
                    for order in priced
                ],
            )

    def _trading_state(self, conn: Connection, *, lock: str | None = None) -> TradingState:
        """The state row; `lock` "share" or "update" locks it (PostgreSQL; SQLite's
        write transactions already hold the only write lock)."""
        query = select(trading_state).where(_STATE_ROW)
        if lock is not None and self.name == "postgresql":
            query = query.with_for_update(read=lock == "share")
        row = conn.execute(query).one()
        return TradingState(row.state, row.reason, row.updated_at)

    def trading_state(self) -> TradingState:
        with self._reading() as conn:
            return self._trading_state(conn)

    def set_trading_state(
        self, state: TradingState, *, cancel_open: bool = False, only_stricter: bool = False
    ) -> StateChange:
        with self._writing() as conn:
            # FOR UPDATE: waits for the batches reading the state under a share lock.
            before = self._trading_state(conn, lock="update")
            if only_stricter and STRICTNESS[state.state] <= STRICTNESS[before.state]:
                return StateChange(before, before, [])
            conn.execute(
                update(trading_state)
                .where(_STATE_ROW)
                .values(state=state.state, reason=state.reason, updated_at=state.updated_at)
            )
            canceled: list[tuple[Order, str]] = []
            if cancel_open:
                rows = conn.execute(select(orders).where(_open).order_by(orders.c.seq).with_for_update()).all()
                if rows:
                    conn.execute(update(orders).where(_open).values(status="CANCELED", updated_at=state.updated_at))
                funds = self._funds(conn, {row.symbol for row in rows}, rows) if rows else None
                for order in self._with_fills(conn, rows):
                    if funds is not None:
                        funds.ended(order)
                    canceled.append((order, order.status))
                    order.status, order.updated_at = "CANCELED", state.updated_at
                if funds is not None:
                    self._keep_funds(conn, funds)
        return StateChange(before, state, canceled)

    def add_quote(self, instrument: Instrument, quote: Quote, match: Matcher, now: int) -> list[Execution]:
        exchange, symbol = instrument
        with self._writing() as conn:
            self._lock_instrument(conn, instrument)
            rows = conn.execute(
                select(orders)
                .where(orders.c.exchange == exchange, orders.c.symbol == symbol, _open, _reached_by(quote))
                .order_by(orders.c.accepted_at, orders.c.seq)
                .with_for_update()
            ).all()
            funds = self._funds(conn, {symbol}, rows)
            executions, left = execute(quote, [(_order(row), not row.passive) for row in rows], match, now, funds)
            self._keep_quote(conn, instrument, left)
            if executions:
                self._record_fills(conn, executions)
            if funds is not None:
                self._keep_funds(conn, funds)
            # The LIMIT orders still waiting to take that this quote passed by rest
            # passively from now on.
            conn.execute(
                update(orders)
                .where(
                    orders.c.exchange == exchange,
                    orders.c.symbol == symbol,
                    _open,
                    orders.c.type == "LIMIT",
                    not_(orders.c.passive),
                    not_(_reached_by(quote)),
                )
                .values(passive=True)
            )
        return executions

    def cancel(self, order_id: str, now: int) -> tuple[Order, str] | None:
        if parse_order_id(order_id) is None:
            return None
        with self._writing() as conn:
            row = conn.execute(select(orders).where(orders.c.order_id == order_id).with_for_update()).one_or_none()
            if row is None:
                return None
            order = self._with_fills(conn, [row])[0]
            if row.status in OPEN_STATUSES:
                conn.execute(
                    update(orders).where(orders.c.order_id == order_id).values(status="CANCELED", updated_at=now)
                )
                funds = self._funds(conn, {row.symbol}, [row])
                if funds is not None:
                    funds.ended(order)
                    self._keep_funds(conn, funds)
        if row.status in OPEN_STATUSES:
            order.status, order.updated_at = "CANCELED", now
        return order, row.status

    def get(self, order_id: str) -> Order | None:
        if parse_order_id(order_id) is None:
            return None
        with self._reading() as conn:
            return self._one(conn, orders.c.order_id == order_id)

    def get_by_key(self, idempotency_key: str) -> Order | None:
        with self._reading() as conn:
            return self._one(conn, orders.c.idempotency_key == idempotency_key)

    def newest_first(self, before: int | None, limit: int, keep: OrderFilter) -> tuple[list[Order], int | None]:
        conditions = [
            column == value
            for column, value in (
                (orders.c.status, keep.status),
                (orders.c.exchange, keep.exchange),
                (orders.c.symbol, keep.symbol),
                (orders.c.side, keep.side),
                (orders.c.idempotency_key, keep.idempotency_key),
            )
            if value is not None
        ]
        if before is not None:
            conditions.append(orders.c.seq < before)
        with self._reading() as conn:
            # One row more than the page: whether an older one is left.
            rows = conn.execute(select(orders).where(*conditions).order_by(orders.c.seq.desc()).limit(limit + 1)).all()
            page = rows[:limit]
            found = self._with_fills(conn, page)
        return found, (page[-1].seq if len(rows) > limit else None)

    def count(self) -> int:
        with self._reading() as conn:
            return int(conn.execute(select(func.count()).select_from(orders)).scalar_one())

    def count_by_status(self) -> dict[str, int]:
        with self._reading() as conn:
            rows = conn.execute(select(orders.c.status, func.count()).group_by(orders.c.status)).all()
        return {status: int(count) for status, count in rows}

    def positions(self) -> list[PositionView]:
        with self._reading() as conn:
            rows = conn.execute(select(positions).order_by(positions.c.exchange, positions.c.symbol)).all()
            latest = {(row.exchange, row.symbol): _quote(row) for row in conn.execute(select(quotes)).all()}
        return [
            PositionView(row.exchange, row.symbol, _position(row), latest.get((row.exchange, row.symbol)))
            for row in rows
        ]

    def _positions_from_fills(self, conn: Connection) -> None:
        """Upgrade from version 1: every instrument's position, from its fills in order."""
        rows = conn.execute(
            select(orders.c.exchange, orders.c.symbol, orders.c.side, fills.c.qty, fills.c.price, fills.c.fee)
            .join_from(fills, orders, fills.c.order_id == orders.c.order_id)
            .order_by(fills.c.seq)
        ).all()
        held: dict[Instrument, Position] = {}
        for row in rows:
            instrument = (row.exchange, row.symbol)
            held[instrument] = apply_fill(
                held.get(instrument, Position()), row.side, Decimal(row.qty), Decimal(row.price), Decimal(row.fee)
            )
        for instrument, position in held.items():
            self._keep_position(conn, instrument, position)

    def _keep_position(self, conn: Connection, instrument: Instrument, position: Position) -> None:
        values = {
            "qty": str(position.qty),
            "cost": str(position.cost),
            "realized_pnl": str(position.realized_pnl),
            "fees": str(position.fees),
        }
        self._upsert_by_instrument(conn, positions, instrument, values)

    def _upsert_by_instrument(
        self, conn: Connection, table: Table, instrument: Instrument, values: dict[str, Any]
    ) -> None:
        """Insert or replace `table`'s row for `instrument` (its key: exchange, symbol)."""
        statement = self._insert(table).values(exchange=instrument[0], symbol=instrument[1], **values)
        conn.execute(statement.on_conflict_do_update(index_elements=[table.c.exchange, table.c.symbol], set_=values))

    def close(self) -> None:
        self._closed = True
        self._admissions.close()
        self.engine.dispose()

    # -- rows -------------------------------------------------------------------------

    @staticmethod
    def _order_row(order: Order, *, passive: bool) -> dict[str, Any]:
        return {
            "order_id": order.order_id,
            "idempotency_key": order.idempotency_key,
            "exchange": order.exchange,
            "symbol": order.symbol,
            "side": order.side,
            "type": order.type,
            "time_in_force": order.time_in_force,
            "qty": order.qty,
            "limit_price": order.limit_price,
            "client_ts": order.client_ts,
            "accepted_at": order.accepted_at,
            "updated_at": order.updated_at,
            "status": order.status,
            "filled_qty": str(order.filled_qty),
            "passive": passive,
        }

    def _one(self, conn: Connection, condition: Any) -> Order | None:
        row = conn.execute(select(orders).where(condition)).one_or_none()
        return None if row is None else self._with_fills(conn, [row])[0]

    @staticmethod
    def _with_fills(conn: Connection, rows: Sequence[Row[Any]]) -> list[Order]:
        """Orders from their rows, each with its fills (one query for all of them)."""
        filled = [row.order_id for row in rows if Decimal(row.filled_qty) != 0]
        by_order: dict[str, list[StoredFill]] = {}
        if filled:
            for fill_row in conn.execute(select(fills).where(fills.c.order_id.in_(filled)).order_by(fills.c.seq)):
                by_order.setdefault(fill_row.order_id, []).append(_fill(fill_row))
        return [_order(row, by_order.get(row.order_id)) for row in rows]

    @staticmethod
    def _latest_quote(conn: Connection, instrument: Instrument) -> Quote | None:
        exchange, symbol = instrument
        return _quote(conn.execute(LATEST_QUOTE, {"exchange": exchange, "symbol": symbol}).one_or_none())

    def _keep_quote(self, conn: Connection, instrument: Instrument, quote: Quote) -> None:
        values = {
            "bid": str(quote.bid),
            "ask": str(quote.ask),
            "bid_size": _text(quote.bid_size),
            "ask_size": _text(quote.ask_size),
        }
        self._upsert_by_instrument(conn, quotes, instrument, values)

    def _record_fills(self, conn: Connection, executions: Iterable[Execution]) -> None:
        """Store fills, their orders' new state and their instruments' positions; the
        caller holds the instruments' locks, so positions move one transaction at a time."""
        done = list(executions)
        conn.execute(
            fills.insert(),
            [
                {
                    "fill_id": e.fill.fill_id,
                    "order_id": e.order.order_id,
                    "qty": str(e.fill.qty),
                    "price": str(e.fill.price),
                    "fee": str(e.fill.fee),
                    "liquidity": e.fill.liquidity,
                    "ts": e.fill.ts,
                }
                for e in done
            ],
        )
        # An order filled more than once by one quote: its last state is what counts.
        final = {e.order.order_id: e.order for e in done}
        conn.execute(_UPDATE_FILLED, [_order_state(order) for order in final.values()])
        by_instrument: dict[Instrument, list[Execution]] = {}
        for e in done:
            by_instrument.setdefault((e.order.exchange, e.order.symbol), []).append(e)
        for (exchange, symbol), moved in by_instrument.items():
            row = conn.execute(
                select(positions).where(positions.c.exchange == exchange, positions.c.symbol == symbol)
            ).one_or_none()
            position = Position() if row is None else _position(row)
            for e in moved:  # in the order they were applied
                position = apply_fill(position, e.order.side, e.fill.qty, e.fill.price, e.fill.fee)
            self._keep_position(conn, (exchange, symbol), position)


def _sqlite_engine(path: str) -> Engine:
    # check_same_thread off: connections move between the service's worker threads.
    # The busy timeout is how long a writer waits for another process's write.
    engine = create_engine(
        f"sqlite+pysqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": 30},
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
