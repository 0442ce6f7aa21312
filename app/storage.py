"""The order store interface and the lock-guarded in-memory store."""

import threading
from datetime import datetime
from typing import Protocol


class Order:
    """One accepted order. `__slots__` keeps a stored order to a few hundred bytes."""

    __slots__ = (
        "accepted_at",
        "client_ts",
        "exchange",
        "filled_qty",
        "idempotency_key",
        "limit_price",
        "order_id",
        "qty",
        "side",
        "status",
        "symbol",
        "type",
    )

    def __init__(
        self,
        *,
        order_id: str,
        idempotency_key: str,
        exchange: str,
        symbol: str,
        side: str,
        qty: float,
        type: str,
        limit_price: float | None,
        client_ts: datetime | None,
        accepted_at: datetime,
        status: str = "NEW",
        filled_qty: float = 0.0,
    ) -> None:
        self.order_id = order_id
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
        self._by_id: dict[str, Order] = {}
        self._by_key: dict[str, Order] = {}

    def add_unless_key_exists(self, order: Order) -> tuple[Order, bool]:
        # The check and the insert share one lock hold: two racing requests with the
        # same key can never both see it free.
        with self._lock:
            existing = self._by_key.get(order.idempotency_key)
            if existing is not None:
                return existing, False
            self._by_key[order.idempotency_key] = order
            self._by_id[order.order_id] = order
            return order, True

    def get(self, order_id: str) -> Order | None:
        return self._by_id.get(order_id)

    def get_by_key(self, idempotency_key: str) -> Order | None:
        return self._by_key.get(idempotency_key)

    def count(self) -> int:
        return len(self._by_id)
