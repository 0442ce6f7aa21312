"""Request bodies parsed into the service's values. One rule for every route that takes
a JSON body: the media type checked, then one strict pydantic parse of the raw bytes
(no FastAPI body parameter, so no 422, and no 400 of FastAPI's own wording)."""

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from app.core.vocabulary import TradingStateName
from app.ops.clock import to_micros
from app.service.errors import InvalidIntent
from app.service.orders import BookRequest, OrderRequest, QuoteRequest, TradeRequest
from app.web.errors import invalid_from_errors
from app.web.schemas import BookIn, OrderIntent, QuoteIn, TradeIn, TradingStateIn

Body = TypeVar("Body", bound=BaseModel)


def is_json_media_type(content_type: str | None) -> bool:
    """No Content-Type, `application/json` or `application/*+json`, parameters ignored."""
    if content_type is None:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def parse_json_body(model: type[Body], body: bytes, content_type: str | None, what: str) -> Body:
    """`body` as `model`, or InvalidIntent (400 VALIDATION_ERROR) naming `what`. A
    browser may POST or PUT text/plain or a form to any address without asking first (no
    CORS preflight), and a forged intent, quote or halt would act as a real one: only
    JSON, or no type (as bots often send), is a body."""
    if not is_json_media_type(content_type):
        raise InvalidIntent(f"Content-Type must be application/json, not {content_type!r}")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_from_errors(exc.errors(), what) from None


def parse_intent(body: bytes, content_type: str | None) -> OrderRequest:
    intent = parse_json_body(OrderIntent, body, content_type, "order intent")
    return OrderRequest(
        idempotency_key=intent.idempotency_key,
        exchange=intent.exchange,
        symbol=intent.symbol,
        side=intent.side,
        type=intent.type,
        qty=intent.qty,
        limit_price=intent.limit_price,
        time_in_force=intent.time_in_force,
        client_ts=None if intent.client_ts_utc is None else to_micros(intent.client_ts_utc),
    )


def parse_quote(body: bytes, content_type: str | None) -> QuoteRequest:
    quote = parse_json_body(QuoteIn, body, content_type, "quote")
    ts = None if quote.ts_utc is None else to_micros(quote.ts_utc)
    return QuoteRequest(quote.exchange, quote.symbol, quote.bid, quote.ask, quote.bid_size, quote.ask_size, ts)


def parse_book(body: bytes, content_type: str | None) -> BookRequest:
    book = parse_json_body(BookIn, body, content_type, "book")
    ts = None if book.ts_utc is None else to_micros(book.ts_utc)
    return BookRequest(book.exchange, book.symbol, book.bids, book.asks, ts)


def parse_trade(body: bytes, content_type: str | None) -> TradeRequest:
    trade = parse_json_body(TradeIn, body, content_type, "trade")
    ts = None if trade.ts_utc is None else to_micros(trade.ts_utc)
    return TradeRequest(trade.exchange, trade.symbol, trade.price, trade.qty, trade.aggressor_side, ts)


def parse_trading_state(body: bytes, content_type: str | None) -> tuple[TradingStateName, str | None, bool]:
    """The new state, its reason, and whether to cancel every open order with it."""
    change = parse_json_body(TradingStateIn, body, content_type, "trading state change")
    return change.state, change.reason, change.cancel_open_orders
