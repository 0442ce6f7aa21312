"""The SQL store's part in live orders: the outbox row written with each order for a
live exchange, the exchange's reports applied (each of its trades once), what the live
executor reads and marks as it sends, checks and cancels, and (when balances apply)
each exchange's account as last read with the claims of the orders on their way to it
(see core.exchange_funds)."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, or_, select, update

from app.core import engine as core
from app.core.balances import Reservation
from app.core.engine import ExchangeReport, InstrumentState
from app.core.events import Event, OrderFilled
from app.core.exchange_funds import ExchangeFunds, FundsReading
from app.core.ids import client_order_id
from app.core.order import Order
from app.core.values import EXACT, ZERO
from app.core.vocabulary import CancelReason, LiveState
from app.store.schema import OPEN, exchange_balances, exchange_fills, live_orders, live_status, orders
from app.store.sql_rows import with_fills

FillsOf = Any  # the store's prepared statement that reads orders' fills (sql_rows.with_fills)


@dataclass(frozen=True, slots=True)
class LiveOrder:
    """A live order with its outbox row: the id it has at the exchange
    (`client_order_id`, and the exchange's own once known), how far its sending has
    come, a cancel asked for and not yet confirmed (its reason), how many sends were
    tried."""

    order: Order
    client_order_id: str
    state: LiveState
    exchange_order_id: str | None
    cancel: CancelReason | None
    attempts: int
    updated_at: int


def insert_outbox(conn: Connection, accepted: Sequence[tuple[Order, Reservation | None]], journal_id: str) -> None:
    """The outbox rows of orders just accepted for live exchanges, in their transaction,
    with what each claims of its exchange's account (None: balances do not apply)."""
    if accepted:
        conn.execute(
            live_orders.insert(),
            [
                {
                    "order_id": order.order_id,
                    "exchange": order.exchange,
                    "client_order_id": client_order_id(journal_id, order.idempotency_key),
                    "state": LiveState.PENDING.value,
                    "exchange_order_id": None,
                    "cancel": None,
                    "attempts": 0,
                    "updated_at": order.accepted_at,
                    "claim_asset": None if claimed is None else claimed.asset,
                    "claim": None if claimed is None else str(claimed.held),
                    "seen_at": None,
                }
                for order, claimed in accepted
            ],
        )


def funds(conn: Connection, exchange: str) -> ExchangeFunds:
    """`exchange`'s account as intake sees it: its latest reading, locked for this
    transaction (so two workers' intakes count each other's claims), and the claims of
    its orders on their way: not yet answered for by the exchange (pending or sent), or
    first answered for after the reading was asked for (see FundsReading.counts_from)."""
    row = conn.execute(
        select(exchange_balances).where(exchange_balances.c.exchange == exchange).with_for_update()
    ).one_or_none()
    if row is None:
        return ExchangeFunds(exchange, None)
    reading = _reading(row)
    # (A sent order has not been answered for: an answer makes it held, or done.)
    unanswered = live_orders.c.state.in_([LiveState.PENDING.value, LiveState.SENT.value])
    claims = conn.execute(
        select(live_orders.c.claim_asset, live_orders.c.claim).where(
            live_orders.c.exchange == exchange,
            or_(unanswered, live_orders.c.seen_at >= reading.counts_from),
        )
    )
    on_the_way: dict[str, Decimal] = {}
    unclaimed = 0
    for asset, amount in claims:
        if amount is None:
            unclaimed += 1
        else:
            on_the_way[asset] = EXACT.add(on_the_way.get(asset, ZERO), Decimal(amount))
    return ExchangeFunds(exchange, reading, on_the_way, unclaimed)


def keep_reading(conn: Connection, exchange: str, reading: FundsReading, insert: Any) -> None:
    """Keep `reading` as `exchange`'s latest, unless a later one is kept already (two
    holders of the executor's lease for a moment). `insert`: the dialect's insert."""
    # (An asset it does not list has none free: Binance lists hundreds at zero.)
    free = json.dumps({asset: str(amount) for asset, amount in sorted(reading.free.items()) if amount})
    conn.execute(
        insert(exchange_balances)
        .values(exchange=exchange, free=free, taken_at=reading.taken_at)
        .on_conflict_do_update(
            index_elements=[exchange_balances.c.exchange],
            set_={"free": free, "taken_at": reading.taken_at},
            where=exchange_balances.c.taken_at < reading.taken_at,
        )
    )


def reading_of(conn: Connection, exchange: str) -> FundsReading | None:
    """`exchange`'s account as last read (None: never)."""
    row = conn.execute(select(exchange_balances).where(exchange_balances.c.exchange == exchange)).one_or_none()
    return None if row is None else _reading(row)


def _reading(row: Row[Any]) -> FundsReading:
    return FundsReading({asset: Decimal(amount) for asset, amount in json.loads(row.free).items()}, row.taken_at)


def unfinished(conn: Connection, exchange: str, fills_of: FillsOf) -> list[LiveOrder]:
    """Every live order of `exchange` not yet done, oldest first."""
    rows = conn.execute(
        select(live_orders, orders)
        .join(orders, orders.c.order_id == live_orders.c.order_id)
        .where(live_orders.c.exchange == exchange, live_orders.c.state != LiveState.DONE.value)
        .order_by(orders.c.seq)
    ).all()
    return _live(conn, rows, fills_of)


def unfinished_exchanges(conn: Connection) -> set[str]:
    query = select(live_orders.c.exchange).where(live_orders.c.state != LiveState.DONE.value).distinct()
    return set(conn.execute(query).scalars())


def open_paper_exchanges(conn: Connection, exchanges: frozenset[str]) -> set[str]:
    """Those of `exchanges` with open orders that have no outbox row (paper orders)."""
    if not exchanges:
        return set()
    query = (
        select(orders.c.exchange)
        .outerjoin(live_orders, live_orders.c.order_id == orders.c.order_id)
        .where(orders.c.status.in_(OPEN), orders.c.exchange.in_(sorted(exchanges)), live_orders.c.order_id.is_(None))
        .distinct()
    )
    return set(conn.execute(query).scalars())


def find(conn: Connection, order_id: str, fills_of: FillsOf, *, lock: bool = False) -> LiveOrder | None:
    """A live order by its id (None: no such live order); `lock`: its rows locked."""
    query = (
        select(live_orders, orders)
        .join(orders, orders.c.order_id == live_orders.c.order_id)
        .where(live_orders.c.order_id == order_id)
    )
    # Only the order's row is locked (the outbox row is then written under it): the kill
    # switch locks orders, then writes outbox rows, in the same order.
    row = conn.execute(query.with_for_update(of=orders) if lock else query).one_or_none()
    return None if row is None else _live(conn, [row], fills_of)[0]


def _live(conn: Connection, rows: Sequence[Row[Any]], fills_of: FillsOf) -> list[LiveOrder]:
    kept = with_fills(conn, rows, fills_of)
    return [
        LiveOrder(
            order,
            row.client_order_id,
            LiveState(row.state),
            row.exchange_order_id,
            None if row.cancel is None else CancelReason(row.cancel),
            row.attempts,
            row.updated_at,
        )
        for order, row in zip(kept, rows, strict=True)
    ]


def known(conn: Connection, client_order_ids: Sequence[str]) -> set[str]:
    """Those of `client_order_ids` that name orders of this store not yet final here (an
    order final here yet open at the exchange is not known: it is reported)."""
    if not client_order_ids:
        return set()
    query = select(live_orders.c.client_order_id).where(
        live_orders.c.client_order_id.in_(list(client_order_ids)), live_orders.c.state != LiveState.DONE.value
    )
    return set(conn.execute(query).scalars())


def mark(
    conn: Connection,
    order_id: str,
    state: LiveState,
    *,
    expect: "Expected",
    now: int,
    attempt: bool = False,
    exchange_order_id: str | None = None,
) -> bool:
    """Move an order's sending on, if its row is still as `expect` says (compare and set:
    of two processes, or a cancel asked meanwhile, only one step wins). `attempt`: one
    more send is being tried. Whether it moved."""
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if attempt:
        values["attempts"] = live_orders.c.attempts + 1
    if exchange_order_id is not None:
        values["exchange_order_id"] = exchange_order_id
    if state == LiveState.HELD:  # the exchange answered for it
        values["seen_at"] = func.coalesce(live_orders.c.seen_at, now)
    moved = conn.execute(update(live_orders).where(*expect.conditions(order_id)).values(**values))
    return bool(moved.rowcount == 1)


@dataclass(frozen=True, slots=True)
class Expected:
    """What a step expects of an order's outbox row: its state and number of attempts as
    read, and (`no_cancel`) that no cancel has been asked for since."""

    state: LiveState
    attempts: int
    no_cancel: bool = False

    @classmethod
    def of(cls, live: "LiveOrder", *, no_cancel: bool = False) -> "Expected":
        return cls(live.state, live.attempts, no_cancel)

    def conditions(self, order_id: str) -> list[Any]:
        found = [
            live_orders.c.order_id == order_id,
            live_orders.c.state == self.state.value,
            live_orders.c.attempts == self.attempts,
        ]
        if self.no_cancel:
            found.append(live_orders.c.cancel.is_(None))
        return found

    def holds(self, live: "LiveOrder") -> bool:
        return live.state == self.state and live.attempts == self.attempts and not (self.no_cancel and live.cancel)


def ask_cancel(conn: Connection, order_ids: Sequence[str], reason: CancelReason, now: int) -> None:
    """Ask for the cancel of these live orders at their exchange (those not done; a
    cancel asked for already keeps its first reason)."""
    if order_ids:
        conn.execute(
            update(live_orders)
            .where(
                live_orders.c.order_id.in_(list(order_ids)),
                live_orders.c.state != LiveState.DONE.value,
                live_orders.c.cancel.is_(None),
            )
            .values(cancel=reason.value, updated_at=now)
        )


def apply_report(
    conn: Connection,
    instrument: InstrumentState,
    live: LiveOrder,
    report: ExchangeReport,
    *,
    now: int,
    new_id: Callable[[], int],
    exchange_order_id: str | None,
    expect: Expected | None = None,
) -> list[Event]:
    """Apply what the exchange reports of `live` (its rows locked, and its instrument):
    the fills whose trade ids were not applied before, then its end; the outbox row
    says the exchange holds it, or that it is done once it is final. Nothing if the
    row is no longer as `expect` says. Raises core.ExchangeReportRefused, changing
    nothing, if the report cannot be true."""
    if expect is not None and not expect.holds(live):
        return []
    order = live.order
    ids = list(dict.fromkeys(fill.trade_id for fill in report.fills))
    applied: set[str] = set()
    if ids:
        applied = set(
            conn.execute(
                select(exchange_fills.c.trade_id).where(
                    exchange_fills.c.exchange == order.exchange,
                    exchange_fills.c.symbol == order.symbol,
                    exchange_fills.c.trade_id.in_(ids),
                )
            ).scalars()
        )
    fresh, seen = [], set(applied)
    for fill in report.fills:
        if fill.trade_id not in seen:
            seen.add(fill.trade_id)
            fresh.append(fill)
    events = core.apply_exchange_report(
        instrument,
        order,
        ExchangeReport(fresh, report.ended, report.detail),
        now=now,
        new_id=new_id,
        cancel_reason=live.cancel or CancelReason.EXCHANGE,
    )
    filled = [event for event in events if isinstance(event, OrderFilled)]
    if filled:
        conn.execute(
            exchange_fills.insert(),
            [
                {
                    "exchange": order.exchange,
                    "symbol": order.symbol,
                    "trade_id": fill.trade_id,
                    "order_id": order.order_id,
                    "fill_id": e.fill.fill_id,
                }
                for fill, e in zip(fresh, filled, strict=True)
            ],
        )
    state = LiveState.HELD if order.is_open else LiveState.DONE
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if exchange_order_id is not None:  # a report from the exchange: it answered for the order
        values["exchange_order_id"] = exchange_order_id
        values["seen_at"] = func.coalesce(live_orders.c.seen_at, now)
    conn.execute(update(live_orders).where(live_orders.c.order_id == order.order_id).values(**values))
    return events


@dataclass(frozen=True, slots=True)
class SharedStatus:
    """What the executor of a live exchange last saw of it: whether it answered (None:
    not asked yet), its last error, the open orders there that this service does not
    know; which process it is (host:pid) and when it wrote this."""

    exchange: str
    reachable: bool | None
    last_error: str | None
    unknown_open_orders: tuple[str, ...]
    executor: str | None
    updated_at: int


def keep_status(conn: Connection, status: SharedStatus, insert: Any) -> None:
    """Keep `status` as its exchange's. `insert`: the dialect's insert."""
    values = {
        "reachable": status.reachable,
        "last_error": status.last_error,
        "unknown_open_orders": json.dumps(list(status.unknown_open_orders)),
        "executor": status.executor,
        "updated_at": status.updated_at,
    }
    conn.execute(
        insert(live_status)
        .values(exchange=status.exchange, **values)
        .on_conflict_do_update(index_elements=[live_status.c.exchange], set_=values)
    )


def status_of(conn: Connection, exchange: str) -> SharedStatus | None:
    row = conn.execute(select(live_status).where(live_status.c.exchange == exchange)).one_or_none()
    if row is None:
        return None
    unknown = tuple(str(each) for each in json.loads(row.unknown_open_orders))
    return SharedStatus(exchange, row.reachable, row.last_error, unknown, row.executor, row.updated_at)
