"""Domain errors with their HTTP status, rendered as JSON in one place."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect


class ServiceError(Exception):
    """An error a client can act on: a status code and a JSON body with `detail`."""

    status_code = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, **self.extra}


class InvalidIntent(ServiceError):
    """The body is not a well-formed order intent."""


class InstrumentNotAllowed(ServiceError):
    """The exchange or symbol is not on its allowlist (or the allowlist is empty)."""


class DuplicateIntent(ServiceError):
    status_code = 409


# A body with 100,000 unknown fields must not get a 10 MB answer and log line.
MAX_LISTED_ERRORS = 10
MAX_LOC_PART = 64


def _short(part: str | int) -> str | int:
    if isinstance(part, str) and len(part) > MAX_LOC_PART:
        return part[:MAX_LOC_PART] + "..."
    return part


def invalid_from_validation(exc: ValidationError | RequestValidationError, what: str) -> InvalidIntent:
    """One 400 from pydantic's errors: a readable `detail` and the `errors` list."""
    all_errors = exc.errors()
    errors = [
        {"loc": [_short(part) for part in error["loc"] if part != "body"], "msg": error["msg"]}
        for error in all_errors[:MAX_LISTED_ERRORS]
    ]
    parts = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors)
    if len(all_errors) > MAX_LISTED_ERRORS:
        parts += f"; and {len(all_errors) - MAX_LISTED_ERRORS} more"
    return InvalidIntent(f"Invalid {what}: {parts}", errors=errors)


async def _render_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    # The client hung up mid-body: nobody will read this answer, but the request line
    # says 400 rather than 500, and no traceback fills the log.
    return JSONResponse({"detail": "Client disconnected before the request body was complete"}, status_code=400)


async def _render_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.body(), status_code=exc.status_code)


async def _render_request_validation(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI answers 422 by default; this service answers every invalid request 400.
    assert isinstance(exc, RequestValidationError)
    error = invalid_from_validation(exc, "request")
    return JSONResponse(error.body(), status_code=error.status_code)


def add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _render_service_error)
    app.add_exception_handler(RequestValidationError, _render_request_validation)
    app.add_exception_handler(ClientDisconnect, _render_client_disconnect)
