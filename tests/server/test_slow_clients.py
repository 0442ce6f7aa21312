"""Clients that hold connections without finishing requests, through a real uvicorn
running the container's protocol (app.web.connections): idle connections, half-sent
headers and bodies are closed in bounded time, oversized headers are refused, and
the service goes on answering others meanwhile."""

import http.client
import json
import resource
import socket
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.payloads import URL, intent
from tests.uvicorn_server import EXAMPLE_ENV, Server, running_server

PROTOCOL = ("--http", "app.web.connections:BoundedHttpProtocol", "--timeout-keep-alive", "1")
ENV = {**EXAMPLE_ENV, "REQUEST_TIMEOUT_MS": "500", "MAX_HEADER_BYTES": "65536"}
WAIT = 10.0  # seconds a test waits for the server to act (it should in about one)
IDLE_CONNECTIONS = 1_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("slow"), ENV, *PROTOCOL) as running:
        yield running


def opened(server: Server) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=WAIT)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a socket timeout fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def answer(raw: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with opened(server) as sock:
        assert read_until_closed(sock) == b""


def test_half_sent_headers_are_answered_408_and_closed(server: Server) -> None:
    with opened(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        status, body = answer(read_until_closed(sock))
    assert (status, body["code"]) == (408, "REQUEST_TIMEOUT")
    assert "0.5 s" in body["detail"]
    assert "not received whole" in server.log()


def test_a_half_sent_body_is_answered_408_and_closed(server: Server) -> None:
    payload = json.dumps(intent(idempotency_key="slow-body")).encode()
    with opened(server) as sock:
        sock.sendall(
            b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload) + payload[:10]
        )
        status, body = answer(read_until_closed(sock))
    assert (status, body["code"]) == (408, "REQUEST_TIMEOUT")
    assert server.request("GET", "/execution/orders?idempotency_key=slow-body")[1]["items"] == []


def test_headers_over_the_bound_are_refused_431(server: Server) -> None:
    with opened(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        status, body = answer(read_until_closed(sock))
    assert (status, body["code"]) == (431, "HEADERS_TOO_LARGE")
    assert "65536 bytes" in body["detail"]


def test_a_busy_keep_alive_connection_serves_request_after_request(server: Server) -> None:
    """The bounds are on idling and dawdling: a client that keeps sending is served, and
    requests whose headers are near the bound are not refused."""
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        for _ in range(5):
            connection.request("GET", "/healthz", headers={"X-Pad": "p" * 60_000})
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["status"] == "ok"
            time.sleep(0.3)  # each pause is under the idle bound; together over it
        assert connection.sock is not None  # still the first connection: never reopened
    finally:
        connection.close()


def test_a_websocket_outlives_the_request_bound(server: Server) -> None:
    ws_url = server.base_url.replace("http://", "ws://") + "/execution/events/ws"
    with connect(ws_url, open_timeout=WAIT) as ws:
        ws.send("{}")
        time.sleep(1.5)  # three request bounds, and over the idle bound
        status, order = server.request("POST", URL, intent(idempotency_key="after-a-pause"))
        assert status == 201
        while True:
            message = json.loads(ws.recv(timeout=WAIT))
            if message["order"]["order_id"] == order["order_id"]:
                break


def test_a_thousand_idle_connections_do_not_keep_others_out_and_are_closed(server: Server) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_CONNECTIONS + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE_CONNECTIONS * 2), hard))
    idle = [opened(server) for _ in range(IDLE_CONNECTIONS)]
    try:
        status, body = server.request("GET", "/healthz")
        assert (status, body["status"]) == (200, "ok")
        for sock in idle:
            assert read_until_closed(sock) == b""
    finally:
        for sock in idle:
            sock.close()
