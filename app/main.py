"""The FastAPI application: a factory, and thin routes that delegate to the service."""

from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic_core import to_json

from app.clock import iso_z, now_micros
from app.config import Settings, load_settings
from app.deps import ServiceDep
from app.handlers import add_exception_handlers
from app.logs import EventLog, configure_logging
from app.middleware import BodyLimitMiddleware, RequestLogMiddleware
from app.schemas import BadRequestBody, Capabilities, DuplicateBody, ErrorBody, Health, OrderCreated, OrderIntent
from app.service import OrderService
from app.storage import InMemoryStore, Order, OrderStore

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
# The route reads the raw body itself (one strict parse, no 422), so the OpenAPI
# document is told about the body here.
INTENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": OrderIntent.model_json_schema()}},
    }
}


def created_body(order: Order) -> bytes:
    """The 201 body: exactly the spec's eight keys (`OrderCreated` documents them)."""
    # A plain dict through pydantic-core's encoder: this is the hot path, and every
    # value was validated on the way in.
    return to_json(
        {
            "order_id": order.order_id,
            "status": order.status,
            "accepted_ts_utc": iso_z(order.accepted_at),
            "exchange": order.exchange,
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "filled_qty": order.filled_qty,
        }
    )


def create_app(settings: Settings, store: OrderStore | None = None) -> FastAPI:
    events = EventLog(configure_logging(settings.service_name, settings.log_level_number))
    service = OrderService(settings, store if store is not None else InMemoryStore(), events)

    # redirect_slashes off: a 307 to a Location built from the client's Host header is
    # no answer for a bot; `/execution/order-intents/` is a plain 404.
    app = FastAPI(title="Paper execution service", version=settings.service_version, redirect_slashes=False)
    app.state.service = service
    add_exception_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(RequestLogMiddleware, events=events)  # added last: outermost, sees every answer

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok", timestamp=iso_z(now_micros()))

    @app.head("/healthz", include_in_schema=False)
    async def healthz_head() -> Response:
        return Response(media_type="application/json")  # some probes only send HEAD

    @app.get("/capabilities", response_model=Capabilities)
    async def capabilities(service: ServiceDep) -> Capabilities:
        return service.capabilities()

    @app.post(
        "/execution/order-intents",
        status_code=201,
        response_class=Response,
        responses=INTENT_RESPONSES,
        openapi_extra=INTENT_BODY,
    )
    async def submit_order_intent(request: Request, service: ServiceDep) -> Response:
        order = service.submit_json(await request.body(), request.headers.get("content-type"))
        return Response(created_body(order), status_code=201, media_type="application/json")

    return app


app = create_app(load_settings())
