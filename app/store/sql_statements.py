"""The SQL store's statements on its hot paths, each written once with SQLAlchemy Core and
compiled once for the store's database (see `prepared`)."""

from typing import Any

from sqlalchemy import BigInteger, Integer, Select, and_, bindparam, func, not_, or_, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from app.core.vocabulary import OrderType, Side, TimeInForce
from app.store.base import OrderFilter
from app.store.prepared import Prepared
from app.store.schema import OPEN, events, fills, journal_head, orders, positions, queues, quotes, trading_state

_open = orders.c.status.in_(OPEN)
_OF_INSTRUMENT = and_(orders.c.exchange == bindparam("exchange"), orders.c.symbol == bindparam("symbol"))
# SQL for `Reach.reaches`: a quote reaches MARKET orders, BUY limits at or above its
# ask and SELL limits at or below its bid (floats, as the core compares them).
_REACHED_BY = or_(
    orders.c.type == OrderType.MARKET.value,
    and_(orders.c.side == Side.BUY.value, orders.c.limit_price >= bindparam("r_ask")),
    and_(orders.c.side == Side.SELL.value, orders.c.limit_price <= bindparam("r_bid")),
)
# `orders.queue_place` of a LIMIT order that rests before it reached the venue.
ARRIVING = "arriving"
# The columns of an order's row the store writes (its seq is the database's).
ORDER_COLUMNS = [column.key for column in orders.columns if column.key != "seq"]
FILL_COLUMNS = [
    "fill_id", "order_id", "qty", "price", "fee", "liquidity", "ts",
    "source", "data_ts", "level_price", "level_size", "slippage_bps", "fee_bps", "queue_ahead",
]  # fmt: skip
EVENT_COLUMNS = [column.key for column in events.columns]

# The columns a listing filters on, in the order a listing's shape names them.
_FILTERED = (orders.c.exchange, orders.c.symbol, orders.c.side, orders.c.idempotency_key)


