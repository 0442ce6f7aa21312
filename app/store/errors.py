"""What a store raises when it cannot do what was asked."""

from app.core.errors import ServiceError


class StoreUnavailable(ServiceError):
    """The database cannot be reached or failed. Whether a write that failed this way
    took effect is unknown: a client retries with the same idempotency key."""

    code = "STORE_UNAVAILABLE"


class StoreFull(ServiceError):
    """The store holds MAX_ORDERS orders: new ones are refused, nothing is evicted."""

    code = "STORE_FULL"

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"The store is full: it holds the most orders it may (MAX_ORDERS={cap}); no new order is accepted. "
            "Existing orders are kept and can still be read, filled and canceled"
        )
