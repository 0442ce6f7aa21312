"""Every error answered as JSON with a `detail`, registered in one place."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from app.core.errors import RateLimited, ServiceError, invalid_from_errors


async def _render_service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


async def _render_request_validation(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI answers 422 for invalid query or path parameters; this service answers
    # every invalid request 400.
    assert isinstance(exc, RequestValidationError)
    error = invalid_from_errors(exc.errors(), "request")
    return JSONResponse(error.body(), status_code=error.status_code)


async def _render_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    # The client hung up mid-body: nobody will read this answer, but the request line
    # says 400 rather than 500, and no traceback fills the log.
    return JSONResponse({"detail": "Client disconnected before the request body was complete"}, status_code=400)


def add_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _render_service_error)
    app.add_exception_handler(RequestValidationError, _render_request_validation)
    app.add_exception_handler(ClientDisconnect, _render_client_disconnect)
