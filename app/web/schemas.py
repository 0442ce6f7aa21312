"""Request and response bodies, validated strictly: JSON types are never coerced."""

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from app.core.journal import EventType
from app.core.vocabulary import (
    CancelReason,
    FillSource,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TradingStateName,
)

# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators: they
# forge log lines and confuse terminals and log viewers.
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The same rule as a JSON Schema pattern, for the OpenAPI document and query parameters.
NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
# pydantic also takes "1700000000" as a datetime; the contract says ISO 8601.
_ISO_8601_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
# Far above any real quantity or price, and below 2**53 so the value stays exact.
MAX_AMOUNT = 1e15


def _no_control_chars(value: str) -> str:
    if _CONTROL_CHARS.search(value):
        raise PydanticCustomError("control_characters", "must not contain control characters")
    return value


def _iso_8601_only(value: object) -> object:
    if value is not None and (not isinstance(value, str) or len(value) > 64 or not _ISO_8601_START.match(value)):
        raise PydanticCustomError("iso_8601", "must be an ISO 8601 timestamp, like 2024-01-15T10:30:00Z")
    return value


def _to_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+00:01 is before year 1 in UTC
        raise PydanticCustomError("datetime_range", "must be within years 1 to 9999 in UTC") from None


# ISO 8601 text only; an offset is converted to UTC, a time without one is taken as
# UTC. Not strict: after a "before" validator a strict datetime refuses every string.
UtcTimestamp = Annotated[
    Annotated[datetime, Strict(False)] | None, BeforeValidator(_iso_8601_only), AfterValidator(_to_utc)
]
# The pattern is only shown in the document; the validator gives the clearer message.
_DOCUMENTED_PATTERN = Field(json_schema_extra={"pattern": NO_CONTROL_CHARS})
Key = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(_no_control_chars), _DOCUMENTED_PATTERN
]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_control_chars), _DOCUMENTED_PATTERN
]
Amount = Annotated[float, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)]


# The rule between `type` and `limit_price`, for the document (the validator below
# enforces it): a LIMIT order has a price, a MARKET order none. As if/then/else, not a
# oneOf beside the properties: client generators build a oneOf's branches as the body's
# classes (each holding only `type` and `limit_price`), and leave if/then/else to the
# validators that read it.
_PRICE_MATCHES_TYPE: JsonDict = {
    "if": {"properties": {"type": {"const": OrderType.LIMIT.value}}},
    "then": {"properties": {"limit_price": {"type": "number"}}, "required": ["limit_price"]},
    "else": {"properties": {"limit_price": {"type": "null"}}},
}


class OrderIntent(BaseModel):
    """An order intent: what a bot asks for. Strict: numbers are JSON numbers (`"0.01"`
    and `true` are refused) and no other field is taken. A LIMIT order needs
    `limit_price`; a MARKET order has none (absent or null)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, json_schema_extra=_PRICE_MATCHES_TYPE)

    # An example, or Swagger UI shows "undefined": it cannot make one up from the pattern.
    idempotency_key: Key = Field(
        description="The client's id for this intent: sent again, it creates no second order (409 names the first)",
        examples=["bot-7-000123"],
    )
    exchange: Name = Field(description="An exchange on the service's allowlist (ALLOWED_EXCHANGES)")
    symbol: Name = Field(description="A symbol on the service's allowlist (ALLOWED_SYMBOLS)")
    side: Side
    qty: Amount
    type: OrderType
    # validate_default: the rule below must also run when the field is absent.
    limit_price: Amount | None = Field(
        default=None, validate_default=True, description="Required for LIMIT; absent or null for MARKET"
    )
    client_ts_utc: UtcTimestamp = Field(
        default=None, description="When the client made the intent: an offset is converted to UTC, none means UTC"
    )
    time_in_force: TimeInForce = TimeInForce.GTC

    @field_validator("limit_price", mode="after")
    @classmethod
    def _price_matches_type(cls, price: float | None, info: ValidationInfo) -> float | None:
        order_type = info.data.get("type")
        if order_type == "LIMIT" and price is None:
            raise PydanticCustomError("limit_price_required", "limit_price is required for LIMIT orders")
        if order_type == "MARKET" and price is not None:
            raise PydanticCustomError("limit_price_forbidden", "limit_price must be null for MARKET orders")
        return price


class QuoteIn(BaseModel):
    """A top-of-book quote, as a ticker feed gives it: `bid` must not be above `ask` (a
    crossed quote is refused with a 400). Strict, like an intent."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    exchange: Name = Field(description="An exchange on the service's allowlist (ALLOWED_EXCHANGES)")
    symbol: Name = Field(description="A symbol on the service's allowlist (ALLOWED_SYMBOLS)")
    # The rule between the two is no JSON Schema keyword: it is told in words here.
    bid: Amount = Field(description="The best bid: at most `ask`")
    ask: Amount = Field(description="The best ask: at least `bid`")
    bid_size: Amount | None = Field(default=None, description="Size at the bid: what SELL orders may fill at most")
    ask_size: Amount | None = Field(default=None, description="Size at the ask: what BUY orders may fill at most")
    last: Amount | None = None
    ts_utc: UtcTimestamp = Field(
        default=None,
        description="The time the quote describes (ISO 8601; an offset is converted to UTC); absent: the time "
        "it arrives. Older than the instrument's latest is refused (409 OUT_OF_ORDER)",
    )

    @field_validator("ask", mode="after")
    @classmethod
    def _not_crossed(cls, ask: float, info: ValidationInfo) -> float:
        bid = info.data.get("bid")
        if bid is not None and bid > ask:
            raise PydanticCustomError("crossed_quote", "ask must not be below bid")
        return ask


