"""One log line per HTTP request, in place of uvicorn's access line."""

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import EventLog


class RequestLogMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): it only watches the response start go by."""

    def __init__(self, app: ASGIApp, events: EventLog) -> None:
        self.app = app
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server sends if the app fails before starting a response

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.events.info(
                "HTTP request",
                {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
