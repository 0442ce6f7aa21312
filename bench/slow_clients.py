"""Clients that hold connections without finishing requests: does the service still
answer everyone else?

The service runs the container's command (`uvicorn app.main:app --http
app.web.connections:BoundedHttpProtocol`, in-memory store, default bounds:
REQUEST_TIMEOUT_MS=10000, MAX_HEADER_BYTES=65536, `--timeout-keep-alive` 5). One
attacker, a separate process (`python -m bench.slow_clients attack ...`), holds for the
whole measurement:

- `idle`: 1,000 connections that never send a byte;
- `slow`: 300 connections with half-sent headers and 300 with half-sent bodies, each
  sending one more byte every second;
- `huge`: one header line sent as fast as the server takes it, 128 MB in all;

and opens a new connection each time the server closes one, so the count holds. Meanwhile
this process asks `GET /healthz` on a fresh connection every 20 ms and records each
answer's latency. Each scenario is measured against a quiet baseline in the same round,
rounds alternate, and the p99 of every scenario is judged against 50 ms. The attacker
reports how many of its connections the server closed (the bounds at work).

Loopback only, bounded in time; every process is stopped afterwards.

    python -m bench.slow_clients [--rounds 3] [--seconds 15]
"""

import argparse
import asyncio
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.servers import HOST, ROOT, free_port, running_uvicorn

PROTOCOL = ("--http", "app.web.connections:BoundedHttpProtocol")
ENV = {"ALLOWED_SYMBOLS": "BTC/USDT", "ALLOWED_EXCHANGES": "binance", "STORAGE_URL": "memory://", "LOG_LEVEL": "INFO"}
SCENARIOS = ("quiet", "idle", "slow", "huge")
P99_TARGET_MS = 50.0
PROBE_EVERY = 0.02
SETTLE = 3.0  # seconds the attacker gets to open its connections before probes start
HUGE_BYTES = 128 * 1024 * 1024


# --- the attacker (its own process) ---------------------------------------------------


class Held:
    """Connections the attacker holds, reopened as the server closes them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.closed_by_server = 0

    async def hold(self, opening: bytes, drip: bytes | None, stop: float) -> None:
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(HOST, self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            try:
                if opening:
                    writer.write(opening)
                while time.monotonic() < stop:
                    if drip is not None:
                        writer.write(drip)
                    try:
                        data = await asyncio.wait_for(reader.read(65536), 1.0)
                    except TimeoutError:
                        continue
                    if not data:
                        self.closed_by_server += 1
                        break
            except OSError:
                self.closed_by_server += 1
            finally:
                writer.close()

    async def flood_header(self, stop: float) -> None:
        """One header line of HUGE_BYTES, again whenever the server refuses it."""
        chunk = b"a" * 65536
        while time.monotonic() < stop:
            try:
                reader, writer = await asyncio.open_connection(HOST, self.port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ")
                for _ in range(HUGE_BYTES // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()
                    if time.monotonic() >= stop:
                        break
                await reader.read()
            except OSError:
                pass
            self.closed_by_server += 1


async def attack(scenario: str, port: int, seconds: float) -> int:
    held = Held(port)
    stop = time.monotonic() + seconds
    body_head = (
        b"POST /execution/order-intents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    if scenario == "idle":
        tasks = [held.hold(b"", None, stop) for _ in range(1000)]
    elif scenario == "slow":
        tasks = [held.hold(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a", stop) for _ in range(300)]
        tasks += [held.hold(body_head, b" ", stop) for _ in range(300)]
    else:
        tasks = [held.flood_header(stop)]
    await asyncio.gather(*tasks)
    return held.closed_by_server


# --- the measurement --------------------------------------------------------------------


def probe(port: int, seconds: float) -> list[float]:
    """Latencies (ms) of GET /healthz, each on a fresh connection, every PROBE_EVERY."""
    latencies = []
    stop = time.monotonic() + seconds
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    while time.monotonic() < stop:
        started = time.perf_counter()
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        if not received.startswith(b"HTTP/1.1 200"):
            sys.exit(f"bench: /healthz answered {received[:80]!r}")
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - started)))
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def measure(scenario: str, port: int, seconds: float) -> tuple[float, int]:
    if scenario == "quiet":
        return p99(probe(port, seconds)), 0
    attacker = subprocess.Popen(
        [sys.executable, "-m", "bench.slow_clients", "attack", scenario, str(port), str(seconds + SETTLE)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(SETTLE)
        latency = p99(probe(port, seconds))
        out, _ = attacker.communicate(timeout=seconds + 60)
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
    return latency, int(json.loads(out)["closed_by_server"])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "attack":
        _, _, scenario, port, seconds = sys.argv
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
        closed = asyncio.run(attack(scenario, int(port), float(seconds)))
        print(json.dumps({"closed_by_server": closed}))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()

    results: dict[str, list[tuple[float, int]]] = {name: [] for name in SCENARIOS}
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        with running_uvicorn("app.main:app", port, log=Path(folder) / "server.log", env=ENV, uvicorn_args=PROTOCOL):
            for round_no in range(1, args.rounds + 1):
                for scenario in SCENARIOS:
                    latency, closed = measure(scenario, port, args.seconds)
                    results[scenario].append((latency, closed))
                    print(f"round {round_no} {scenario:>5}: /healthz p99 {latency:7.2f} ms, server closed {closed}")
    print("\nmedian over rounds (target: /healthz p99 under 50 ms under every attack)")
    failed = False
    for scenario in SCENARIOS:
        latency = statistics.median(value for value, _ in results[scenario])
        closed = statistics.median(count for _, count in results[scenario])
        verdict = "" if scenario == "quiet" else ("PASS" if latency < P99_TARGET_MS else "FAIL")
        failed |= verdict == "FAIL"
        print(
            f"  {scenario:>5}: /healthz p99 {latency:7.2f} ms, connections the server closed {closed:6.0f}  {verdict}"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