class TradeIn(BaseModel):
    """A print on the tape, as an exchange's trades feed gives it. Strict, like an
    intent."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    exchange: Name = Field(description="An exchange on the service's allowlist (ALLOWED_EXCHANGES)")
    symbol: Name = Field(description="A symbol on the service's allowlist (ALLOWED_SYMBOLS)")
    price: Amount = Field(description="The price it traded at")
    qty: Amount = Field(description="The quantity that traded")
    aggressor_side: Side = Field(
        description="The side that took liquidity: BUY lifted the asks (it meets resting SELL orders), SELL hit "
        "the bids (it meets resting BUY orders)"
    )
    ts_utc: UtcTimestamp = Field(
        default=None,
        description="The time of the print (ISO 8601; an offset is converted to UTC); absent: the time it "
        "arrives. Older than the instrument's latest market data is refused (409 OUT_OF_ORDER)",
    )


MAX_LEVELS = 1000
# One level of a book: its price and the size shown there.
BookLevel = Annotated[tuple[Amount, Amount], Field(json_schema_extra={"examples": [[64000.5, 0.25]]})]
BookSide = Annotated[list[BookLevel], Field(min_length=1, max_length=MAX_LEVELS)]


class BookIn(BaseModel):
    """A book with depth, as an exchange's order book feed gives it: each side's levels
    best first (bids by falling price, asks by rising price, no price twice), the best
    bid not above the best ask. It replaces the instrument's book; a quote is a book of
    one level per side. Strict, like an intent."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    exchange: Name = Field(description="An exchange on the service's allowlist (ALLOWED_EXCHANGES)")
    symbol: Name = Field(description="A symbol on the service's allowlist (ALLOWED_SYMBOLS)")
    bids: BookSide = Field(description="[price, size] levels, the highest price first (1 to 1,000)")
    asks: BookSide = Field(description="[price, size] levels, the lowest price first (1 to 1,000)")
    ts_utc: UtcTimestamp = Field(
        default=None,
        description="The time the book describes (ISO 8601; an offset is converted to UTC); absent: the time "
        "it arrives. Older than the instrument's latest is refused (409 OUT_OF_ORDER)",
    )

    @field_validator("bids", mode="after")
    @classmethod
    def _bids_best_first(cls, bids: list[tuple[float, float]]) -> list[tuple[float, float]]:
        for index in range(1, len(bids)):
            if bids[index][0] >= bids[index - 1][0]:
                raise PydanticCustomError(
                    "book_order",
                    "bids must be best first: each price below the one before (level {index})",
                    {"index": index},
                )
        return bids

    @field_validator("asks", mode="after")
    @classmethod
    def _asks_best_first(cls, asks: list[tuple[float, float]], info: ValidationInfo) -> list[tuple[float, float]]:
        for index in range(1, len(asks)):
            if asks[index][0] <= asks[index - 1][0]:
                raise PydanticCustomError(
                    "book_order",
                    "asks must be best first: each price above the one before (level {index})",
                    {"index": index},
                )
        bids = info.data.get("bids")
        if bids and bids[0][0] > asks[0][0]:
            raise PydanticCustomError("crossed_book", "the best ask must not be below the best bid")
        return asks


Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=256), AfterValidator(_no_control_chars), _DOCUMENTED_PATTERN
]


