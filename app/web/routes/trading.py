"""The kill switch: the trading state, read and changed."""

from enum import Enum
from typing import Any

from fastapi import APIRouter

from app.service.orders import OrderService
from app.web.responses import STORE_DOWN
from app.web.schemas import BadRequestBody, TradingStateIn, TradingStateOut
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
        responses={400: {"model": BadRequestBody, "description": "Not a valid trading state change"}, **STORE_DOWN},
        tags=TAGS,
    )
    async def set_trading_state(change: TradingStateIn) -> dict[str, Any]:
        """Turn the kill switch, with a reason; `cancel_open_orders` also cancels every open
        order in the same step. Answers the new state."""
        state = await service.set_trading_state(change.state, change.reason, change.cancel_open_orders)
        return trading_state_view(state)
