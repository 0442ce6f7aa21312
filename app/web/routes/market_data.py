"""Market data in: quotes, books and trades, which fill the resting orders they reach."""

from enum import Enum
from typing import Any

from fastapi import APIRouter, Request

from app.core.events import OrderFilled
from app.service.orders import OrderService
from app.web.parsing import parse_book, parse_quote, parse_trade
from app.web.responses import (
    BOOK_BODY,
    BOOK_RESPONSES,
    QUOTE_BODY,
    QUOTE_RESPONSES,
    TRADE_BODY,
    TRADE_RESPONSES,
)
from app.web.schemas import FillList
from app.web.views import fill_view

TAGS: list[str | Enum] = ["market data"]


def _fill_list(filled: list[OrderFilled]) -> dict[str, Any]:
    """The answer to market data: the fills it made (`FillList`)."""
    return {"items": [fill_view(event.order, event.fill) for event in filled]}


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
        return _fill_list(filled)

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
        return _fill_list(filled)

    @routes.post(
        "/execution/market-data/trades",
        response_model=FillList,
        responses=TRADE_RESPONSES,
        openapi_extra=TRADE_BODY,
        tags=TAGS,
    )
    async def post_trade(request: Request) -> dict[str, Any]:
        """A print on the tape for an instrument. Resting LIMIT orders at its price fill
        once the print has consumed the queue ahead of them; those at a better price
        (it traded through them) fill at once; each up to what the print leaves. Answers
        those fills."""
        filled = await service.add_trade(parse_trade(await request.body(), request.headers.get("content-type")))
        return _fill_list(filled)
