"""Order intents in; orders, their fills and cancels out."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic_core import to_json

from app.core.errors import ServiceError
from app.core.vocabulary import OrderStatus, Side
from app.service.errors import InvalidQuery
from app.service.orders import CURSOR_PATTERN, OrderService
from app.store.base import OrderFilter
from app.web.deps import refuse_unknown_query
from app.web.parsing import parse_intent
from app.web.responses import (
    BAD_QUERY,
    DEFAULT_PAGE,
    INTENT_BODY,
    INTENT_RESPONSES,
    MAX_PAGE,
    MAX_SEQ,
    ORDER_NOT_FOUND,
    NameFilter,
)
from app.web.schemas import NO_CONTROL_CHARS, ErrorBody, OrderFillPage, OrderOut, OrderPage
from app.web.views import created_body, fill_view, order_view

_STATUS = "(" + "|".join(status.value for status in OrderStatus) + ")"
# Checked by parse_statuses, which says which value is wrong; the pattern is for the
# OpenAPI document (a schema-driven client learns the values from it).
Statuses = Annotated[
    str | None,
    Query(
        max_length=200,
        json_schema_extra={"pattern": f"^{_STATUS}(,{_STATUS})*$"},
        description="One status or several, comma-separated (any of them): "
        + ", ".join(status.value for status in OrderStatus),
    ),
]


def json_answer(body: dict[str, Any]) -> Response:
    """A page encoded by pydantic-core as it is: its views are built from stored values
    already checked, so the route's response model documents it but does not validate
    it again (that, and the standard JSON encoder, cost more than building the page)."""
    return Response(to_json(body), media_type="application/json")


def parse_statuses(text: str | None) -> frozenset[OrderStatus] | None:
    if text is None:
        return None
    names = text.split(",")
    unknown = [name for name in names if name not in OrderStatus.__members__.values()]
    if unknown:
        raise InvalidQuery(
            f"status must be order statuses, comma-separated ({', '.join(status.value for status in OrderStatus)}); "
            f"not {', '.join(repr(name[:32]) for name in unknown[:5])}"
        )
    return frozenset(OrderStatus(name) for name in names)


def add_routes(routes: APIRouter, service: OrderService) -> None:

    @routes.post(
        "/execution/order-intents",
        status_code=201,
        response_class=Response,
        responses=INTENT_RESPONSES,
        openapi_extra=INTENT_BODY,
    )
    async def submit_order_intent(request: Request) -> Response:
        service.check_rate()
        try:
            intent = parse_intent(await request.body(), request.headers.get("content-type"))
        except ServiceError as error:
            service.refuse(error)  # logged and counted like every other refused intent
        order = await service.submit(intent)
        return Response(created_body(order), status_code=201, media_type="application/json")

    @routes.get("/execution/orders/{order_id}", response_model=OrderOut, responses=ORDER_NOT_FOUND)
    async def get_order(order_id: str) -> dict[str, Any]:
        return order_view(await service.get_order(order_id))

    # A misspelt filter (`stauts=NEW`) must be a 400, not a listing of every order.
    @routes.get(
        "/execution/orders",
        response_model=OrderPage,
        responses=BAD_QUERY,
        dependencies=[Depends(refuse_unknown_query)],
    )
    async def list_orders(
        *,
        status: Statuses = None,
        exchange: NameFilter = None,
        symbol: NameFilter = None,
        side: Side | None = None,
        idempotency_key: Annotated[str | None, Query(min_length=1, max_length=255, pattern=NO_CONTROL_CHARS)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: Annotated[
            str | None, Query(pattern=CURSOR_PATTERN, description="A next_cursor from a previous page")
        ] = None,
    ) -> Response:
        keep = OrderFilter(parse_statuses(status), exchange, symbol, side, idempotency_key)
        orders, next_cursor = await service.list_orders(keep, limit, cursor)
        return json_answer({"items": [order_view(order) for order in orders], "next_cursor": next_cursor})

    @routes.get(
        "/execution/orders/{order_id}/fills",
        response_model=OrderFillPage,
        responses={**ORDER_NOT_FOUND, **BAD_QUERY},
        dependencies=[Depends(refuse_unknown_query)],
    )
    async def order_fills(
        order_id: str,
        *,
        after: Annotated[
            int,
            Query(ge=0, le=MAX_SEQ, description="Only fills with a greater seq (a next_cursor)"),
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> Response:
        order, fills, next_cursor = await service.fills_of(order_id, after, limit)
        return json_answer({"items": [fill_view(order, fill) for fill in fills], "next_cursor": next_cursor})

    @routes.post(
        "/execution/orders/{order_id}/cancel",
        response_model=OrderOut,
        responses={**ORDER_NOT_FOUND, 409: {"model": ErrorBody, "description": "Already FILLED or CANCELED"}},
    )
    async def cancel_order(order_id: str) -> dict[str, Any]:
        return order_view(await service.cancel(order_id))
