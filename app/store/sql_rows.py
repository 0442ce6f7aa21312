"""SQL rows as the core's values, and back: exact decimals are kept as their text."""

import json
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection

from app.core.ids import number_of
from app.core.order import Order, OrderKind, OrderTerms, Provenance, StoredFill
from app.core.positions import Position
from app.core.queue import QueueLevel, Queues
from app.core.values import Depth, Quote
from app.core.vocabulary import FillSource, Liquidity, OrderStatus, OrderType, Side, TimeInForce
from app.store.prepared import ByLength, Record


def text_of(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def decimal_of(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def order_of(row: Record, order_fills: list[StoredFill] | None = None) -> Order:
    return Order.restore(
        number=number_of(row.order_id),
        idempotency_key=row.idempotency_key,
        kind=OrderKind(row.exchange, row.symbol, Side(row.side), OrderType(row.type), TimeInForce(row.time_in_force)),
        terms=OrderTerms.of(row.qty, row.limit_price, row.accepted_at, row.client_ts),
        status=OrderStatus(row.status),
        filled_qty=Decimal(row.filled_qty),
        fills=order_fills or [],
        updated_at=row.updated_at,
    )


def fill_of(row: Record, seq: int | None = None, *, prefix: str = "") -> StoredFill:
    """A fill row; `seq` is its journal entry's (None for a fill made before the journal).
    `prefix`: the fill's columns are named `<prefix><column>` in a joined row."""

    def column(name: str) -> Any:
        return getattr(row, prefix + name)

    source = column("source")
    return StoredFill(
        number=number_of(column("fill_id")),
        qty=Decimal(column("qty")),
        price=Decimal(column("price")),
        fee=Decimal(column("fee")),
        liquidity=Liquidity(column("liquidity")),
        ts=column("ts"),
        seq=seq,
        provenance=None
        if source is None
        else Provenance(
            FillSource(source),
            column("data_ts"),
            Decimal(column("level_price")),
            decimal_of(column("level_size")),
            Decimal(column("slippage_bps")),
            Decimal(column("fee_bps")),
            decimal_of(column("queue_ahead")),
        ),
    )


def fill_row(order_id: str, fill: StoredFill) -> dict[str, Any]:
    """The row of `fill`, a fill of `order_id` (what `fill_of` reads back)."""
    made = fill.provenance
    return {
        "fill_id": fill.fill_id,
        "order_id": order_id,
        "qty": str(fill.qty),
        "price": str(fill.price),
        "fee": str(fill.fee),
        "liquidity": fill.liquidity.value,
        "ts": fill.ts,
        "source": None if made is None else made.source.value,
        "data_ts": None if made is None else made.data_ts,
        "level_price": None if made is None else str(made.level_price),
        "level_size": None if made is None else text_of(made.level_size),
        "slippage_bps": None if made is None else str(made.slippage_bps),
        "fee_bps": None if made is None else str(made.fee_bps),
        "queue_ahead": None if made is None else text_of(made.queue_ahead),
    }


def position_of(row: Record | None) -> Position:
    if row is None:
        return Position()
    return Position(Decimal(row.qty), Decimal(row.cost), Decimal(row.realized_pnl), Decimal(row.fees))


def quote_of(row: Record | None) -> Quote | None:
    """The top of book in a row (None for no row, or a joined row without a quote)."""
    if row is None or row.bid is None:
        return None
    return Quote(Decimal(row.bid), Decimal(row.ask), decimal_of(row.bid_size), decimal_of(row.ask_size))


def book_of_row(row: Record | None) -> Quote | None:
    """The whole book in a row of `quotes`: its top and the depth behind it."""
    top = quote_of(row)
    if top is None or row is None or row.depth is None:
        return top
    bids, asks = json.loads(row.depth)
    return replace(top, deeper_bids=_depth_of(bids), deeper_asks=_depth_of(asks))


def _depth_of(kept: list[Any]) -> Depth:
    prices, sizes, taken = kept
    return Depth(prices, sizes, Decimal(taken))


def queues_of(row: Record | None) -> Queues:
    """An instrument's queues from its row of `queues` (none: no row)."""
    if row is None:
        return Queues()
    next_epoch, levels = json.loads(row.levels)
    return Queues(
        {
            (Side(side), price): QueueLevel(epoch, Decimal(shown), Decimal(scale), Decimal(consumed), seen, pending)
            for side, price, epoch, shown, scale, consumed, seen, pending in levels
        },
        next_epoch,
    )


def queues_text(queues: Queues) -> str:
    """The queues as text: a JSON pair, the next level's epoch and a list of [side,
    price, epoch, shown, scale, consumed, seen, pending]: the decimals as strings, the
    price and what books showed since the level was last read as the floats they are
    (kept, not applied, so that each store applies them when the memory store does)."""
    levels = [
        [
            side.value,
            price,
            level.epoch,
            str(level.shown),
            str(level.scale),
            str(level.consumed),
            level.seen,
            level.pending,
        ]
        for (side, price), level in queues.items()
    ]
    return json.dumps([queues.next_epoch, levels], separators=(",", ":"))


def depth_text(quote: Quote) -> str | None:
    """The levels behind a book's top as text: a JSON pair (bids, asks), each side
    [prices, sizes, taken] (the floats as sent, and what fills took from their front
    as an exact decimal string); None for a plain quote."""
    if not quote.deeper_bids and not quote.deeper_asks:
        return None
    sides = [
        [list(depth.prices), list(depth.sizes), str(depth.taken)] for depth in (quote.deeper_bids, quote.deeper_asks)
    ]
    return json.dumps(sides, separators=(",", ":"))


def with_fills(conn: Connection, rows: Sequence[Record], fills_of: ByLength) -> list[Order]:
    """Orders from their rows, each with its fills and their journal seqs (`fills_of`:
    one query for all of them)."""
    filled = [row.order_id for row in rows if Decimal(row.filled_qty) != 0]
    by_order: dict[str, list[StoredFill]] = {}
    for fill_row in fills_of.rows(conn, filled):
        by_order.setdefault(fill_row.order_id, []).append(fill_of(fill_row, fill_row.event_seq))
    return [order_of(row, by_order.get(row.order_id)) for row in rows]


def orders_and_fills(rows: Sequence[Record]) -> list[Order]:
    """Orders from the rows of `Statements.with_fills_of`, in their order, with their fills."""
    by_id: dict[str, tuple[Record, list[StoredFill]]] = {}
    for row in rows:
        entry = by_id.get(row.order_id)
        if entry is None:
            entry = by_id[row.order_id] = (row, [])
        if row.fill_fill_id is not None:
            entry[1].append(fill_of(row, row.fill_event_seq, prefix="fill_"))
    return [order_of(row, order_fills) for row, order_fills in by_id.values()]
