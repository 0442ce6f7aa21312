"""Request bodies parsed into the service's values: one strict pydantic parse of the raw
bytes (no FastAPI body parameter, no 422), and the media type checked with it."""

from pydantic import ValidationError

from app.ops.clock import to_micros
from app.service.errors import InvalidIntent, InvalidQuote
from app.service.orders import OrderRequest, QuoteRequest
from app.web.errors import invalid_from_errors
from app.web.schemas import OrderIntent, QuoteIn


def is_json_media_type(content_type: str | None) -> bool:
    """No Content-Type, `application/json` or `application/*+json`, parameters ignored."""
    if content_type is None:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def parse_intent(body: bytes, content_type: str | None) -> OrderRequest:
    """An order intent, or InvalidIntent. A browser may POST text/plain or a form to any
    address without asking first (no CORS preflight): only JSON, or no type, is an intent."""
    if not is_json_media_type(content_type):
        raise InvalidIntent(f"Content-Type must be application/json, not {content_type!r}")
    try:
        intent = OrderIntent.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_from_errors(exc.errors(), "order intent") from None
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
    """A quote, or InvalidQuote (a forged cross-site quote would move fills and
    positions, as an intent would)."""
    if not is_json_media_type(content_type):
        raise InvalidQuote(f"Content-Type must be application/json, not {content_type!r}")
    try:
        quote = QuoteIn.model_validate_json(body)
    except ValidationError as exc:
        error = invalid_from_errors(exc.errors(), "quote")
        raise InvalidQuote(error.detail, **error.extra) from None
    return QuoteRequest(quote.exchange, quote.symbol, quote.bid, quote.ask, quote.bid_size, quote.ask_size)