class Statements:
    """What the SQL store reads and writes most, compiled for `dialect`."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        # An order with its fills: one statement (see `with_fills_of`).
        self.order_by_id = Prepared(
            with_fills_of(select(orders).where(orders.c.order_id == bindparam("order_id"))), dialect
        )
        self.order_by_key = Prepared(
            with_fills_of(select(orders).where(orders.c.idempotency_key == bindparam("key"))), dialect
        )
        # The fills of some orders with their journal seqs, oldest first.
        self.fills_of = Prepared.expanding(
            select(fills, events.c.seq.label("event_seq"))
            .outerjoin(events, events.c.fill_id == fills.c.fill_id)
            .where(fills.c.order_id.in_(bindparam("order_ids", expanding=True)))
            .order_by(fills.c.seq),
            dialect,
            "order_ids",
        )
        # Each position with its instrument's latest quote (bid None: no quote yet).
        self.positions = Prepared(
            select(positions, quotes.c.bid, quotes.c.ask, quotes.c.bid_size, quotes.c.ask_size)
            .select_from(
                positions.outerjoin(
                    quotes, and_(quotes.c.exchange == positions.c.exchange, quotes.c.symbol == positions.c.symbol)
                )
            )
            .order_by(positions.c.exchange, positions.c.symbol),
            dialect,
        )
        self.quote_times = Prepared(select(quotes.c.exchange, quotes.c.symbol, quotes.c.ts), dialect)
        state = select(trading_state).where(trading_state.c.id == 1)
        self.trading_state = Prepared(state, dialect)
        # Read under a share lock (PostgreSQL; SQLite's writers hold its only write lock).
        self.trading_state_shared = Prepared(state.with_for_update(read=True), dialect)
        # -- what the writer reads and writes in each batch
        self.latest_quote = Prepared(
            select(quotes).where(quotes.c.exchange == bindparam("exchange"), quotes.c.symbol == bindparam("symbol")),
            dialect,
        )
        self.queues = Prepared(
            select(queues).where(queues.c.exchange == bindparam("exchange"), queues.c.symbol == bindparam("symbol")),
            dialect,
        )
        # The resting LIMIT orders of one side a print meets (at or better than its
        # price), locked against a cancel meanwhile; the core puts them in priority.
        self.met_by_trade = Prepared(
            select(orders)
            .where(
                _OF_INSTRUMENT,
                _open,
                orders.c.type == OrderType.LIMIT.value,
                orders.c.side == bindparam("t_side"),
                or_(
                    and_(orders.c.side == Side.BUY.value, orders.c.limit_price >= bindparam("t_price")),
                    and_(orders.c.side == Side.SELL.value, orders.c.limit_price <= bindparam("t_price")),
                ),
            )
            .order_by(orders.c.accepted_at, orders.c.seq)
            .with_for_update(),
            dialect,
        )
        # The LIMIT orders still to reach the venue (a latency) that data stamped later
        # than `arrived_by` past their acceptance finds there, in acceptance order.
        self.arriving = Prepared(
            select(orders)
            .where(
                _OF_INSTRUMENT,
                _open,
                orders.c.queue_place == ARRIVING,
                orders.c.accepted_at <= bindparam("arrived_by"),
            )
            .order_by(orders.c.accepted_at, orders.c.seq),
            dialect,
        )
        self.position = Prepared(
            select(positions).where(
                positions.c.exchange == bindparam("exchange"), positions.c.symbol == bindparam("symbol")
            ),
            dialect,
        )
        # An instrument's open orders, as its exposure counts them.
        self.open_sizes = Prepared(
            select(orders.c.side, orders.c.qty, orders.c.filled_qty).where(_OF_INSTRUMENT, _open), dialect
        )
        # The orders that own some keys, with their fills.
        self.owners = Prepared.expanding(
            with_fills_of(select(orders).where(orders.c.idempotency_key.in_(bindparam("keys", expanding=True)))),
            dialect,
            "keys",
        )
        self.highest_seq = Prepared(select(func.max(orders.c.seq).label("seq")), dialect)
        # The open orders a quote reaches, oldest first, locked against a cancel meanwhile;
        # and an IOC or FOK waiting for its first data (a latency) whatever its price.
        self.reached = Prepared(
            select(orders)
            .where(
                _OF_INSTRUMENT,
                _open,
                or_(_REACHED_BY, and_(not_(orders.c.passive), orders.c.time_in_force != TimeInForce.GTC.value)),
            )
            .order_by(orders.c.accepted_at, orders.c.seq)
            .with_for_update(),
            dialect,
        )
        # The LIMIT orders still waiting to take that a quote passed by (those that had
        # reached the venue by its time: accepted by `arrived_by`): passive from then on.
        self.pass_by = Prepared(
            update(orders)
            .where(
                _OF_INSTRUMENT,
                _open,
                orders.c.type == OrderType.LIMIT.value,
                not_(orders.c.passive),
                not_(_REACHED_BY),
                orders.c.accepted_at <= bindparam("arrived_by"),
            )
            .values(passive=True),
            dialect,
        )
        insert: Any = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        # A key another worker took meanwhile inserts nothing: the writer counts the rows.
        self.insert_orders = Prepared(
            insert(orders)
            .values({name: bindparam(name) for name in ORDER_COLUMNS})
            .on_conflict_do_nothing(index_elements=[orders.c.idempotency_key]),
            dialect,
        )
        self.insert_fills = Prepared(fills.insert().values({name: bindparam(name) for name in FILL_COLUMNS}), dialect)
        self.set_queue_place = Prepared(
            update(orders)
            .where(orders.c.order_id == bindparam("b_order_id"))
            .values(queue_place=bindparam("b_queue_place")),
            dialect,
        )
        self.update_progress = Prepared(
            update(orders)
            .where(orders.c.order_id == bindparam("b_order_id"))
            .values(
                status=bindparam("b_status"), filled_qty=bindparam("b_filled_qty"), updated_at=bindparam("b_updated_at")
            ),
            dialect,
        )
        self.upsert_quote = Prepared(
            _upsert(insert, quotes, ["bid", "ask", "bid_size", "ask_size", "ts", "depth"]), dialect
        )
        self.upsert_queues = Prepared(_upsert(insert, queues, ["trade_ts", "levels"]), dialect)
        self.upsert_position = Prepared(_upsert(insert, positions, ["qty", "cost", "realized_pnl", "fees"]), dialect)
        # -- the journal
        # Taking the seqs locks the head row until the transaction ends: writers take
        # their seqs one at a time in commit order, and a rollback takes none.
        self.take_seqs = Prepared(
            update(journal_head)
            .where(journal_head.c.id == 1)
            .values(seq=journal_head.c.seq + bindparam("count", type_=Integer))
            .returning(journal_head.c.seq),
            dialect,
        )
        self.insert_events = Prepared(
            events.insert().values({name: bindparam(name) for name in EVENT_COLUMNS}), dialect
        )
        self.head = Prepared(select(journal_head.c.seq).where(journal_head.c.id == 1), dialect)
        # PostgreSQL: listeners in every worker hear of the new head at the commit.
        self.notify = Prepared(
            select(func.pg_notify(bindparam("channel"), bindparam("payload")).label("notified")), dialect
        )
        # PostgreSQL: a lock held until the transaction ends (an instrument's, say).
        self.lock = Prepared(
            select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger)).label("locked")), dialect
        )
        # One compiled listing per shape: which filters it has, how many statuses, and
        # whether it starts below a cursor (a few dozen shapes at most).
        self._listings: dict[tuple[bool, ...] | tuple[object, ...], Prepared] = {}

    def listing(self, keep: OrderFilter, before: int | None, limit: int) -> tuple[Prepared, dict[str, object]]:
        """The statement for `keep`'s page of orders below seq `before`, newest first, at
        most `limit`, with their fills (`with_fills_of`), and its parameters."""
        values = (keep.exchange, keep.symbol, keep.side, keep.idempotency_key)
        statuses = None if keep.statuses is None else sorted(keep.statuses)
        shape = (*(value is not None for value in values), before is not None, len(statuses or ()))
        prepared = self._listings.get(shape)
        if prepared is None:
            prepared = self._listings[shape] = Prepared(with_fills_of(listing(*shape)), self._dialect)
        params: dict[str, object] = {f"f{i}": value for i, value in enumerate(values) if value is not None}
        params.update({f"s{i}": status for i, status in enumerate(statuses or ())})
        params["limit"] = limit
        if before is not None:
            params["before"] = before
        return prepared, params


def with_fills_of(page: Select[Any]) -> Select[Any]:
    """The rows of `page` (orders, newest first), each once per fill it has (oldest
    first) or once with none: the fill's columns named `fill_<column>`, and its journal
    entry's seq `fill_event_seq`, all None for an order without fills. One statement
    reads one snapshot: a PostgreSQL read needs no transaction (no BEGIN and COMMIT
    round trips), and the orders and their fills cannot straddle another worker's fill."""
    chosen = page.subquery("page")
    return (
        select(
            chosen,
            *(fills.c[name].label(f"fill_{name}") for name in FILL_COLUMNS if name != "order_id"),
            events.c.seq.label("fill_event_seq"),
        )
        .select_from(
            chosen.outerjoin(fills, fills.c.order_id == chosen.c.order_id).outerjoin(
                events, events.c.fill_id == fills.c.fill_id
            )
        )
        .order_by(chosen.c.seq.desc(), fills.c.seq)
    )


