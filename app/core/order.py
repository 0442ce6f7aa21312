"""The order model: what an order was created with, what has happened to it since, and
the one function that changes its status."""

import math
import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from app.core.ids import FILL_PREFIX, format_id, format_order_id
from app.core.values import EXACT, ZERO, exact
from app.core.vocabulary import FillSource, Liquidity, OrderStatus, OrderType, Side, TimeInForce

_S = OrderStatus
# Every status change an order may make; anything else is a bug, and raises.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.NEW: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED, _S.REJECTED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.EXPIRED: frozenset(),
    _S.REJECTED: frozenset(),
}


class IllegalTransition(Exception):
    """A status change the table does not allow: a fault of this service, never a client's."""


class OrderKind(NamedTuple):
    """What an order trades and how. Few distinct values exist, so orders share them."""

    exchange: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce = TimeInForce.GTC


class Terms(NamedTuple):
    """An order's terms unpacked."""

    qty: float
    limit_price: float | None
    accepted_at: int
    client_ts: int | None


class OrderTerms:
    """The numbers an order is created with (quantity, limit price, acceptance and
    client times) and its place in its store's acceptance order, packed into one
    40-byte `bytes` value: as five Python numbers they would cost 32 bytes each and a
    slot each, and the memory store holds one per order. The place costs nothing: a
    bytes object of 32 or of 40 bytes takes the same 80-byte block of the allocator.
    Plain bytes, not a subclass: a subclass's instances are tracked by the garbage
    collector, which would then walk two objects per stored order instead of one. No
    price is NaN and no client time is the smallest int64; neither can be an intent's.

    The place is 0 unless a store gives the order one as it admits it (`placed`): the
    memory store gives each order its index in its acceptance sequence, and finds the
    order's entry in its listing index by it when its status changes."""

    LAYOUT = struct.Struct("<ddqq")  # the four numbers of `Terms`, first
    FULL = struct.Struct("<ddqqQ")  # and the place after them
    _PLACE = struct.Struct("<Q")
    _NO_TIME = -(2**63)

    @classmethod
    def of(
        cls, qty: float, limit_price: float | None, accepted_at: int, client_ts: int | None, place: int = 0
    ) -> bytes:
        return cls.FULL.pack(
            qty,
            math.nan if limit_price is None else limit_price,
            accepted_at,
            cls._NO_TIME if client_ts is None else client_ts,
            place,
        )

    @classmethod
    def placed(cls, terms: bytes, place: int) -> bytes:
        """`terms` with the place a store gave the order."""
        return terms[: cls.LAYOUT.size] + cls._PLACE.pack(place)

    @classmethod
    def place(cls, terms: bytes) -> int:
        return int(cls._PLACE.unpack_from(terms, cls.LAYOUT.size)[0])

    @classmethod
    def unpack(cls, terms: bytes) -> "Terms":
        """All four at once (one unpack, for a reader that shows them all)."""
        qty, price, accepted_at, client_ts = cls.LAYOUT.unpack_from(terms)
        return Terms(
            float(qty),
            None if math.isnan(price) else float(price),
            int(accepted_at),
            None if client_ts == cls._NO_TIME else int(client_ts),
        )

    @classmethod
    def qty(cls, terms: bytes) -> float:
        return float(cls.LAYOUT.unpack_from(terms)[0])

    @classmethod
    def limit_price(cls, terms: bytes) -> float | None:
        price = float(cls.LAYOUT.unpack_from(terms)[1])
        return None if math.isnan(price) else price

    @classmethod
    def accepted_at(cls, terms: bytes) -> int:
        return int(cls.LAYOUT.unpack_from(terms)[2])

    @classmethod
    def client_ts(cls, terms: bytes) -> int | None:
        moment = int(cls.LAYOUT.unpack_from(terms)[3])
        return None if moment == cls._NO_TIME else moment


@dataclass(frozen=True, slots=True)
class Provenance:
    """What produced a fill: the market data it met (`source`, and the time that data
    describes, None if unknown), the price of the level it met and that level's size
    before the fill (None: unlimited), and the slippage and fee rates applied (bps). A
    trade's fill names the print (its price and size) as the level, and the queue ahead
    of the order that the print consumed before it (None for every other fill)."""

    source: FillSource
    data_ts: int | None
    level_price: Decimal
    level_size: Decimal | None
    slippage_bps: Decimal
    fee_bps: Decimal
    queue_ahead: Decimal | None = None


class StoredFill:
    """One fill of an order, as applied (its provenance None for a fill stored before
    fills recorded one)."""

    __slots__ = ("fee", "liquidity", "number", "price", "provenance", "qty", "seq", "ts")

    def __init__(
        self,
        *,
        number: int,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        liquidity: Liquidity,
        ts: int,
        seq: int | None = None,
        provenance: Provenance | None = None,
    ) -> None:
        self.number = number
        self.qty = qty
        self.price = price
        self.fee = fee
        self.liquidity = liquidity
        self.ts = ts
        self.seq = seq  # the journal seq of the fill's event, once the store has journaled it
        self.provenance = provenance

    @property
    def fill_id(self) -> str:
        return format_id(FILL_PREFIX, self.number)


