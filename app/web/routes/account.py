"""What the account holds: positions per instrument and paper balances per asset."""

from typing import Any

from fastapi import APIRouter

from app.service.orders import OrderService
from app.web.responses import STORE_DOWN
from app.web.schemas import BalanceList, PositionList
from app.web.views import balance_view, position_view


def add_routes(routes: APIRouter, service: OrderService) -> None:

    @routes.get("/execution/balances", response_model=BalanceList, responses=STORE_DOWN)
    async def balances() -> dict[str, Any]:
        held = await service.balances()
        return {"items": [balance_view(asset, held[asset]) for asset in sorted(held)]}

    @routes.get("/execution/positions", response_model=PositionList, responses=STORE_DOWN)
    async def positions() -> dict[str, Any]:
        return {"items": [position_view(view) for view in await service.positions()]}
