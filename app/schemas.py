"""Request and response bodies, validated strictly: JSON types are never coerced."""

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators: they
# forge log lines and confuse terminals and log viewers.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# pydantic also takes "1700000000" as a datetime; the contract says ISO 8601.
_ISO_8601_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
# Far above any real quantity or price, and below 2**53 so the value stays exact.
MAX_AMOUNT = 1e15

Side = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT"]
OrderStatus = Literal["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED"]


def _no_control_chars(value: str) -> str:
    if _CONTROL_CHARS.search(value):
        raise PydanticCustomError("control_characters", "must not contain control characters")
    return value


Key = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_no_control_chars)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_control_chars)]
Amount = Annotated[float, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)]


class OrderIntent(BaseModel):
    """What a bot asks for. Strict: `"0.01"` and `true` are not numbers."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    idempotency_key: Key
    exchange: Name
    symbol: Name
    side: Side
    qty: Amount
    type: OrderType
    # validate_default: the rule below must also run when the field is absent.
    limit_price: Amount | None = Field(default=None, validate_default=True)
    # Not strict: the validator below lets only ISO 8601 strings through, and after a
    # "before" validator a strict datetime would refuse every string.
    client_ts_utc: datetime | None = Field(default=None, strict=False)

    @field_validator("limit_price", mode="after")
    @classmethod
    def _price_matches_type(cls, price: float | None, info: ValidationInfo) -> float | None:
        order_type = info.data.get("type")
        if order_type == "LIMIT" and price is None:
            raise PydanticCustomError("limit_price_required", "limit_price is required for LIMIT orders")
        if order_type == "MARKET" and price is not None:
            raise PydanticCustomError("limit_price_forbidden", "limit_price must be null for MARKET orders")
        return price

    @field_validator("client_ts_utc", mode="before")
    @classmethod
    def _iso_8601_only(cls, value: object) -> object:
        if value is not None and (not isinstance(value, str) or len(value) > 64 or not _ISO_8601_START.match(value)):
            raise PydanticCustomError("iso_8601", "must be an ISO 8601 timestamp, like 2024-01-15T10:30:00Z")
        return value

    @field_validator("client_ts_utc", mode="after")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+00:01 is before year 1 in UTC
            raise PydanticCustomError("datetime_range", "must be within years 1 to 9999 in UTC") from None


class OrderCreated(BaseModel):
    """The 201 body: exactly the spec's eight keys."""

    order_id: str
    status: Literal["NEW"]
    accepted_ts_utc: str
    exchange: str
    symbol: str
    side: Side
    qty: float
    filled_qty: float


class OrderOut(BaseModel):
    """An order as read back: the 201's keys and the rest of what the order holds."""

    order_id: str
    status: OrderStatus
    accepted_ts_utc: str
    exchange: str
    symbol: str
    side: Side
    qty: float
    filled_qty: float
    idempotency_key: str
    type: OrderType
    limit_price: float | None
    client_ts_utc: str | None
    updated_ts_utc: str
    avg_fill_price: float | None
    fees: float


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class ErrorLocation(BaseModel):
    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    detail: str


class BadRequestBody(ErrorBody):
    """A 400: `errors` is there when the body failed validation, absent otherwise."""

    errors: list[ErrorLocation] | None = None


class DuplicateBody(ErrorBody):
    order_id: str


class Health(BaseModel):
    status: Literal["ok"]
    timestamp: str


class Capabilities(BaseModel):
    service: str
    version: str
    status: Literal["ok", "degraded"]
    features: list[str]
    degraded_reason: str | None
    generated_at: str
