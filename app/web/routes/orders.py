"""Order intents in; orders, their fills and cancels out."""

from enum import Enum
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
    RATE_LIMITED,
    NameFilter,
)
from app.web.schemas import NO_CONTROL_CHARS, NotCancelableBody, OrderFillPage, OrderOut, OrderPage
from app.web.views import created_body, fill_view, order_view

TAGS: list[str | Enum] = ["orders"]

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
        responses=INTENT_RESPONSES | (RATE_LIMITED if service.rate_limited else {}),
        openapi_extra=INTENT_BODY,
        tags=TAGS,
    )
    async def submit_order_intent(request: Request) -> Response:
        """Ask for an order. Checked in this order: the rate limit, the body, the
        allowlists, the idempotency key, then the trading controls. The 201 shows the order
        as accepted (NEW), even if it filled at once; read it back for what happened since.
        A retry with the same `idempotency_key` never makes a second order: its 409 names
        the first."""
        service.check_rate()
        try:
            intent = parse_intent(await request.body(), request.headers.get("content-type"))
        except ServiceError as error:
            service.refuse(error)  # logged and counted like every other refused intent
        order = await service.submit(intent)
        return Response(created_body(order), status_code=201, media_type="application/json")

    @routes.get("/execution/orders/{order_id}", response_model=OrderOut, responses=ORDER_NOT_FOUND, tags=TAGS)
    async def get_order(order_id: str) -> dict[str, Any]:
        """One order as it is now: status, filled quantity, average fill price and fees."""
        return order_view(await service.get_order(order_id))

    # A misspelt filter (`stauts=NEW`) must be a 400, not a listing of every order.
    @routes.get(
        "/execution/orders",
        response_model=OrderPage,
        responses=BAD_QUERY,
        dependencies=[Depends(refuse_unknown_query)],
        tags=TAGS,
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
        """Orders newest first, a page at a time (`next_cursor` asks for the next), with
        optional filters. `idempotency_key` finds the order an unanswered intent made, if
        any. A query parameter not listed here is a 400."""
        keep = OrderFilter(parse_statuses(status), exchange, symbol, side, idempotency_key)
        orders, next_cursor = await service.list_orders(keep, limit, cursor)
        return json_answer({"items": [order_view(order) for order in orders], "next_cursor": next_cursor})

    @routes.get(
        "/execution/orders/{order_id}/fills",
        response_model=OrderFillPage,
        responses={**ORDER_NOT_FOUND, **BAD_QUERY},
        dependencies=[Depends(refuse_unknown_query)],
        tags=TAGS,
    )
    async def list_order_fills(
        order_id: str,
        *,
        after: Annotated[
            int,
            Query(ge=0, le=MAX_SEQ, description="Only fills with a greater seq (a next_cursor)"),
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> Response:
        """An order's fills, oldest first, a page at a time (`next_cursor` is the `after`
        of the next page): each one's quantity, price, fee and liquidity (TAKER or MAKER)."""
        order, fills, next_cursor = await service.fills_of(order_id, after, limit)
        return json_answer({"items": [fill_view(order, fill) for fill in fills], "next_cursor": next_cursor})

    @routes.post(
        "/execution/orders/{order_id}/cancel",
        response_model=OrderOut,
        responses={
            **ORDER_NOT_FOUND,
            202: {"model": OrderOut, "description": "A live order whose exchange has not confirmed the cancel yet"},
            409: {"model": NotCancelableBody, "description": "The order has already ended"},
        },
        tags=TAGS,
    )
    async def cancel_order(order_id: str, response: Response) -> dict[str, Any]:
        """Cancel an open (NEW or PARTIALLY_FILLED) order; what it filled stays filled.
        Answers the canceled order. A live order is canceled at its exchange: `200` once
        the exchange confirms (within 5 s), else `202` with the order as it is (still
        open; the cancel goes on, and its `canceled` event tells when it ends)."""
        order = await service.cancel(order_id)
        if order.is_open:
            response.status_code = 202
        return order_view(order)
