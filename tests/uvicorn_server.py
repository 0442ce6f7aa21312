"""Start the spec's uvicorn command on a free loopback port, for end-to-end tests.

Starting and stopping is `harness.servers`' (shared with the benches); this adds the
tests' settings, a small HTTP client and the loads and races several tests share.
"""

import http.client
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import servers
from harness.servers import ROOT, free_port, running_uvicorn
from tests.payloads import URL, intent

__all__ = [
    "EXAMPLE_ENV",
    "ROOT",
    "FreshKeyLoad",
    "Server",
    "all_orders",
    "free_port",
    "race_limit_orders",
    "running_server",
    "server_get",
    "uvicorn_command",
]

APP = "app.main:app"
# Every setting given, so the test runner's environment cannot change what is tested.
EXAMPLE_ENV = {
    "ALLOWED_SYMBOLS": "BTC/USDT,ETH/USDT,SOL/USDT",
    "ALLOWED_EXCHANGES": "binance,coinbase",
    "SERVICE_NAME": "execution",
    "SERVICE_VERSION": "0.1.0",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        status, _, raw = self.fetch(method, path, body, headers)
        return status, json.loads(raw)

    def fetch(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and raw body of one request."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()

    def log(self) -> str:
        return self.log_path.read_text()


def uvicorn_command(port: int, *extra: str) -> list[str]:
    return servers.uvicorn_command(APP, port, *extra)


@contextmanager
def running_server(tmp_path: Path, env: dict[str, str] | None = None, *extra_args: str) -> Iterator[Server]:
    """`extra_args` go to uvicorn (say `--workers 2`); each run logs to its own file.
    Ready once /healthz answers (the log's first request line); stopped with SIGINT."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    log_path.unlink(missing_ok=True)  # a port used again in one test starts a fresh log
    with running_uvicorn(
        APP, port, log=log_path, env={**EXAMPLE_ENV, **(env or {})}, uvicorn_args=extra_args
    ) as process:
        yield Server(f"http://127.0.0.1:{port}", process, log_path)


class FreshKeyLoad:
    """Threads posting intents with fresh keys to a server until it stops answering:
    which keys were acknowledged (and as which order), which were cut off, and the
    status of every answer."""

    def __init__(self, server: Server, prefix: str, threads: int = 4) -> None:
        self.acknowledged: dict[str, str] = {}
        self.cut_off: list[str] = []  # keys whose answer never came: stored or not, once at most
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._post, args=(server, f"{prefix}-{n}")) for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def wait_for(self, acknowledged: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < acknowledged and time.monotonic() < deadline:
            time.sleep(0.01)

    def join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _post(self, server: Server, prefix: str) -> None:
        for n in range(100_000):
            if self._stop.is_set():
                return
            key = f"{prefix}-{n}"
            try:
                status, body = server.request("POST", URL, intent(idempotency_key=key))
            except (OSError, http.client.HTTPException):  # cut off mid-request or mid-answer
                with self._lock:
                    self.cut_off.append(key)
                return
            with self._lock:
                self.statuses[status] += 1
                if status == 201:
                    self.acknowledged[key] = body["order_id"]


def all_orders(get: Callable[[str], tuple[int, Any]]) -> list[dict[str, Any]]:
    """Every order, page by page, through `get` (a test client's or a server's)."""
    orders: list[dict[str, Any]] = []
    path = "/execution/orders?limit=1000"
    while True:
        status, body = get(path)
        assert status == 200, body
        orders += body["items"]
        if body["next_cursor"] is None:
            return orders
        path = f"/execution/orders?limit=1000&cursor={body['next_cursor']}"


def server_get(server: Server) -> Callable[[str], tuple[int, Any]]:
    return lambda path: server.request("GET", path)


def race_limit_orders(server: Server, racers: int) -> Counter[int]:
    """`racers` threads post a LIMIT BUY of 1 BTC/USDT at 100 each, with fresh keys, at
    once; how many got each status."""
    barrier = threading.Barrier(racers)

    def post(n: int) -> int:
        barrier.wait(timeout=30)
        body = intent(idempotency_key=f"w-{n}", type="LIMIT", limit_price=100.0, qty=1.0)
        return server.request("POST", URL, body)[0]

    with ThreadPoolExecutor(racers) as pool:
        return Counter(pool.map(post, range(racers)))