def _upsert(insert: Any, table: Any, columns: list[str]) -> Any:
    """An upsert of `table`'s row per instrument (its key: exchange, symbol), its values
    bound as `u_<column>`."""
    keys = ["exchange", "symbol", *columns]
    statement = insert(table).values({name: bindparam(f"u_{name}") for name in keys})
    return statement.on_conflict_do_update(
        index_elements=[table.c.exchange, table.c.symbol], set_={name: statement.excluded[name] for name in columns}
    )


def listing(*shape: object) -> Select[object]:
    """A listing's statement for its shape (see `Statements.listing`). A status filter
    reads the (status, seq) index: one range per status, newest first, each stopped at
    `limit` rows, so a page of a rare status reads that page, not every newer order;
    several statuses are merged from their ranges."""
    *filtered, has_before, status_count = shape
    conditions = [
        column == bindparam(f"f{i}") for i, (column, on) in enumerate(zip(_FILTERED, filtered, strict=True)) if on
    ]
    if has_before:
        conditions.append(orders.c.seq < bindparam("before"))
    newest = orders.c.seq.desc()
    limit = bindparam("limit", type_=Integer)
    assert isinstance(status_count, int)
    if status_count <= 1:
        if status_count:
            conditions.append(orders.c.status == bindparam("s0"))
        return select(orders).where(*conditions).order_by(newest).limit(limit)
    ranges = [
        select(orders.c.seq)
        .where(*conditions, orders.c.status == bindparam(f"s{i}"))
        .order_by(newest)
        .limit(limit)
        .subquery()
        for i in range(status_count)
    ]
    seqs = union_all(*(select(part.c.seq) for part in ranges))
    return select(orders).where(orders.c.seq.in_(seqs)).order_by(newest).limit(limit)
