"""ASGI middleware, outermost first: the request's id, log line, latency and last-resort
500; the request body's rules (a size cap, no waiting for a body already refused); the
bearer token. All pure ASGI (no BaseHTTPMiddleware): each only looks at what goes by."""

import hmac
import os
import time
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import ServiceError
from app.ops.logs import EventLog, current_request_id
from app.web.errors import BodyTooLarge, InternalError, Unauthorized, body_bytes, status_of

# (route template, method, status, seconds): what the request metrics observe.
Observer = Callable[[str, str, int, float], None]
UNMATCHED_ROUTE = "<unmatched>"  # answered before routing (401, 413) or by no route (404)
MAX_REQUEST_ID_LENGTH = 128
REQUEST_ID_HEADER = b"x-request-id"
Headers = Sequence[tuple[bytes, bytes]]
JSON_HEADERS: Headers = ((b"content-type", b"application/json"),)
CONNECTION_CLOSE = (b"connection", b"close")
CLOSING_JSON_HEADERS: Headers = (*JSON_HEADERS, CONNECTION_CLOSE)
# Methods named as themselves in metrics and logs; any other is OTHER, so a client
# cannot mint a metric series (or a 4 KB log field) per made-up method.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_path(scope: Scope) -> str:
    """The path routes match: without the root path a proxy mounts the service under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def accepted_request_id(value: bytes) -> str | None:
    """A client's X-Request-ID if it is 1-128 visible ASCII characters, else None (a
    value that could break a log line or a header is replaced, not echoed)."""
    if 0 < len(value) <= MAX_REQUEST_ID_LENGTH and all(0x21 <= byte <= 0x7E for byte in value):
        return value.decode("ascii")
    return None


def new_request_id() -> str:
    return os.urandom(16).hex()


async def send_error(send: Send, error: ServiceError, headers: Headers = JSON_HEADERS) -> None:
    """Answer with `error` as JSON, from middleware (outside the app's handlers)."""
    body = body_bytes(error)
    all_headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status_of(error), "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


class RequestMiddleware:
    """Outermost: every request gets an id (the client's X-Request-ID, or a new one),
    returned on its response and carried by every log line logged while serving it.
    Writes the request's line, observes its latency, and answers any exception that
    escapes the app with a JSON 500 naming the id (logged with its traceback), so the
    process keeps serving and the client can quote the id."""

    def __init__(self, app: ASGIApp, events: EventLog, observe: Observer) -> None:
        self.app = app
        self.events = events
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                request_id = accepted_request_id(value)
                break
        if request_id is None:
            request_id = new_request_id()
        id_header = (REQUEST_ID_HEADER, request_id.encode())
        token = current_request_id.set(request_id)
        status = 0  # no response started yet

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            fields = {"method": _method(scope), "path": scope["path"], "error": type(error).__name__}
            self.events.error("Unhandled error", fields, error)
            if status:  # the answer has begun: the server can only cut the connection
                raise
            await send_error(send_with_id, InternalError(request_id))
        finally:
            seconds = time.perf_counter() - started
            status = status or 500  # what the server sends for an app that ended without answering
            self.events.info(
                "HTTP request",
                {
                    "method": _method(scope),
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )
            route = scope.get("route")
            self.observe(getattr(route, "path", UNMATCHED_ROUTE), _method(scope), status, seconds)
            current_request_id.reset(token)


def _method(scope: Scope) -> str:
    method: str = scope["method"]
    return method if method in KNOWN_METHODS else "OTHER"


class BearerTokenMiddleware:
    """Every path but `open_paths` needs `Authorization: Bearer <token>`; else 401.
    The event stream and WebSocket (`query_token_paths`) also take it as the
    `access_token` query parameter: a browser's EventSource and WebSocket cannot send
    a header. Compared in constant time, so the answer's timing does not reveal the
    token. A WebSocket without it is refused before it is accepted (HTTP 403)."""

    def __init__(
        self, app: ASGIApp, token: str, open_paths: frozenset[str], query_token_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.token = token.encode()
        self.open_paths = open_paths
        self.query_token_paths = query_token_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or route_path(scope) in self.open_paths:
            await self.app(scope, receive, send)
            return
        if hmac.compare_digest(self._supplied(scope), self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "Missing or wrong API token"})
            return
        error = Unauthorized("Missing or wrong bearer token: send Authorization: Bearer <EXECUTION_API_TOKEN>")
        await send_error(send, error, [*JSON_HEADERS, (b"www-authenticate", b'Bearer realm="execution"')])

    def _supplied(self, scope: Scope) -> bytes:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, supplied = value.partition(b" ")
                return bytes(supplied.strip()) if scheme.lower() == b"bearer" else b""
        if route_path(scope) in self.query_token_paths:
            query: bytes = scope.get("query_string", b"")
            for name, value in parse_qsl(query.decode("latin-1")):
                if name == "access_token":
                    return value.encode()
        return b""


class RequestBodyMiddleware:
    """What every route's request body gets, whatever the route does with it.

    A body over `max_bytes` is refused (413) without reading more than that. A declared
    Content-Length over the limit is answered at once. A body sent without one (chunked)
    is counted as it arrives; the read that passes the limit is answered 413 here, the
    app is told the client has gone (`http.disconnect`), and what the app answers after
    that is dropped. The 413 must not depend on the route: FastAPI's own body parameters
    turn any error raised while reading into a 400.

    An answer given before the body has all arrived (a 429 or 401 before it is read, a
    413) closes the connection (`Connection: close`). Otherwise the server goes on
    reading, to throw away, a body the answer has refused: a client sending it slowly
    holds the connection until its last byte, and uvicorn then keeps it open with no
    keep-alive timeout.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.larger = dict(larger or {})  # paths whose bodies may be larger: their limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope["path"], self.default_max_bytes)
        pending = False  # body still to come from the client
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > max_bytes:
                    await send_error(send, BodyTooLarge(max_bytes), CLOSING_JSON_HEADERS)
                    return
                pending = not value.isdigit() or int(value) > 0
            elif name == b"transfer-encoding":
                pending = True
        received = 0
        started = False  # a response has begun (the app's or the 413)
        refused = False  # this middleware answered 413: the app's answer goes nowhere

        async def counting_receive() -> Message:
            nonlocal received, started, refused, pending
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    if not started:  # else the app's answer has begun and only a cut is left
                        started = refused = True
                        await send_error(send, BodyTooLarge(max_bytes), CLOSING_JSON_HEADERS)
                    return {"type": "http.disconnect"}
                pending = message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if not started:
                started = True
                if pending:
                    message = {**message, "headers": [*message.get("headers", ()), CONNECTION_CLOSE]}
            await send(message)

        await self.app(scope, counting_receive, guarded_send)
