"""The order store interface and the lock-guarded in-memory store."""

import math
import struct
import threading
from collections.abc import Callable
from typing import NamedTuple, Protocol

from app.ids import format_order_id, parse_order_id


class OrderKind(NamedTuple):
    """What an order trades and how. Few distinct values exist, so orders share them."""

    exchange: str
    symbol: str
    side: str
    type: str


# The numbers an order is created with, packed into one bytes object: as four Python
# numbers they would cost 32 bytes each, and a slot each. Absent values are NaN (for
# the price) and the smallest int64 (for the time), neither of which a valid intent has.
_TERMS = struct.Struct("<ddqq")  # qty, limit_price, accepted_at, client_ts
_NO_TIME = -(2**63)


class Order:
    """One accepted order, kept small: the target is under 450 bytes a stored order.

    Times are integer microseconds since the epoch; the id is kept as its number.
    """

    __slots__ = ("_terms", "filled_qty", "idempotency_key", "kind", "number", "status")

    def __init__(
        self,
        *,
        number: int,
        idempotency_key: str,
        kind: OrderKind,
        qty: float,
        limit_price: float | None,
        client_ts: int | None,
        accepted_at: int,
        status: str = "NEW",
        filled_qty: float = 0.0,
    ) -> None:
        self.number = number
        self.idempotency_key = idempotency_key
        self.kind = kind
        self._terms = _TERMS.pack(
            qty,
            math.nan if limit_price is None else limit_price,
            accepted_at,
            _NO_TIME if client_ts is None else client_ts,
        )
        self.status = status
        self.filled_qty = filled_qty

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
    def side(self) -> str:
        return self.kind.side

    @property
    def type(self) -> str:
        return self.kind.type

    @property
    def qty(self) -> float:
        return float(_TERMS.unpack_from(self._terms)[0])

    @property
    def limit_price(self) -> float | None:
        price = float(_TERMS.unpack_from(self._terms)[1])
        return None if math.isnan(price) else price

    @property
    def accepted_at(self) -> int:
        return int(_TERMS.unpack_from(self._terms)[2])

    @property
    def client_ts(self) -> int | None:
        moment = int(_TERMS.unpack_from(self._terms)[3])
        return None if moment == _NO_TIME else moment


class OrderStore(Protocol):
    def add_unless_key_exists(self, order: Order) -> tuple[Order, bool]:
        """Store `order` unless its idempotency key is taken, as one atomic step.

        Returns the stored order and True, or the order that owns the key and False.
        """
        ...

    def get(self, order_id: str) -> Order | None: ...

    def get_by_key(self, idempotency_key: str) -> Order | None: ...

    def newest_first(
        self, before: int | None, limit: int, keep: Callable[[Order], bool]
    ) -> tuple[list[Order], int | None]:
        """Up to `limit` orders that `keep` accepts, newest first, from just below
        position `before` (None: from the newest). Also returns the position to go on
        from, or None when no older order is left. Positions never move: a new order
        takes the next one, so paging is stable while orders arrive."""
        ...

    def count(self) -> int: ...


class InMemoryStore:
    """Orders by id and by idempotency key, in this process only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_number: dict[int, Order] = {}
        self._by_key: dict[str, Order] = {}
        self._sequence: list[Order] = []  # in acceptance order: an order's position is its index

    def add_unless_key_exists(self, order: Order) -> tuple[Order, bool]:
        # The check and the insert share one lock hold: two racing requests with the
        # same key can never both see it free.
        with self._lock:
            existing = self._by_key.get(order.idempotency_key)
            if existing is not None:
                return existing, False
            self._by_key[order.idempotency_key] = order
            self._by_number[order.number] = order
            self._sequence.append(order)
            return order, True

    def get(self, order_id: str) -> Order | None:
        number = parse_order_id(order_id)
        return None if number is None else self._by_number.get(number)

    def get_by_key(self, idempotency_key: str) -> Order | None:
        return self._by_key.get(idempotency_key)

    def newest_first(
        self, before: int | None, limit: int, keep: Callable[[Order], bool]
    ) -> tuple[list[Order], int | None]:
        sequence = self._sequence  # only ever appended to, so reading needs no lock
        position = len(sequence) if before is None else min(before, len(sequence))
        found: list[Order] = []
        while position > 0 and len(found) < limit:
            position -= 1
            if keep(sequence[position]):
                found.append(sequence[position])
        return found, (position if position > 0 else None)

    def count(self) -> int:
        return len(self._by_number)
