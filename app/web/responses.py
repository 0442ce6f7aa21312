"""What each operation can answer, for the OpenAPI document (the routes declare these)."""

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel

from app.web.schemas import (
    NO_CONTROL_CHARS,
    BadRequestBody,
    DuplicateBody,
    ErrorBody,
    OrderCreated,
    OrderIntent,
    QuoteIn,
)


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its definitions (the vocabulary's enums) written in
    place: a request body declared by hand sits inside the OpenAPI document, where a
    `#/$defs/...` reference would point at nothing."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline({**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}})
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


# An intent is a few hundred bytes; nothing this service takes comes near this.
MAX_BODY_BYTES = 64 * 1024

INTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"model": OrderCreated, "description": "Order accepted (status NEW)"},
    400: {
        "model": BadRequestBody,
        "description": "Invalid order parameters (`errors` lists them), a body that is not JSON, "
        "or an exchange/symbol not in the allowlist",
    },
    409: {"model": DuplicateBody, "description": "Duplicate idempotency_key; `order_id` names its order"},
    413: {"model": ErrorBody, "description": f"Request body larger than {MAX_BODY_BYTES} bytes"},
}
STORE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "The database store cannot be reached (SQLite or PostgreSQL only); retry. "
        "For an intent, retry with the same idempotency_key: a 409 then names the order if it was taken",
    }
}
INTENT_RESPONSES |= STORE_DOWN
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
    400: {"model": BadRequestBody, "description": "Invalid quote, or exchange/symbol not in the allowlist"},
    413: {"model": ErrorBody, "description": f"Request body larger than {MAX_BODY_BYTES} bytes"},
    **STORE_DOWN,
}
QUOTE_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema(QuoteIn)}}}}
DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_SEQ = 2**63 - 1  # the largest journal seq a query may name
# Filters take what an intent's fields take: a value no order can have is a 400, not a
# query the database must refuse (PostgreSQL text holds no NUL).
NameFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_CONTROL_CHARS)]

# The route reads the raw body itself (one strict parse, no 422), so the OpenAPI
# document is told about the body here.
INTENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": body_schema(OrderIntent)}},
    }
}
