"""What routes can ask for by name: the app-wide objects kept on `app.state`."""

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.errors import InvalidQuery
from app.service import OrderService


async def get_service(request: Request) -> OrderService:
    # async: a plain `def` dependency would be run in the threadpool on every request.
    return cast(OrderService, request.app.state.service)


ServiceDep = Annotated[OrderService, Depends(get_service)]


async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is a 400, as is one given twice: a
    misspelt filter (`stauts=NEW`) must not quietly list every order."""
    if not request.scope["query_string"]:
        return  # the hot path: order intents carry no query
    route = request.scope.get("route")
    known = set()
    if isinstance(route, APIRoute):
        known = _query_names(route.dependant)
    names = [name for name, _ in request.query_params.multi_items()]
    unknown = sorted({name for name in names if name not in known})
    if unknown:
        raise InvalidQuery(f"Unknown query parameter(s): {', '.join(repr(name[:64]) for name in unknown[:10])}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidQuery(f"Query parameter(s) given more than once: {', '.join(repr(name) for name in repeated)}")


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
