"""The SQL store's event journal: a step's events appended as the last writes of its
transaction, entries read back as of their events, and how a process learns that
another one appended (PostgreSQL: LISTEN/NOTIFY; SQLite: a short poll)."""

from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal
from typing import Any

import anyio
from anyio import to_thread
from sqlalchemy import URL, Connection, Row, or_, select

from app.core.controls import TradingState
from app.core.events import Event, OrderFilled
from app.core.journal import Entry, EntryFilter, EventType, entry_of, order_as_of
from app.core.order import Order, StoredFill
from app.core.positions import Position
from app.core.values import ZERO
from app.core.vocabulary import CancelReason, OrderStatus, TradingStateName
from app.store.journal import JournalPage
from app.store.schema import events, fills, orders
from app.store.sql_rows import fill_of, order_of, with_fills
from app.store.sql_statements import Statements

CHANNEL = "execution_journal"  # PostgreSQL NOTIFY channel: the payload is the new head
# Seconds between looks at the head when no notification can come (SQLite), and the
# longest a PostgreSQL listener trusts notifications alone (a safety net: one missed
# while its connection was being replaced is then found).
POLL_SECONDS = 0.02
LISTEN_RECHECK_SECONDS = 1.0


def append(conn: Connection, steps_events: Sequence[Event], statements: Statements, *, notify: bool) -> None:
    """Journal `steps_events` in `conn`'s transaction, as its last writes (the head row
    stays locked until the commit). With `notify`, listeners hear of it at the commit."""
    if not steps_events:
        return
    head = int(statements.take_seqs.rows(conn, {"count": len(steps_events)})[0].seq)
    first = head - len(steps_events) + 1
    rows = []
    for seq, event in enumerate(steps_events, start=first):
        if isinstance(event, OrderFilled):
            event.fill.seq = seq
        rows.append(_row(entry_of(seq, event)))
    statements.insert_events.run_many(conn, rows, counted=False)
    if notify:
        statements.notify.run(conn, {"channel": CHANNEL, "payload": str(head)}, counted=False)


def head(conn: Connection, statements: Statements) -> int:
    return int(statements.head.rows(conn)[0].seq)


def read(conn: Connection, after: int, limit: int, keep: EntryFilter, statements: Statements) -> JournalPage:
    """Entries after `after` that `keep` accepts (filtered in SQL), in one snapshot."""
    conditions: list[Any] = [events.c.seq > after]
    if keep.types is not None:
        conditions.append(events.c.type.in_(sorted(keep.types)))
    for column, wanted in ((events.c.exchange, keep.exchange), (events.c.symbol, keep.symbol)):
        if wanted is not None:
            conditions.append(or_(column == wanted, events.c.order_id.is_(None)))
    if keep.order_id is not None:
        conditions.append(or_(events.c.order_id == keep.order_id, events.c.order_id.is_(None)))
    rows = conn.execute(select(events).where(*conditions).order_by(events.c.seq).limit(limit)).all()
    newest = head(conn, statements)
    ids = sorted({row.order_id for row in rows if row.order_id is not None})
    by_id = {
        order.order_id: order
        for order in with_fills(
            conn, conn.execute(select(orders).where(orders.c.order_id.in_(ids))).all(), statements.fills_of
        )
    }
    return JournalPage([_entry(row, by_id) for row in rows], 1, newest)


def fills_after(conn: Connection, after: int, limit: int) -> list[tuple[Order, StoredFill]]:
    """Fills whose entries' seqs are > `after`, oldest first, each with its order."""
    entries = conn.execute(
        select(events.c.seq, events.c.fill_id)
        .where(events.c.seq > after, events.c.fill_id.is_not(None))
        .order_by(events.c.seq)
        .limit(limit)
    ).all()
    if not entries:
        return []
    seq_of = {row.fill_id: row.seq for row in entries}
    fill_rows = conn.execute(select(fills).where(fills.c.fill_id.in_(list(seq_of)))).all()
    order_ids = sorted({row.order_id for row in fill_rows})
    by_id = {
        row.order_id: order_of(row) for row in conn.execute(select(orders).where(orders.c.order_id.in_(order_ids)))
    }
    found = [(by_id[row.order_id], fill_of(row, seq_of[row.fill_id])) for row in fill_rows]
    found.sort(key=lambda pair: pair[1].seq or 0)
    return found


def listen_conninfo(url: URL) -> str:
    """libpq's connection string for the store's URL (its query's options included:
    libpq does not read a `+` in a URI as a space, as SQLAlchemy writes it)."""
    from psycopg.conninfo import make_conninfo  # noqa: PLC0415 (PostgreSQL stores only)

    arguments = url.translate_connect_args(username="user", database="dbname")
    return make_conninfo("", **arguments, **{key: str(value) for key, value in url.query.items()})


