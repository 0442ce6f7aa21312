"""What the service refuses a request for (the web layer maps each to its status)."""

from app.core.errors import ServiceError


class InvalidIntent(ServiceError):
    """The body is not a well-formed order intent (or quote, or state change)."""

    code = "VALIDATION_ERROR"


class InstrumentNotAllowed(ServiceError):
    """The exchange or symbol is not on its allowlist (or the allowlist is empty)."""

    def __init__(self, detail: str, what: str) -> None:
        super().__init__(detail)
        self.code = f"{what.upper()}_NOT_ALLOWED"


class RateLimited(ServiceError):
    """More intents than MAX_INTENTS_PER_SECOND: retry after `retry_after` seconds."""

    code = "RATE_LIMITED"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DuplicateIntent(ServiceError):
    """The idempotency key names an order already: `order_id` says which."""

    code = "DUPLICATE_IDEMPOTENCY_KEY"


class OrderNotFound(ServiceError):
    code = "ORDER_NOT_FOUND"


class OrderNotCancelable(ServiceError):
    """Only NEW and PARTIALLY_FILLED orders can be canceled."""

    code = "ORDER_NOT_CANCELABLE"

    @classmethod
    def ended(cls, order_id: str, status: str) -> "OrderNotCancelable":
        return cls(f"Order {order_id} is already {status}", status=status)


class InvalidQuery(ServiceError):
    """A read's parameters are malformed (a cursor this service did not give out)."""

    code = "VALIDATION_ERROR"
