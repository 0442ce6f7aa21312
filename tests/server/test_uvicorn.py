"""End to end: the real `uvicorn app.main:app` process on a loopback port."""

import json
import os
import re
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import URL, intent
from tests.uvicorn_server import ROOT, free_port, running_server, uvicorn_command

SPEC_LINE = r"(?m)^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - execution - "


def test_order_through_the_real_server_and_its_log(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        status, created = server.request("POST", URL, intent(idempotency_key="e2e-1"))
        assert status == 201
        assert created["status"] == "NEW"
        status, duplicate = server.request("POST", URL, intent(idempotency_key="e2e-1"))
        assert (status, duplicate["order_id"]) == (409, created["order_id"])
        status, rejected = server.request("POST", URL, intent(idempotency_key="e2e-2", symbol="DOGE/USDT"))
        assert (status, rejected) == (400, {"detail": "Symbol 'DOGE/USDT' not allowed", "code": "SYMBOL_NOT_ALLOWED"})
    log = server.log()
    order_id = created["order_id"]
    assert re.search(
        SPEC_LINE + r'INFO - Received order intent \{"idempotency_key": "e2e-1", "exchange": "binance", '
        r'"symbol": "BTC/USDT", "side": "BUY", "qty": 0.01, "type": "MARKET", "request_id": "\w+"\}\n',
        log,
    ), log
    assert re.search(
        SPEC_LINE
        + r'INFO - Order created successfully \{"idempotency_key": "e2e-1", "order_id": "'
        + order_id
        + r'", "exchange": "binance", "symbol": "BTC/USDT", "side": "BUY", "qty": 0.01, "status": "NEW", '
        + r'"request_id": "\w+"\}\n',
        log,
    ), log
    assert re.search(SPEC_LINE + r"WARNING - Duplicate order intent \{", log), log
    rejected = SPEC_LINE + r'WARNING - Order intent rejected \{.*"status": "REJECTED", "request_id": "\w+"\}\n'
    assert re.search(rejected, log), log
    # uvicorn's own lines have the same shape.
    stamp = r"(?m)^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
    assert re.search(stamp + r" - uvicorn.error - INFO - Started server process \[\d+\]$", log), log
    # One request line per request: the start-up health probe's, then the three POSTs,
    # and not uvicorn's own access line as well.
    request_lines = re.findall(SPEC_LINE + r'INFO - HTTP request \{"method": "(\w+)", "path": "([^"]+)"', log)
    assert request_lines == [("GET", "/healthz"), ("POST", URL), ("POST", URL), ("POST", URL)]
    assert '"POST /execution/order-intents HTTP/1.1"' not in log


def test_racing_one_key_against_the_real_server_creates_one_order(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:

        def post(n: int) -> tuple[int, str]:
            status, body = server.request("POST", URL, intent(idempotency_key="race", qty=n + 1))
            return status, body["order_id"]

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(post, range(64)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 63
    assert len({order_id for _, order_id in results}) == 1


def test_invalid_configuration_stops_the_real_server(tmp_path: Path) -> None:
    env = {**os.environ, "LOG_LEVEL": "LOUD", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        uvicorn_command(free_port()), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "execution: invalid configuration: LOG_LEVEL: " in result.stderr
    assert "Traceback" not in result.stderr


def test_the_app_module_imports_with_no_configuration() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ALLOWED_SYMBOLS", "ALLOWED_EXCHANGES")}
    code = "import asyncio, app.main; print(asyncio.run(app.main.app.state.service.capabilities()).status)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "degraded"


def test_a_client_hanging_up_mid_body_is_no_500(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /execution/order-intents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                b'{"idempotency_key": "half'
            )
        # The server goes on serving.
        assert server.request("POST", URL, intent(idempotency_key="after"))[0] == 201
    log = server.log()
    assert "Traceback" not in log
    assert '"status": 500' not in log
    assert re.search(SPEC_LINE + r'INFO - HTTP request \{"method": "POST", "path": "' + URL + '", "status": 400', log)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; socket.timeout if it
    keeps the connection open (waiting for a body the client has not sent)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


HEAD = b"POST /execution/order-intents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("env", "headers", "status", "code"),
    [
        # The rate limit comes before the body is read (docs/trading-controls.md).
        ({"MAX_INTENTS_PER_SECOND": "0.01", "MAX_INTENTS_BURST": "1"}, b"", 429, "RATE_LIMITED"),
        ({}, b"Content-Length: 70000\r\n", 413, "BODY_TOO_LARGE"),
        ({"EXECUTION_API_TOKEN": "a-long-enough-token"}, b"", 401, "UNAUTHORIZED"),
    ],
    ids=["rate-limited", "declared-too-large", "no-token"],
)
def test_a_refusal_before_the_body_comes_without_waiting_for_it(
    tmp_path: Path, env: dict[str, str], headers: bytes, status: int, code: str
) -> None:
    # A keep-alive timeout longer than the socket's: a server that waits for the body
    # (or idles after answering) times the read out instead of closing in time.
    with running_server(tmp_path, env, "--timeout-keep-alive", "60") as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        if status == 429:  # the one intent a second goes first
            assert server.request("POST", URL, intent(idempotency_key="first"))[0] == 201
        # Headers that promise a body, then none of it: the answer comes, and the server
        # closes the connection rather than wait to read a body it has refused.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(HEAD + (headers or b"Content-Length: 1000\r\n") + b"\r\n")
            answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer
    assert b"\r\nconnection: close" in head.lower()
    assert json.loads(body)["code"] == code
    assert "Traceback" not in server.log()