async def follow_postgresql(conninfo: str, newest: Callable[[], int]) -> AsyncIterator[int]:
    """The head, each time another process may have moved it: on each NOTIFY, and at
    least every LISTEN_RECHECK_SECONDS (reconnecting if the connection is lost; -1, for
    "unknown, look", while it cannot)."""
    import psycopg  # noqa: PLC0415 (the driver SQLAlchemy already loaded for this store)

    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                # Listening now: anything committed before is found by reading the head.
                yield await to_thread.run_sync(newest)
                while True:
                    async for note in conn.notifies(timeout=LISTEN_RECHECK_SECONDS):
                        yield int(note.payload)
                    yield await to_thread.run_sync(newest)
        except psycopg.Error:
            # No listening connection: say so (the follower reads the head when it can)
            # and try again in a moment.
            await anyio.sleep(LISTEN_RECHECK_SECONDS)
            yield -1


async def follow_by_polling(newest: Callable[[], int]) -> AsyncIterator[int]:
    """The head, each time it moved, looked at every POLL_SECONDS."""
    last = -1
    while True:
        current = await to_thread.run_sync(newest)
        if current != last:
            last = current
            yield current
        await anyio.sleep(POLL_SECONDS)


def _row(entry: Entry) -> dict[str, Any]:
    order, position, state, previous = entry.order, entry.position, entry.trading_state, entry.previous_state
    return {
        "seq": entry.seq,
        "type": entry.type.value,
        "ts": entry.ts,
        "order_id": None if order is None else order.order_id,
        "exchange": None if order is None else order.exchange,
        "symbol": None if order is None else order.symbol,
        "status": None if order is None else order.status.value,
        "filled_qty": None if order is None else str(order.filled_qty),
        "fill_id": None if entry.fill is None else entry.fill.fill_id,
        "position_qty": None if position is None else str(position.qty),
        "position_cost": None if position is None else str(position.cost),
        "position_realized_pnl": None if position is None else str(position.realized_pnl),
        "position_fees": None if position is None else str(position.fees),
        "reason": None if entry.reason is None else entry.reason.value,
        "detail": entry.detail,
        "state": None if state is None else state.state.value,
        "state_reason": None if state is None else state.reason,
        "state_updated_at": None if state is None else state.updated_at,
        "previous_state": None if previous is None else previous.state.value,
        "previous_reason": None if previous is None else previous.reason,
        "previous_updated_at": None if previous is None else previous.updated_at,
        "canceled_orders": entry.canceled_orders,
    }


def _entry(row: Row[Any], by_id: dict[str, Order]) -> Entry:
    """An entry from its row, its order shown as of the event: the status and filled
    quantity the row recorded, and the fills up to the event's."""
    kind = EventType(row.type)
    if kind == EventType.TRADING_STATE:
        return Entry(
            row.seq,
            kind,
            row.ts,
            trading_state=TradingState(TradingStateName(row.state), row.state_reason, row.state_updated_at),
            previous_state=TradingState(
                TradingStateName(row.previous_state), row.previous_reason, row.previous_updated_at
            ),
            canceled_orders=row.canceled_orders,
        )
    order = by_id[row.order_id]
    status = OrderStatus(row.status)
    filled = Decimal(row.filled_qty)
    if kind == EventType.NEW:
        return Entry(row.seq, kind, row.ts, order=order_as_of(order, status, ZERO, [], row.ts))
    if kind in (EventType.FILL, EventType.PARTIAL_FILL):
        upto = next(index for index, fill in enumerate(order.fills) if fill.fill_id == row.fill_id) + 1
        position = (
            None
            if row.position_qty is None
            else Position(
                Decimal(row.position_qty),
                Decimal(row.position_cost),
                Decimal(row.position_realized_pnl),
                Decimal(row.position_fees),
            )
        )
        return Entry(
            row.seq,
            kind,
            row.ts,
            order=order_as_of(order, status, filled, order.fills[:upto], row.ts),
            fill=order.fills[upto - 1],
            position=position,
        )
    return Entry(
        row.seq,
        kind,
        row.ts,
        order=order_as_of(order, status, filled, order.fills, row.ts),
        reason=None if row.reason is None else CancelReason(row.reason),
        detail=row.detail,
    )


__all__ = [
    "CHANNEL",
    "append",
    "fills_after",
    "follow_by_polling",
    "follow_postgresql",
    "head",
    "listen_conninfo",
    "read",
]