class Progress:
    """What has happened to an order since it was accepted. Most orders rest untouched,
    so an order has none until its first change."""

    __slots__ = ("filled_qty", "fills", "updated_at")

    def __init__(self, filled_qty: Decimal, fills: list[StoredFill], updated_at: int | None) -> None:
        self.filled_qty = filled_qty  # exact: fills add up to qty with no float drift
        self.fills = fills
        self.updated_at = updated_at


class Order:
    """One accepted order, kept small: the target is under 450 bytes a stored order.
    Times are integer microseconds since the epoch; the id is kept as its number."""

    __slots__ = ("_progress", "idempotency_key", "kind", "number", "status", "terms")

    def __init__(self, *, number: int, idempotency_key: str, kind: OrderKind, terms: bytes) -> None:
        self.number = number
        self.idempotency_key = idempotency_key
        self.kind = kind
        self.terms = terms
        self.status = OrderStatus.NEW
        self._progress: Progress | None = None

    @classmethod
    def restore(
        cls,
        *,
        number: int,
        idempotency_key: str,
        kind: OrderKind,
        terms: bytes,
        status: OrderStatus,
        filled_qty: Decimal,
        fills: list[StoredFill],
        updated_at: int | None,
    ) -> "Order":
        """An order as a store kept it."""
        order = cls(number=number, idempotency_key=idempotency_key, kind=kind, terms=terms)
        order.status = status
        if filled_qty or fills or updated_at is not None:
            order._progress = Progress(filled_qty, fills, updated_at)
        return order

    def copy(self) -> "Order":
        """The order as it is now, as a separate object: what happens to one later does
        not happen to the other (its terms, which never change, are shared)."""
        return Order.restore(
            number=self.number,
            idempotency_key=self.idempotency_key,
            kind=self.kind,
            terms=self.terms,
            status=self.status,
            filled_qty=self.filled_qty,
            fills=list(self.fills),
            updated_at=self.updated_at,
        )

    @property
    def order_id(self) -> str:
        return format_order_id(self.number)

    @property
    def exchange(self) -> str:
        return self.kind.exchange

    @property
    def symbol(self) -> str:
        return self.kind.symbol

    @property
    def side(self) -> Side:
        return self.kind.side

    @property
    def type(self) -> OrderType:
        return self.kind.type

    @property
    def time_in_force(self) -> TimeInForce:
        return self.kind.time_in_force

    @property
    def qty(self) -> float:
        return OrderTerms.qty(self.terms)

    @property
    def limit_price(self) -> float | None:
        return OrderTerms.limit_price(self.terms)

    @property
    def accepted_at(self) -> int:
        return OrderTerms.accepted_at(self.terms)

    @property
    def client_ts(self) -> int | None:
        return OrderTerms.client_ts(self.terms)

    @property
    def place(self) -> int:
        """Its place in its store's acceptance order (see OrderTerms)."""
        return OrderTerms.place(self.terms)

    @property
    def exact_qty(self) -> Decimal:
        return exact(self.qty)

    @property
    def filled_qty(self) -> Decimal:
        return ZERO if self._progress is None else self._progress.filled_qty

    @property
    def fills(self) -> list[StoredFill]:
        return [] if self._progress is None else self._progress.fills

    @property
    def updated_at(self) -> int | None:
        return None if self._progress is None else self._progress.updated_at

    @property
    def remaining(self) -> Decimal:
        """What is left of the order to fill, exactly."""
        return EXACT.subtract(self.exact_qty, self.filled_qty)

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    def _touched(self, now: int) -> Progress:
        if self._progress is None:
            self._progress = Progress(ZERO, [], now)
        else:
            self._progress.updated_at = now
        return self._progress


# What an intent asks for, by the intent's field names, in its order. Not its times: a
# retry is accepted later and may stamp its own client time, yet asks for the same order.
INTENT_TERMS = ("exchange", "symbol", "side", "type", "qty", "limit_price", "time_in_force")


def differing_terms(stored: Order, asked: Order) -> list[str]:
    """The intent terms in which `asked` differs from `stored`, the order its idempotency
    key already names: none for a retry of that intent, some for a key reused for
    another order. Quantities and prices are compared as the numbers the client wrote."""
    return [term for term in INTENT_TERMS if getattr(stored, term) != getattr(asked, term)]


def transition(order: Order, to: OrderStatus, now: int) -> OrderStatus:
    """Move `order` to status `to` at `now`, as the table allows (IllegalTransition
    otherwise). Returns the status before. The only place a status is assigned."""
    before = order.status
    if to not in TRANSITIONS[before]:
        raise IllegalTransition(f"order {order.order_id}: {before} -> {to} is not a legal transition")
    order._touched(now)
    order.status = to
    return before


def record_fill(order: Order, fill: StoredFill) -> OrderStatus:
    """Apply `fill` to `order`: its filled quantity grows and its status becomes FILLED
    or PARTIALLY_FILLED. Returns the status before."""
    filled = EXACT.add(order.filled_qty, fill.qty)
    if filled > order.exact_qty:
        raise IllegalTransition(f"order {order.order_id}: a fill of {fill.qty} overfills it")
    after = OrderStatus.FILLED if filled == order.exact_qty else OrderStatus.PARTIALLY_FILLED
    if after not in TRANSITIONS[order.status]:  # checked before anything changes
        raise IllegalTransition(f"order {order.order_id}: a fill of a {order.status} order")
    progress = order._touched(fill.ts)
    progress.filled_qty = filled
    progress.fills.append(fill)
    return transition(order, after, fill.ts)
