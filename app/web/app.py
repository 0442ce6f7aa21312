"""The FastAPI application: a factory, and thin routes that delegate to the service."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response

from app.ops.clock import iso_z, now_micros
from app.ops.logs import EventLog, configure_logging
from app.ops.metrics import CONTENT_TYPE, Metrics
from app.service.orders import CURSOR_PATTERN, OrderService
from app.service.settings import Settings
from app.store.memory import OrderFilter, OrderStore
from app.store.open import load_store
from app.web.deps import refuse_unknown_query
from app.web.errors import add_exception_handlers
from app.web.middleware import BearerTokenMiddleware, BodyLimitMiddleware, RequestMiddleware
from app.web.openapi import OPEN_PATHS, install_openapi
from app.web.schemas import (
    NO_CONTROL_CHARS,
    BadRequestBody,
    BalanceList,
    Capabilities,
    DuplicateBody,
    ErrorBody,
    FillList,
    Health,
    OrderCreated,
    OrderIntent,
    OrderOut,
    OrderPage,
    OrderStatus,
    PositionList,
    QuoteIn,
    Side,
    TradingStateIn,
    TradingStateOut,
)
from app.web.views import balance_view, created_body, fill_view, order_view, position_view, trading_state_view

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
QUOTE_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": QuoteIn.model_json_schema()}}}
}
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# Filters take what an intent's fields take: a value no order can have is a 400, not a
# query the database must refuse (PostgreSQL text holds no NUL).
NameFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NO_CONTROL_CHARS)]

# The route reads the raw body itself (one strict parse, no 422), so the OpenAPI
# document is told about the body here.
INTENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": OrderIntent.model_json_schema()}},
    }
}


def create_app(settings: Settings, store: OrderStore | None = None, *, freeze_gc: bool = False) -> FastAPI:
    """The app around `store`, or around the store `settings.storage_url` names, which
    it then also closes at shutdown (a store passed in belongs to the caller).

    `freeze_gc` (for the server process, not tests): once started, everything made so
    far (modules, the OpenAPI document) is moved out of the garbage collector's sight.
    A full collection walks every tracked object; with the start-up objects included,
    one landing mid-load stalled every request in flight for 60 ms (bench p99)."""
    events = EventLog(configure_logging(settings.service_name, settings.log_level_number, settings.log_format))
    owned = store is None
    the_store = load_store(settings.storage_url) if store is None else store
    metrics = Metrics()
    service = OrderService(settings, the_store, events, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if freeze_gc:
            app.openapi()  # built now, so it is frozen too
            gc.collect()
            gc.freeze()
        yield
        if owned:
            the_store.close()

    # redirect_slashes off: a 307 to a Location built from the client's Host header is
    # no answer for a bot; `/execution/order-intents/` is a plain 404.
    app = FastAPI(
        title="Paper execution service",
        version=settings.service_version,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.service = service
    # Routes use `service` from this closure: a dependency per request would cost the
    # hot path a dependency solve (headers, query and cookies parsed again).
    add_exception_handlers(app)
    # Each added middleware wraps the ones before: the request middleware is outermost
    # and sees every answer, a 401 or a 413 included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    token = settings.api_token
    if token is not None:
        app.add_middleware(BearerTokenMiddleware, token=token, open_paths=OPEN_PATHS)
    app.add_middleware(RequestMiddleware, events=events, observe=metrics.observe_request)

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        # Cheap on purpose: no database round trip, just which store this process uses.
        return Health(status="ok", timestamp=iso_z(now_micros()), store=the_store.name)

    @app.head("/healthz", include_in_schema=False)
    async def healthz_head() -> Response:
        return Response(media_type="application/json")  # some probes only send HEAD

    @app.get("/capabilities", response_model=Capabilities)
    async def capabilities() -> Capabilities:
        return await service.capabilities()

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}, "description": "Prometheus text format"},
            **STORE_DOWN,
        },
    )
    async def prometheus_metrics() -> Response:
        return Response(await service.metrics_text(), media_type=CONTENT_TYPE)

    @app.post(
        "/execution/order-intents",
        status_code=201,
        response_class=Response,
        responses=INTENT_RESPONSES,
        openapi_extra=INTENT_BODY,
    )
    async def submit_order_intent(request: Request) -> Response:
        order = await service.submit_json(await request.body(), request.headers.get("content-type"))
        return Response(created_body(order), status_code=201, media_type="application/json")

    @app.get("/execution/orders/{order_id}", response_model=OrderOut, responses=ORDER_NOT_FOUND)
    async def get_order(order_id: str) -> dict[str, Any]:
        return order_view(await service.get_order(order_id))

    # A misspelt filter (`stauts=NEW`) must be a 400, not a listing of every order.
    @app.get(
        "/execution/orders",
        response_model=OrderPage,
        responses=BAD_QUERY,
        dependencies=[Depends(refuse_unknown_query)],
    )
    async def list_orders(
        *,
        status: OrderStatus | None = None,
        exchange: NameFilter = None,
        symbol: NameFilter = None,
        side: Side | None = None,
        idempotency_key: Annotated[str | None, Query(min_length=1, max_length=255, pattern=NO_CONTROL_CHARS)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: Annotated[
            str | None, Query(pattern=CURSOR_PATTERN, description="A next_cursor from a previous page")
        ] = None,
    ) -> dict[str, Any]:
        keep = OrderFilter(status, exchange, symbol, side, idempotency_key)
        orders, next_cursor = await service.list_orders(keep, limit, cursor)
        return {"items": [order_view(order) for order in orders], "next_cursor": next_cursor}

    @app.get("/execution/orders/{order_id}/fills", response_model=FillList, responses=ORDER_NOT_FOUND)
    async def order_fills(order_id: str) -> dict[str, Any]:
        order, fills = await service.fills_of(order_id)
        return {"items": [fill_view(order, fill) for fill in fills]}

    @app.post(
        "/execution/orders/{order_id}/cancel",
        response_model=OrderOut,
        responses={**ORDER_NOT_FOUND, 409: {"model": ErrorBody, "description": "Already FILLED or CANCELED"}},
    )
    async def cancel_order(order_id: str) -> dict[str, Any]:
        return order_view(await service.cancel(order_id))

    @app.post(
        "/execution/market-data/quotes",
        response_model=FillList,
        responses=QUOTE_RESPONSES,
        openapi_extra=QUOTE_BODY,
    )
    async def post_quote(request: Request) -> dict[str, Any]:
        executions = await service.add_quote_json(await request.body(), request.headers.get("content-type"))
        return {"items": [fill_view(execution.order, execution.fill) for execution in executions]}

    @app.get("/execution/trading-state", response_model=TradingStateOut, responses=STORE_DOWN)
    async def get_trading_state() -> dict[str, Any]:
        return trading_state_view(await service.trading_state())

    @app.put(
        "/execution/trading-state",
        response_model=TradingStateOut,
        responses={400: {"model": BadRequestBody, "description": "Not a valid trading state change"}, **STORE_DOWN},
    )
    async def put_trading_state(change: TradingStateIn) -> dict[str, Any]:
        return trading_state_view(await service.set_trading_state(change))

    @app.get("/execution/balances", response_model=BalanceList, responses=STORE_DOWN)
    async def balances() -> dict[str, Any]:
        held = await service.balances()
        return {"items": [balance_view(asset, held[asset]) for asset in sorted(held)]}

    @app.get("/execution/positions", response_model=PositionList, responses=STORE_DOWN)
    async def positions() -> dict[str, Any]:
        return {"items": [position_view(view) for view in await service.positions()]}

    install_openapi(
        app, bearer_token=token is not None, exchanges=settings.allowed_exchanges, symbols=settings.allowed_symbols
    )
    return app
