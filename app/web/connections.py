"""uvicorn's HTTP protocol with bounds on what a client may hold open.

uvicorn times out an idle connection only after it has answered a request on it, and
bounds neither how long a request may take to arrive nor how large its header lines
may grow: one client could hold connections (and file descriptors) for good with
connections it never uses, or headers and bodies it never finishes. This protocol
closes

- a connection that sends nothing: after `--timeout-keep-alive` (uvicorn's own idle
  bound, now from the moment the connection opens, not only between requests);
- a request not received whole (headers and body) within REQUEST_TIMEOUT_MS of its
  first byte: answered `408`;
- a request whose header block grows past MAX_HEADER_BYTES: answered `431`.

Run it with `uvicorn app.main:app --http app.web.connections:BoundedHttpProtocol`
(the container image does).
"""

import asyncio
import functools
import json
from dataclasses import dataclass

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.service.settings import load_settings

REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class ConnectionLimits:
    request_timeout: float  # seconds from a request's first byte to its last
    max_header_bytes: int


@functools.cache
def configured_limits() -> ConnectionLimits:
    """The limits from the environment, read once per process (the app has already
    refused to start on an invalid value)."""
    settings = load_settings()
    return ConnectionLimits(settings.request_timeout_ms / 1000, settings.max_header_bytes)


def error_response(status: int, detail: str, code: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, with the service's error body."""
    body = json.dumps({"detail": detail, "code": code}).encode()
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
        status,
        REASONS[status],
        len(body),
    )
    return head + body


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections that idle or dawdle."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = configured_limits()
        self._deadline: asyncio.TimerHandle | None = None
        # The header block's size, counted two ways: whole reads while it is incomplete
        # (a line still arriving is bounded to within one read), and the parsed request
        # line and headers (a block that arrives in one read).
        self._awaiting_head = True
        self._head_bytes = 0
        self._parsed_bytes = 0
        # Set once this connection is answered with an error: what else the parser still
        # finds in the bytes already read is ignored.
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Idle from the start: the keep-alive timer uvicorn arms after each response.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > self.limits.max_header_bytes:
            self._headers_too_large()

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._parsed_bytes = 0
        self._stop_deadline()
        self._deadline = self.loop.call_later(self.limits.request_timeout, self._request_timed_out)

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._head_bytes = 0
        if self._refused or self._parsed_bytes > self.limits.max_header_bytes:
            self._headers_too_large()
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._stop_deadline()
        self._awaiting_head = True
        if not self._refused:
            super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_deadline()  # the WebSocket protocol takes the connection from here
        super().handle_websocket_upgrade()

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self) -> None:
        self._deadline = None
        seconds = f"{self.limits.request_timeout:g}"
        self._refuse(408, f"The request was not received whole within {seconds} s", "REQUEST_TIMEOUT")

    def _headers_too_large(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(431, f"The request's headers are over {limit} bytes", "HEADERS_TOO_LARGE")

    def _refuse(self, status: int, detail: str, code: str) -> None:
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._stop_deadline()
        self.logger.warning("%d %s from %s: %s; connection closed", status, code, self.client, detail)
        if self.cycle is not None and not self.cycle.response_complete:
            # The application reading the body hears that it ended; if it has begun
            # its answer, the connection is only closed.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            if self.cycle.response_started:
                self.transport.close()
                return
        self.transport.write(error_response(status, detail, code))
        self.transport.close()
