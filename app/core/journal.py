"""The event journal's entries: every domain event a store commits, numbered.

A store appends each step's events in the same atomic step as the change they describe
and numbers them 1, 2, 3, ... with no gaps, in commit order. An entry read back shows the
order as it was right after its event (a `new` entry shows the order NEW even when a
fill followed in the same step), so replaying the journal from 1 rebuilds every
order, position and balance.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from app.core.controls import TradingState
from app.core.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    TradingStateChanged,
)
from app.core.order import Order, StoredFill
from app.core.positions import Position
from app.core.values import ZERO
from app.core.vocabulary import CancelReason, OrderStatus


class EventType(StrEnum):
    """What an entry records (its wire text). `replaced` is reserved for later: no
    entry has it yet."""

    NEW = "new"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    TRADING_STATE = "trading_state"
    REJECTED = "rejected"
    REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal entry as a reader sees it."""

    seq: int
    type: EventType
    ts: int  # microseconds since the epoch: when the change happened
    order: Order | None = None  # as it was right after this event
    fill: StoredFill | None = None
    position: Position | None = None  # the instrument's position right after the fill
    reason: CancelReason | None = None  # a cancel's
    detail: str | None = None  # why, for people, when the reason is not a client's request
    trading_state: TradingState | None = None  # the new state
    previous_state: TradingState | None = None
    canceled_orders: int | None = None  # canceled with a trading-state change

    @property
    def order_id(self) -> str | None:
        return None if self.order is None else self.order.order_id


def type_of(event: Event) -> EventType:
    if isinstance(event, OrderAccepted):
        return EventType.NEW
    if isinstance(event, OrderFilled):
        return EventType.FILL if event.after == OrderStatus.FILLED else EventType.PARTIAL_FILL
    if isinstance(event, OrderCanceled):
        return EventType.CANCELED
    if isinstance(event, OrderExpired):
        return EventType.EXPIRED
    if isinstance(event, OrderRejected):
        return EventType.REJECTED
    return EventType.TRADING_STATE


def entry_of(seq: int, event: Event) -> Entry:
    """The entry for `event`, numbered `seq`. Its order is rebuilt as of the event from
    what the event and the order (which may have changed since) still tell: a `new`
    order had nothing filled; a fill's order had the fills up to and including it; a
    cancel, an expiry or a rejection ends the order, so the order as it is now is as it
    was then."""
    kind = type_of(event)
    if isinstance(event, OrderAccepted):
        order = event.order
        accepted = order_as_of(order, OrderStatus.NEW, ZERO, [], order.accepted_at)
        return Entry(seq, kind, order.accepted_at, order=accepted)
    if isinstance(event, OrderFilled):
        order, fill = event.order, event.fill
        fills = order.fills
        upto = next(index for index, kept in enumerate(fills) if kept is fill) + 1
        filled = order_as_of(order, event.after, event.filled_qty, fills[:upto], fill.ts)
        return Entry(seq, kind, fill.ts, order=filled, fill=fill, position=event.position)
    if isinstance(event, OrderCanceled):
        order = event.order
        return Entry(seq, kind, _changed_at(order), order=order, reason=event.reason, detail=event.detail)
    if isinstance(event, OrderExpired):
        return Entry(seq, kind, _changed_at(event.order), order=event.order)
    if isinstance(event, OrderRejected):
        return Entry(seq, kind, _changed_at(event.order), order=event.order, detail=event.detail)
    assert isinstance(event, TradingStateChanged)
    return Entry(
        seq,
        kind,
        event.after.updated_at,
        trading_state=event.after,
        previous_state=event.before,
        canceled_orders=event.canceled,
    )


def entries_of(first_seq: int, events: Iterable[Event]) -> list[Entry]:
    return [entry_of(seq, event) for seq, event in enumerate(events, start=first_seq)]


def order_as_of(
    order: Order, status: OrderStatus, filled_qty: Decimal, fills: list[StoredFill], updated_at: int
) -> Order:
    """A copy of `order` with the given progress (its terms are shared: they never change)."""
    return Order.restore(
        number=order.number,
        idempotency_key=order.idempotency_key,
        kind=order.kind,
        terms=order.terms,
        status=status,
        filled_qty=filled_qty,
        fills=fills,
        updated_at=updated_at,
    )


def _changed_at(order: Order) -> int:
    assert order.updated_at is not None  # a canceled or expired order has changed
    return order.updated_at


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """Which entries a reader wants; a field left None keeps every entry. A trading-state
    entry concerns every instrument and order, so only `types` can leave it out."""

    types: frozenset[EventType] | None = None
    exchange: str | None = None
    symbol: str | None = None
    order_id: str | None = None

    @property
    def keeps_all(self) -> bool:
        return self.types is None and self.exchange is None and self.symbol is None and self.order_id is None

    def keeps(self, entry: Entry) -> bool:
        return self.keeps_kind(entry.type, entry.order)

    def keeps_event(self, event: Event) -> bool:
        """As `keeps` would for the event's entry, without making the entry (a reader
        scanning many events for a few builds only those it keeps)."""
        return self.keeps_kind(type_of(event), None if isinstance(event, TradingStateChanged) else event.order)

    def keeps_kind(self, kind: EventType, order: Order | None) -> bool:
        if self.types is not None and kind not in self.types:
            return False
        if order is None:
            return True
        return (
            (self.exchange is None or order.exchange == self.exchange)
            and (self.symbol is None or order.symbol == self.symbol)
            and (self.order_id is None or order.order_id == self.order_id)
        )
