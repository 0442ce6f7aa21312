"""What the account holds: positions per instrument and paper balances per asset."""

from enum import Enum
from typing import Any

from fastapi import APIRouter

from app.service.orders import OrderService
from app.web.responses import STORE_DOWN
from app.web.schemas import BalanceList, PositionList
from app.web.views import balance_view, position_view

TAGS: list[str | Enum] = ["account"]


def add_routes(routes: APIRouter, service: OrderService) -> None:

    @routes.get("/execution/balances", response_model=BalanceList, responses=STORE_DOWN, tags=TAGS)
    async def list_balances() -> dict[str, Any]:
        """The paper balance of each asset: total, reserved by open orders, and free.
        Empty unless the service was started with PAPER_BALANCES."""
        held = await service.balances()
        return {"items": [balance_view(asset, held[asset]) for asset in sorted(held)]}

    @routes.get("/execution/positions", response_model=PositionList, responses=STORE_DOWN, tags=TAGS)
    async def list_positions() -> dict[str, Any]:
        """The position in each instrument traded: signed quantity, average entry price,
        realized profit and fees, marked at the mid of its latest quote."""
        return {"items": [position_view(view) for view in await service.positions()]}
