"""Market data in: quotes, which fill the resting orders they reach."""

from typing import Any

from fastapi import APIRouter, Request

from app.service.orders import OrderService
from app.web.parsing import parse_quote
from app.web.responses import QUOTE_BODY, QUOTE_RESPONSES
from app.web.schemas import FillList
from app.web.views import fill_view


def add_routes(routes: APIRouter, service: OrderService) -> None:

    @routes.post(
        "/execution/market-data/quotes",
        response_model=FillList,
        responses=QUOTE_RESPONSES,
        openapi_extra=QUOTE_BODY,
    )
    async def post_quote(request: Request) -> dict[str, Any]:
        filled = await service.add_quote(parse_quote(await request.body(), request.headers.get("content-type")))
        return {"items": [fill_view(event.order, event.fill) for event in filled]}
