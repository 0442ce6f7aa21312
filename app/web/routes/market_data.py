"""Market data in: quotes and books, which fill the resting orders they reach."""

from enum import Enum
from typing import Any

from fastapi import APIRouter, Request

from app.service.orders import OrderService
from app.web.parsing import parse_book, parse_quote
from app.web.responses import BOOK_BODY, BOOK_RESPONSES, QUOTE_BODY, QUOTE_RESPONSES
from app.web.schemas import FillList
from app.web.views import fill_view

TAGS: list[str | Enum] = ["market data"]


def add_routes(routes: APIRouter, service: OrderService) -> None:

    @routes.post(
        "/execution/market-data/quotes",
        response_model=FillList,
        responses=QUOTE_RESPONSES,
        openapi_extra=QUOTE_BODY,
        tags=TAGS,
    )
    async def post_quote(request: Request) -> dict[str, Any]:
        """A top-of-book quote for an instrument (`bid` at most `ask`). The service keeps
        the latest quote of each and fills the resting orders it reaches; answers those
        fills."""
        filled = await service.add_quote(parse_quote(await request.body(), request.headers.get("content-type")))
        return {"items": [fill_view(event.order, event.fill) for event in filled]}

    @routes.post(
        "/execution/market-data/books",
        response_model=FillList,
        responses=BOOK_RESPONSES,
        openapi_extra=BOOK_BODY,
        tags=TAGS,
    )
    async def post_book(request: Request) -> dict[str, Any]:
        """An order book with depth for an instrument: it replaces the instrument's book,
        and the resting orders it reaches fill walking its levels (one fill per level, at
        most the size shown there). Answers those fills."""
        filled = await service.add_book(parse_book(await request.body(), request.headers.get("content-type")))
        return {"items": [fill_view(event.order, event.fill) for event in filled]}