class TradingStateIn(BaseModel):
    """A change of the kill switch. Strict, like an intent."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    state: TradingStateName
    reason: Reason | None = Field(default=None, examples=["runaway bot"])
    cancel_open_orders: bool = Field(default=False, description="Also cancel every open order, in the same step")


class TradingStateOut(BaseModel):
    state: TradingStateName
    reason: str | None
    updated_ts_utc: str


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
    time_in_force: TimeInForce
    client_ts_utc: str | None
    updated_ts_utc: str
    avg_fill_price: float | None
    fees: float


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None


class ProvenanceOut(BaseModel):
    """What produced a fill."""

    source: FillSource = Field(
        description="`quote` or `book`: a quote or a book as it came filled a resting order; `trade`: a print on "
        "the tape filled a resting LIMIT order; `arrival`: the order filled when it arrived, against the latest "
        "quote or book"
    )
    ts_utc: str | None = Field(description="The time the market data describes (null: not known)")
    level_price: float = Field(
        description="The price of the level the fill met (an ask for a BUY, a bid for a SELL), or the print's price"
    )
    level_size: float | None = Field(
        description="That level's size before this fill (null: the quote gave none, unlimited), or the print's size"
    )
    slippage_bps: float = Field(description="The slippage applied to the level's price (MARKET orders)")
    fee_bps: float = Field(description="The fee rate applied (taker or maker)")
    queue_ahead: float | None = Field(
        description="A print's fill: the queue ahead of the order at its price that the print consumed before "
        "filling it (null for every other fill)"
    )


class FillOut(BaseModel):
    seq: int = Field(description="The seq of the journal event that recorded this fill")
    fill_id: str
    order_id: str
    exchange: str
    symbol: str
    side: Side
    qty: float
    price: float
    fee: float
    liquidity: Liquidity
    ts_utc: str
    provenance: ProvenanceOut | None = Field(
        description="What produced the fill (null for fills stored before it was kept)"
    )


class FillList(BaseModel):
    items: list[FillOut]


class OrderFillPage(BaseModel):
    items: list[FillOut]
    next_cursor: int | None = Field(
        description="Pass as `after` for the next page: the seq of the last fill returned; null on the last page"
    )


class FillPage(BaseModel):
    items: list[FillOut]
    next_after: int = Field(description="Pass as `after` for the next page: the last seq returned, or `after`")


class PositionAfter(BaseModel):
    """An instrument's position right after a fill."""

    exchange: str
    symbol: str
    qty: float
    avg_entry_price: float | None
    realized_pnl: float
    fees: float


class TradingStateEvent(BaseModel):
    state: TradingStateName
    reason: str | None
    updated_ts_utc: str
    previous_state: TradingStateName | None
    canceled_orders: int | None = Field(description="Open orders canceled with this change")


class EventOut(BaseModel):
    """One journal event. `order` is the order as it was right after this event."""

    seq: int
    type: EventType
    ts_utc: str
    order: OrderOut | None
    fill: FillOut | None
    position: PositionAfter | None
    reason: CancelReason | None = Field(description="Why a `canceled` order was canceled")
    detail: str | None
    trading_state: TradingStateEvent | None


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int = Field(description="Pass as `after` for the next page: the last seq returned, or `after`")


class PositionOut(PositionAfter):
    """An instrument's position now, marked at its latest quote's mid."""

    mark_price: float | None
    unrealized_pnl: float | None


class PositionList(BaseModel):
    items: list[PositionOut]


class BalanceOut(BaseModel):
    asset: str
    total: float = Field(description="The starting balance plus every fill's flows")
    reserved: float = Field(description="What open orders may still spend")
    free: float = Field(description="total - reserved; never below zero")


class BalanceList(BaseModel):
    items: list[BalanceOut]


class ErrorLocation(BaseModel):
    loc: list[str | int]
    msg: str


