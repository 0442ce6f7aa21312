"""Every error answered as JSON with a `detail` (and `code`), its HTTP status chosen
here, in one place: the layers below raise errors that know nothing of HTTP."""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match

from app.core.errors import (
    AccountMismatch,
    FundsUnknown,
    FutureMarketData,
    IntentRefused,
    MarketDataRefused,
    ServiceError,
)
from app.service.errors import (
    DuplicateIntent,
    InstrumentNotAllowed,
    InvalidIntent,
    InvalidQuery,
    OrderNotCancelable,
    OrderNotFound,
    RateLimited,
)
from app.service.journal import EventsExpired
from app.store.errors import StoreFull, StoreUnavailable


class BodyTooLarge(ServiceError):
    code = "BODY_TOO_LARGE"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"Request body is larger than {max_bytes} bytes")


class MethodNotAllowed(ServiceError):
    code = "METHOD_NOT_ALLOWED"


class NoSuchPath(ServiceError):
    code = "NOT_FOUND"


class ClientDisconnected(ServiceError):
    code = "CLIENT_DISCONNECTED"


class InternalError(ServiceError):
    """A fault of this service's: logged with its traceback under the request's id."""

    code = "INTERNAL_ERROR"

    def __init__(self, request_id: str) -> None:
        super().__init__("Internal server error; quote the request_id when reporting it", request_id=request_id)


class Unauthorized(ServiceError):
    code = "UNAUTHORIZED"


STATUS: dict[type[ServiceError], int] = {
    InvalidIntent: 400,
    InvalidQuery: 400,
    ClientDisconnected: 400,
    InstrumentNotAllowed: 400,
    IntentRefused: 400,
    Unauthorized: 401,
    OrderNotFound: 404,
    DuplicateIntent: 409,
    MarketDataRefused: 409,
    FutureMarketData: 400,
    OrderNotCancelable: 409,
    NoSuchPath: 404,
    MethodNotAllowed: 405,
    EventsExpired: 410,
    BodyTooLarge: 413,
    RateLimited: 429,
    InternalError: 500,
    AccountMismatch: 500,
    StoreUnavailable: 503,
    StoreFull: 503,
    FundsUnknown: 503,
}


def status_of(error: ServiceError) -> int:
    """The HTTP status of `error` (its class's, or its nearest base's; 400 otherwise)."""
    for kind in type(error).__mro__:
        status = STATUS.get(kind)
        if status is not None:
            return status
    return 400


def body_bytes(error: ServiceError) -> bytes:
    # Compact, as every other JSON answer (FastAPI's JSONResponse) is.
    return json.dumps(error.body(), separators=(",", ":")).encode()


# A body with 100,000 unknown fields must not get a 10 MB answer and log line.
MAX_LISTED_ERRORS = 10
MAX_LOC_PART = 64


def _short(part: str | int) -> str | int:
    if isinstance(part, str) and len(part) > MAX_LOC_PART:
        return part[:MAX_LOC_PART] + "..."
    return part


def invalid_from_errors(all_errors: Sequence[Mapping[str, Any]], what: str) -> InvalidIntent:
    """One 400 from pydantic's error list: a readable `detail` and the `errors` list."""
    errors = [
        {"loc": [_short(part) for part in error["loc"] if part != "body"], "msg": error["msg"]}
        for error in all_errors[:MAX_LISTED_ERRORS]
    ]
    parts = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors)
    if len(all_errors) > MAX_LISTED_ERRORS:
        parts += f"; and {len(all_errors) - MAX_LISTED_ERRORS} more"
    return InvalidIntent(f"Invalid {what}: {parts}", errors=errors)


async def _render_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return JSONResponse(exc.body(), status_code=status_of(exc), headers=headers)


async def _render_request_validation(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI answers 422 for invalid query or path parameters; this service answers
    # every invalid request 400.
    assert isinstance(exc, RequestValidationError)
    error = invalid_from_errors(exc.errors(), "request")
    return JSONResponse(error.body(), status_code=status_of(error))


async def _render_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    # The client hung up mid-body: nobody will read this answer, but the request line
    # says 400 rather than 500, and no traceback fills the log.
    error = ClientDisconnected("Client disconnected before the request body was complete")
    return JSONResponse(error.body(), status_code=status_of(error))


# Allow lists methods in this order (others after them, by name).
_METHOD_ORDER = {method: n for n, method in enumerate(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))}


def allowed_methods(routes: Sequence[BaseRoute], scope: Mapping[str, Any]) -> list[str]:
    """Every method some route answers on the request's path. The router's own 405
    names only the first route that matched the path, and a path here has a route per
    method (`GET` and `PUT /execution/trading-state`; `GET` and `HEAD /healthz`)."""
    methods: set[str] = set()
    for route in routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(dict(scope))[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods, key=lambda method: (_METHOD_ORDER.get(method, len(_METHOD_ORDER)), method))


async def _render_http_exception(request: Request, exc: Exception) -> Response:
    # The router's 404 and 405, with a code like every other error; a 405 names every
    # method of its path in Allow.
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        missing = NoSuchPath("Not Found")
        return JSONResponse(missing.body(), status_code=status_of(missing))
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    error = MethodNotAllowed("Method Not Allowed")
    allow = ", ".join(allowed_methods(request.app.router.routes, request.scope))
    return JSONResponse(error.body(), status_code=status_of(error), headers={"Allow": allow})


def add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _render_service_error)
    app.add_exception_handler(HTTPException, _render_http_exception)
    app.add_exception_handler(RequestValidationError, _render_request_validation)
    app.add_exception_handler(ClientDisconnect, _render_client_disconnect)
