"""A client of the event stream (Server-Sent Events) for tests against a real server."""

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from tests.uvicorn_server import Server

STREAM = "/execution/events/stream"


class EventStream:
    """A client of the stream: one message at a time, as the server framed it."""

    def __init__(
        self,
        server: Server,
        path: str = STREAM,
        headers: dict[str, str] | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        address = urlsplit(server.base_url)
        self.connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=20)
        if receive_buffer is not None:  # a small window: the server's sends back up when this stops reading
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.settimeout(20)
            sock.connect((address.hostname, address.port))
            self.connection.sock = sock
        self.connection.request("GET", path, headers=headers or {})
        self.response = self.connection.getresponse()

    def message(self) -> dict[str, Any]:
        """The next message: its fields (`id`, `event`, `data` parsed as JSON) or, for
        a heartbeat, its `comment`."""
        fields: dict[str, Any] = {}
        while True:
            line = self.response.readline().decode()
            if line in ("\n", ""):
                if fields or line == "":
                    return fields
                continue
            name, _, value = line.rstrip("\n").partition(": ")
            fields["comment" if name == "" else name] = json.loads(value) if name == "data" else value

    def events(self, count: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while len(found) < count:
            message = self.message()
            assert message, f"the stream ended after {len(found)} of {count} events"
            if "data" in message:
                found.append(message)
        return found

    def close(self) -> None:
        self.connection.close()


@contextmanager
def stream(server: Server, path: str = STREAM, headers: dict[str, str] | None = None) -> Iterator[EventStream]:
    opened = EventStream(server, path, headers)
    try:
        yield opened
    finally:
        opened.close()
