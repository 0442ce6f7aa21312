"""Domain events: what a core operation did, in the order it did it. The service layer
writes the log lines and metrics from these; a store persists the state they describe
and appends them to its journal (app.core.journal)."""

from dataclasses import dataclass
from decimal import Decimal

from app.core.controls import TradingState
from app.core.order import Order, StoredFill
from app.core.positions import Position
from app.core.vocabulary import CancelReason, OrderStatus

# Slotted, not frozen: one is made for every intent and fill on the hot path, and a frozen
# dataclass sets each field through object.__setattr__. Nothing changes them once made.


@dataclass(slots=True)
class OrderAccepted:
    order: Order


@dataclass(slots=True)
class OrderFilled:
    """A fill applied: the order's status before and after it, its filled quantity
    right after it (a later event of the same step may change the order again), and
    the instrument's position right after it."""

    order: Order
    fill: StoredFill
    before: OrderStatus
    after: OrderStatus
    filled_qty: Decimal
    position: Position


@dataclass(slots=True)
class OrderCanceled:
    order: Order
    before: OrderStatus
    reason: CancelReason
    detail: str | None = None  # for people: why, when the reason is not a client's request


@dataclass(slots=True)
class OrderExpired:
    order: Order
    before: OrderStatus


@dataclass(slots=True)
class OrderRejected:
    """A live exchange refused the order: `detail` is its reason, for people."""

    order: Order
    before: OrderStatus
    detail: str


@dataclass(slots=True)
class TradingStateChanged:
    before: TradingState
    after: TradingState
    canceled: int  # open orders canceled with it


Event = OrderAccepted | OrderFilled | OrderCanceled | OrderExpired | OrderRejected | TradingStateChanged
