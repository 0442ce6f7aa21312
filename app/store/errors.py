"""What a store raises when it cannot do what was asked."""

from app.core.errors import ServiceError


class StoreUnavailable(ServiceError):
    """The database cannot be reached or failed. Whether a write that failed this way
    took effect is unknown: a client retries with the same idempotency key."""

    code = "STORE_UNAVAILABLE"


class StoreFull(ServiceError):
    """The store holds what MAX_ORDERS allows: new orders are refused (in the memory
    store, where fills count too, so are quotes that could fill past its reserve for
    fills); nothing is evicted."""

    code = "STORE_FULL"

    def __init__(self, cap: int, detail: str | None = None) -> None:
        super().__init__(
            detail
            or f"The store is full: it holds the most orders it may (MAX_ORDERS={cap}); no new order is accepted. "
            "Existing orders are kept and can still be read, filled and canceled"
        )
