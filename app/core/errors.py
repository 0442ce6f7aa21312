"""Domain errors: what went wrong, the HTTP status it maps to, and its JSON body.

Nothing here knows the web framework; `app.web.errors` renders these.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any


class ServiceError(Exception):
    """An error a client can act on: a status code and a JSON body with `detail`.
    `code` names the kind of error for machines (metrics label refusals by it)."""

    status_code = 400
    code = "ERROR"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        # `code` where the kind of error has one: bots branch on it, not on the text.
        code = {"code": self.code} if self.code != ServiceError.code else {}
        return {"detail": self.detail, **code, **self.extra}

    def body_bytes(self) -> bytes:
        # Compact, as every other JSON answer (FastAPI's JSONResponse) is.
        return json.dumps(self.body(), separators=(",", ":")).encode()


class InvalidIntent(ServiceError):
    """The body is not a well-formed order intent."""

    code = "VALIDATION_ERROR"


class InstrumentNotAllowed(ServiceError):
    """The exchange or symbol is not on its allowlist (or the allowlist is empty)."""

    def __init__(self, detail: str, what: str) -> None:
        super().__init__(detail)
        self.code = f"{what.upper()}_NOT_ALLOWED"


class IntentRefused(ServiceError):
    """A trading control refused the intent: the trading state, an instrument rule, a
    risk limit or the paper balance. `code` names which."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class RateLimited(ServiceError):
    """More intents than MAX_INTENTS_PER_SECOND: retry after `retry_after` seconds."""

    status_code = 429
    code = "RATE_LIMITED"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DuplicateIntent(ServiceError):
    status_code = 409


class OrderNotFound(ServiceError):
    status_code = 404


class OrderNotCancelable(ServiceError):
    """Only NEW and PARTIALLY_FILLED orders can be canceled."""

    status_code = 409


class InvalidQuote(ServiceError):
    """The body is not a well-formed quote."""


class InvalidQuery(ServiceError):
    """A read's parameters are malformed (a cursor this service did not give out)."""


class StoreUnavailable(ServiceError):
    """The database cannot be reached or failed. Whether a write that failed this way
    took effect is unknown: a client retries with the same idempotency key."""

    status_code = 503
    code = "STORE_UNAVAILABLE"


class StoreFull(ServiceError):
    """The store holds MAX_ORDERS orders: new ones are refused, nothing is evicted."""

    status_code = 503
    code = "STORE_FULL"

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"The store is full: it holds the most orders it may (MAX_ORDERS={cap}); no new order is accepted. "
            "Existing orders are kept and can still be read, filled and canceled"
        )


class BodyTooLarge(ServiceError):
    status_code = 413

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"Request body is larger than {max_bytes} bytes")


class InternalError(ServiceError):
    """A fault of this service's: logged with its traceback under the request's id."""

    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, request_id: str) -> None:
        super().__init__("Internal server error; quote the request_id when reporting it", request_id=request_id)


class Unauthorized(ServiceError):
    status_code = 401
    code = "UNAUTHORIZED"


# A body with 100,000 unknown fields must not get a 10 MB answer and log line.
MAX_LISTED_ERRORS = 10
MAX_LOC_PART = 64


def _short(part: str | int) -> str | int:
    if isinstance(part, str) and len(part) > MAX_LOC_PART:
        return part[:MAX_LOC_PART] + "..."
    return part


def invalid_from_errors(all_errors: Sequence[Mapping[str, Any]], what: str) -> InvalidIntent:
    """One 400 from pydantic's error list: a readable `detail` and the `errors` list."""
    errors = [
        {"loc": [_short(part) for part in error["loc"] if part != "body"], "msg": error["msg"]}
        for error in all_errors[:MAX_LISTED_ERRORS]
    ]
    parts = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors)
    if len(all_errors) > MAX_LISTED_ERRORS:
        parts += f"; and {len(all_errors) - MAX_LISTED_ERRORS} more"
    return InvalidIntent(f"Invalid {what}: {parts}", errors=errors)
