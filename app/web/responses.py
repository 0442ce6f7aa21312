"""What each operation can answer, for the OpenAPI document (the routes declare these)."""

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel

from app.web.schemas import (
    NO_CONTROL_CHARS,
    BadRequestBody,
    BookIn,
    DuplicateBody,
    ErrorBody,
    OrderCreated,
    OrderIntent,
    QuoteIn,
    TradeIn,
    TradingStateIn,
)

# Where the document keeps a named schema.
COMPONENT = "#/components/schemas/{model}"


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The `openapi_extra` of a route that reads its body itself (one strict parse, no
    422): the body is `model`, named among the document's schemas (DECLARED_BODIES),
    so a generated client gets one class for it."""
    schema = {"$ref": COMPONENT.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# An intent is a few hundred bytes; nothing this service takes comes near this.
MAX_BODY_BYTES = 64 * 1024
# A book of 1,000 levels a side, each price and size written with 17 digits.
MAX_BOOK_BYTES = 256 * 1024

TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": f"Request body larger than {MAX_BODY_BYTES} bytes"},
}
INTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"model": OrderCreated, "description": "Order accepted (status NEW)"},
    400: {
        "model": BadRequestBody,
        "description": "Invalid order parameters (`errors` lists them), a body that is not JSON, "
        "an exchange/symbol not in the allowlist, or a trading control's refusal (`code` says which)",
    },
    409: {
        "model": DuplicateBody,
        "description": "Duplicate idempotency_key; `order_id` names its order, `payload_matches` says whether "
        "this intent is a retry of it",
    },
    **TOO_LARGE,
}
STORE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "The database store cannot be reached (SQLite or PostgreSQL only); retry. "
        "For an intent, retry with the same idempotency_key: a 409 then names the order if it was taken",
    }
}
INTENT_RESPONSES[503] = {
    "model": ErrorBody,
    "description": "The store is full (code STORE_FULL: MAX_ORDERS reached), its database cannot be reached "
    "(STORE_UNAVAILABLE), or a live exchange's account is not known well enough to check the intent against it "
    "(EXCHANGE_BALANCE_UNKNOWN): retry with the same idempotency_key, and a 409 names the order if it was taken",
}
# Listed where MAX_INTENTS_PER_SECOND is set: only then can the answer be a 429.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorBody,
        "description": "More intents than MAX_INTENTS_PER_SECOND (code RATE_LIMITED); nothing was read or stored. "
        "Retry after the seconds Retry-After names",
        "headers": {
            "Retry-After": {
                "description": "Whole seconds until the limit takes an intent again",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}
ORDER_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such order"},
    **STORE_DOWN,
}
BAD_QUERY: dict[int | str, dict[str, Any]] = {
    400: {"model": BadRequestBody, "description": "A filter, limit or cursor is not valid"},
    **STORE_DOWN,
}
QUOTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The fills this quote produced (often none)"},
    400: {
        "model": BadRequestBody,
        "description": "Invalid quote, exchange/symbol not in the allowlist, or `ts_utc` more than 5 s ahead of "
        "the service's clock (FUTURE_MARKET_DATA)",
    },
    409: {
        "model": ErrorBody,
        "description": "`ts_utc` older than the instrument's latest market data (OUT_OF_ORDER), or older than "
        "MAX_QUOTE_AGE_MS on arrival (STALE_MARKET_DATA): nothing was changed",
    },
    **TOO_LARGE,
    **STORE_DOWN,
}
BOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    **QUOTE_RESPONSES,
    200: {"description": "The fills this book produced (often none)"},
    400: {
        "model": BadRequestBody,
        "description": "Invalid book (a side empty, over 1,000 levels, not best first, or crossed), "
        "exchange/symbol not in the allowlist, or `ts_utc` more than 5 s ahead of the service's clock "
        "(FUTURE_MARKET_DATA)",
    },
    413: {"model": ErrorBody, "description": f"Request body larger than {MAX_BOOK_BYTES} bytes"},
}
TRADE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **QUOTE_RESPONSES,
    200: {"description": "The fills this print produced (often none)"},
    400: {
        "model": BadRequestBody,
        "description": "Invalid print, exchange/symbol not in the allowlist, or `ts_utc` more than 5 s ahead of "
        "the service's clock (FUTURE_MARKET_DATA)",
    },
}
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_SEQ = 2**63 - 1  # the largest journal seq a query may name
# Filters take what an intent's fields take: a value no order can have is a 400, not a
# query the database must refuse (PostgreSQL text holds no NUL).
NameFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_CONTROL_CHARS)]

INTENT_BODY = request_body(OrderIntent)
QUOTE_BODY = request_body(QuoteIn)
BOOK_BODY = request_body(BookIn)
TRADE_BODY = request_body(TradeIn)
TRADING_STATE_BODY = request_body(TradingStateIn)
# The bodies declared by hand above: the document adds them to its schemas.
DECLARED_BODIES: tuple[type[BaseModel], ...] = (OrderIntent, QuoteIn, BookIn, TradeIn, TradingStateIn)
