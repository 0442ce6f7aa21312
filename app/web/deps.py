"""Dependencies routes declare: checks that need the matched route."""

import re
import types
from collections.abc import Collection, Iterable
from typing import Any, Union, get_args, get_origin

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.service.errors import InvalidQuery


async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is a 400, as is one given twice: a
    misspelt filter (`stauts=NEW`) must not quietly list every order. So is a number
    not written as whole digits (`after=0.0`, `limit= 5`), which would otherwise be
    read as the integer it happens to equal."""
    if not request.scope["query_string"]:
        return
    route = request.scope.get("route")
    known: dict[str, bool] = {}
    if isinstance(route, APIRoute):
        known = _query_params(route.dependant)
    items = request.query_params.multi_items()
    names = [name for name, _ in items]
    refuse_unknown(names, known)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidQuery(f"Query parameter(s) given more than once: {', '.join(repr(name) for name in repeated)}")
    for name, value in items:
        if known[name] and not DIGITS.fullmatch(value):
            raise InvalidQuery(f"Query parameter {name!r} must be a whole number in digits, not {value[:32]!r}")


def refuse_unknown(names: Iterable[str], known: Collection[str]) -> None:
    """InvalidQuery naming the query parameters (up to ten) not in `known`."""
    unknown = sorted({name for name in names if name not in known})
    if unknown:
        raise InvalidQuery(f"Unknown query parameter(s): {', '.join(repr(name[:64]) for name in unknown[:10])}")


DIGITS = re.compile(r"[0-9]{1,20}")


def _query_params(dependant: Dependant) -> dict[str, bool]:
    """The route's query parameters, each with whether it is an integer."""
    params = {param.alias: _is_integer(param.field_info.annotation) for param in dependant.query_params}
    for sub in dependant.dependencies:
        params |= _query_params(sub)
    return params


def _is_integer(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return int in get_args(annotation)
    return annotation is int
