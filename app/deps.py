"""What routes can ask for by name: the app-wide objects kept on `app.state`."""

from typing import Annotated, cast

from fastapi import Depends, Request

from app.service import OrderService


async def get_service(request: Request) -> OrderService:
    # async: a plain `def` dependency would be run in the threadpool on every request.
    return cast(OrderService, request.app.state.service)


ServiceDep = Annotated[OrderService, Depends(get_service)]