# What a refused request's `code` can be (machines branch on it, people read `detail`).
ErrorCode = Literal[
    "VALIDATION_ERROR",
    "EXCHANGE_NOT_ALLOWED",
    "SYMBOL_NOT_ALLOWED",
    "TRADING_HALTED",
    "REDUCE_ONLY",
    "TICK_SIZE",
    "LOT_SIZE",
    "MIN_QTY",
    "MAX_QTY",
    "MIN_NOTIONAL",
    "MAX_NOTIONAL",
    "NO_QUOTE",
    "MAX_OPEN_ORDERS",
    "MAX_POSITION",
    "INSUFFICIENT_BALANCE",
    "EXCHANGE_BALANCE_UNKNOWN",
    "RATE_LIMITED",
    "STORE_FULL",
    "STORE_UNAVAILABLE",
    "UNAUTHORIZED",
    "INTERNAL_ERROR",
    "EVENTS_EXPIRED",
    "BODY_TOO_LARGE",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "ORDER_NOT_FOUND",
    "DUPLICATE_IDEMPOTENCY_KEY",
    "ORDER_NOT_CANCELABLE",
    "CLIENT_DISCONNECTED",
    "REQUEST_TIMEOUT",
    "HEADERS_TOO_LARGE",
    "ACCOUNT_MISMATCH",
    "OUT_OF_ORDER",
    "STALE_MARKET_DATA",
    "FUTURE_MARKET_DATA",
]


class ErrorBody(BaseModel):
    detail: str
    code: ErrorCode = Field(description="The kind of refusal, stable for machines")


class BadRequestBody(ErrorBody):
    """A 400: `errors` is there when the body failed validation, absent otherwise."""

    errors: list[ErrorLocation] | None = None


class DuplicateBody(ErrorBody):
    order_id: str = Field(description="The order that holds the idempotency_key")
    payload_matches: bool = Field(
        description="Whether this intent asks for what that order was created with (exchange, symbol, side, "
        "type, qty, limit_price and time_in_force; not client_ts_utc): true for a retry of the same intent, "
        "false for a key reused for a different order, which was not created"
    )


class NotCancelableBody(ErrorBody):
    """A cancel's 409: the order has already ended, `status` says how."""

    status: OrderStatus


class ExpiredBody(ErrorBody):
    """A 410: the journal cannot resume from there; it holds `oldest_seq` to `newest_seq`."""

    oldest_seq: int
    newest_seq: int


class Health(BaseModel):
    status: Literal["ok"]
    timestamp: str
    store: str = Field(description="Where orders are kept: memory, sqlite or postgresql")


class MarketDataFeed(BaseModel):
    exchange: str
    symbols: list[str] = Field(description="Allowlisted symbols whose books and trades are followed")
    unlisted: list[str] = Field(description="Allowlisted symbols the exchange does not list: no feed")
    markets_loaded: bool = Field(description="Whether the exchange's markets were read (until then, no symbol runs)")


class LiveExchange(BaseModel):
    exchange: str
    mode: Literal["live-sandbox", "live"] = Field(
        description="`live-sandbox`: the exchange's sandbox or testnet (or LIVE_URL_<EXCHANGE>); `live`: real money"
    )
    reachable: bool | None = Field(description="Whether the exchange answered the last look (null: not asked yet)")
    last_error: str | None = Field(description="Why the last look at the exchange failed, if it did")
    unknown_open_orders: list[str] = Field(
        description="Open orders at the exchange this service does not know (their client order ids, or the "
        "exchange's ids): reported, never touched"
    )
    executor: str | None = Field(
        description="The process (host:pid) that sends and follows its orders and saw all this; every process "
        "shows what that one last kept in the store (null: none has yet)"
    )


class Capabilities(BaseModel):
    service: str
    version: str
    status: Literal["ok", "degraded"]
    features: list[str]
    degraded_reason: str | None
    generated_at: str
    store: str = Field(description="Where orders are kept: memory, sqlite or postgresql")
    stale_market_data: list[str] = Field(
        description="Instruments (`exchange:symbol`) whose latest market data is older than MAX_QUOTE_AGE_MS: "
        "their orders fill nothing until fresh data comes (always empty without MAX_QUOTE_AGE_MS)"
    )
    market_data_feeds: list[MarketDataFeed] = Field(
        description="The exchanges whose market data this process follows (MARKET_DATA_FEEDS; empty without)"
    )
    exchanges: dict[str, Literal["paper", "live-sandbox", "live"]] = Field(
        description="Each allowlisted exchange's mode: `paper` (filled here), `live-sandbox` (sent to the exchange's "
        "sandbox or testnet) or `live` (sent to the exchange, real money)"
    )
    live_exchanges: list[LiveExchange] = Field(
        description="The live exchanges (LIVE_EXCHANGES) and what the process executing their orders last saw of "
        "them; empty without"
    )
