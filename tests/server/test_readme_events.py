"""The event examples run as written against a real server: the README's `curl -N`
stream and its Python client, which must resume across a restart of the service, and
the stream's framing as docs/events.md shows it."""

import queue
import re
import shlex
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.servers import free_port, running_uvicorn
from tests.conftest import URL, intent
from tests.documents import blocks
from tests.uvicorn_server import APP, EXAMPLE_ENV, Server, running_server

README = Path(__file__).resolve().parents[2] / "README.md"


def block(kind: str, containing: str) -> str:
    return next(found.text for found in blocks(kind, [README]) if containing in found.text)


def matches(shown: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(piece) for piece in shown.split("..."))
    return re.fullmatch(pattern, actual, re.S) is not None


def test_the_curl_stream_example_prints_as_shown(tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    command, _, shown = block("console", "curl -N").partition("\n")
    args = shlex.split(command.removeprefix("$ "))
    port = free_port()
    with running_uvicorn(APP, port, log=tmp_path / "server.log", env=EXAMPLE_ENV) as process:
        server = Server(f"http://127.0.0.1:{port}", process, tmp_path / "server.log")
        assert server.request("POST", URL, intent())[0] == 201
        url = args[-1].replace("localhost:8001", f"127.0.0.1:{port}")
        # --max-time ends the stream; curl then says 28 (timed out), as expected here.
        done = subprocess.run([curl, *args[1:-1], "--max-time", "2", url], capture_output=True, check=False)
    assert done.returncode == 28
    assert matches(shown, done.stdout.decode()), done.stdout.decode()


@pytest.fixture
def follow() -> Callable[..., Iterator[dict[str, Any]]]:
    namespace: dict[str, Any] = {}
    exec(block("python", "def follow("), namespace)
    function: Callable[..., Iterator[dict[str, Any]]] = namespace["follow"]
    return function


def test_the_python_client_resumes_across_a_restart(tmp_path: Path, follow: Callable[..., Any]) -> None:
    port = free_port()
    env = {**EXAMPLE_ENV, "STORAGE_URL": f"sqlite:///{tmp_path / 'orders.db'}"}
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    def consume() -> None:
        for event in follow("127.0.0.1", port):
            received.put(event)

    def post(server: Server, keys: list[str]) -> None:
        for key in keys:
            assert server.request("POST", URL, intent(idempotency_key=key, type="LIMIT", limit_price=1.0))[0] == 201

    base_url = f"http://127.0.0.1:{port}"
    with running_uvicorn(APP, port, log=tmp_path / "first.log", env=env) as process:
        threading.Thread(target=consume, daemon=True).start()  # it follows forever
        post(Server(base_url, process, tmp_path / "first.log"), ["before-1", "before-2"])
        first = [received.get(timeout=20) for _ in range(2)]
    # Stopped: the client's stream is cut and it retries until the service is back.
    with running_uvicorn(APP, port, log=tmp_path / "second.log", env=env) as process:
        post(Server(base_url, process, tmp_path / "second.log"), ["after-1"])
        later = [received.get(timeout=20)]
    assert [(event["seq"], event["order"]["idempotency_key"]) for event in [*first, *later]] == [
        (1, "before-1"),
        (2, "before-2"),
        (3, "after-1"),
    ]
    assert received.empty()


def test_the_stream_framing_in_docs_events_is_what_the_server_sends(tmp_path: Path) -> None:
    """docs/events.md shows a fill at seq 7, then a heartbeat: six resting orders (seq
    1-6), a quote that fills them (7 on), and the stream from after 6, up to its first
    heartbeat."""
    (shown,) = blocks("text", [README.parent / "docs" / "events.md"])
    with running_server(tmp_path, {"EVENTS_HEARTBEAT_SECONDS": "0.4"}) as server:
        for n in range(6):
            body = intent(idempotency_key=f"rest-{n}", type="LIMIT", limit_price=100.0)
            assert server.request("POST", URL, body)[0] == 201
        quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99.0, "ask": 99.5}
        assert server.request("POST", "/execution/market-data/quotes", quote)[0] == 200
        sent = b""
        with urllib.request.urlopen(f"{server.base_url}/execution/events/stream?after=6", timeout=10) as stream:
            while not sent.endswith(b": heartbeat\n\n"):
                chunk = stream.read1()
                assert chunk, f"the stream ended before a heartbeat: {sent!r}"
                sent += chunk
    assert matches(shown.text, sent.decode()), sent.decode()
