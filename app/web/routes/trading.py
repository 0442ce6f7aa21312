"""The kill switch: the trading state, read and changed."""

from enum import Enum
from typing import Any

from fastapi import APIRouter, Request

from app.service.orders import OrderService
from app.web.parsing import parse_trading_state
from app.web.responses import STORE_DOWN, TOO_LARGE, TRADING_STATE_BODY
from app.web.schemas import BadRequestBody, TradingStateOut
from app.web.views import trading_state_view

TAGS: list[str | Enum] = ["trading state"]


def add_routes(routes: APIRouter, service: OrderService) -> None:

    @routes.get("/execution/trading-state", response_model=TradingStateOut, responses=STORE_DOWN, tags=TAGS)
    async def get_trading_state() -> dict[str, Any]:
        """The kill switch: ACTIVE, REDUCING (only intents that shrink a position) or HALTED
        (no intents)."""
        return trading_state_view(await service.trading_state())

    @routes.put(
        "/execution/trading-state",
        response_model=TradingStateOut,
        responses={
            400: {"model": BadRequestBody, "description": "Not a valid trading state change"},
            **TOO_LARGE,
            **STORE_DOWN,
        },
        openapi_extra=TRADING_STATE_BODY,
        tags=TAGS,
    )
    async def set_trading_state(request: Request) -> dict[str, Any]:
        """Turn the kill switch, with a reason; `cancel_open_orders` also cancels every open
        order in the same step. Answers the new state."""
        state, reason, cancel_open = parse_trading_state(await request.body(), request.headers.get("content-type"))
        return trading_state_view(await service.set_trading_state(state, reason, cancel_open))
