"""Dependencies routes declare: checks that need the matched route."""

from collections.abc import Collection, Iterable

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.service.errors import InvalidQuery


async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is a 400, as is one given twice: a
    misspelt filter (`stauts=NEW`) must not quietly list every order."""
    if not request.scope["query_string"]:
        return
    route = request.scope.get("route")
    known = set()
    if isinstance(route, APIRoute):
        known = _query_names(route.dependant)
    names = [name for name, _ in request.query_params.multi_items()]
    refuse_unknown(names, known)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidQuery(f"Query parameter(s) given more than once: {', '.join(repr(name) for name in repeated)}")


def refuse_unknown(names: Iterable[str], known: Collection[str]) -> None:
    """InvalidQuery naming the query parameters (up to ten) not in `known`."""
    unknown = sorted({name for name in names if name not in known})
    if unknown:
        raise InvalidQuery(f"Unknown query parameter(s): {', '.join(repr(name[:64]) for name in unknown[:10])}")


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
