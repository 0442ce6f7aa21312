"""The kill switch: the trading state, read and changed."""

from typing import Any

from fastapi import APIRouter

from app.service.orders import OrderService
from app.web.responses import STORE_DOWN, TOO_LARGE
from app.web.schemas import BadRequestBody, TradingStateIn, TradingStateOut
from app.web.views import trading_state_view


def add_routes(routes: APIRouter, service: OrderService) -> None:

    @routes.get("/execution/trading-state", response_model=TradingStateOut, responses=STORE_DOWN)
    async def get_trading_state() -> dict[str, Any]:
        return trading_state_view(await service.trading_state())

    @routes.put(
        "/execution/trading-state",
        response_model=TradingStateOut,
        responses={
            400: {"model": BadRequestBody, "description": "Not a valid trading state change"},
            **TOO_LARGE,
            **STORE_DOWN,
        },
    )
    async def put_trading_state(change: TradingStateIn) -> dict[str, Any]:
        state = await service.set_trading_state(change.state, change.reason, change.cancel_open_orders)
        return trading_state_view(state)
