"""The order store interface and the lock-guarded in-memory store."""

import threading
from typing import Protocol

from app.ids import format_order_id, parse_order_id


class Order:
    """One accepted order. `__slots__` keeps a stored order to a few hundred bytes.

    Times are integer microseconds since the epoch; the id is kept as its number.
    """

    __slots__ = (
        "accepted_at",
        "client_ts",
        "exchange",
        "filled_qty",
        "idempotency_key",
        "limit_price",
        "number",
        "qty",
        "side",
        "status",
        "symbol",
        "type",
    )

    def __init__(
        self,
        *,
        number: int,
        idempotency_key: str,
        exchange: str,
        symbol: str,
        side: str,
        qty: float,
        type: str,
        limit_price: float | None,
        client_ts: int | None,
        accepted_at: int,
        status: str = "NEW",
        filled_qty: float = 0.0,
    ) -> None:
        self.number = number
        self.idempotency_key = idempotency_key
        self.exchange = exchange
        self.symbol = symbol
        self.side = side
        self.qty = qty
        self.type = type
        self.limit_price = limit_price
        self.client_ts = client_ts
        self.accepted_at = accepted_at
        self.status = status
        self.filled_qty = filled_qty

    @property
    def order_id(self) -> str:
        return format_order_id(self.number)


class OrderStore(Protocol):
    def add_unless_key_exists(self, order: Order) -> tuple[Order, bool]:
        """Store `order` unless its idempotency key is taken, as one atomic step.

        Returns the stored order and True, or the order that owns the key and False.
        """
        ...

    def get(self, order_id: str) -> Order | None: ...

    def get_by_key(self, idempotency_key: str) -> Order | None: ...

    def count(self) -> int: ...


class InMemoryStore:
    """Orders by id and by idempotency key, in this process only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_number: dict[int, Order] = {}
        self._by_key: dict[str, Order] = {}

    def add_unless_key_exists(self, order: Order) -> tuple[Order, bool]:
        # The check and the insert share one lock hold: two racing requests with the
        # same key can never both see it free.
        with self._lock:
            existing = self._by_key.get(order.idempotency_key)
            if existing is not None:
                return existing, False
            self._by_key[order.idempotency_key] = order
            self._by_number[order.number] = order
            return order, True

    def get(self, order_id: str) -> Order | None:
        number = parse_order_id(order_id)
        return None if number is None else self._by_number.get(number)

    def get_by_key(self, idempotency_key: str) -> Order | None:
        return self._by_key.get(idempotency_key)

    def count(self) -> int:
        return len(self._by_number)
