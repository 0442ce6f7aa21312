"""Order-intent throughput of the service against the framework floor, side by side.

Starts each server with the spec's uvicorn command (single worker, INFO logging) on a
loopback port and drives it with `wrk` (a separate process: 1 thread, 32 connections)
posting intents with unique keys. The service and the floor run alternately for
several rounds; medians and their ratio are printed. Bounded: every run has a fixed
duration and every server is stopped afterwards.

    python -m bench.run [--rounds 5] [--seconds 10]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "post_intents.lua"
# Set in full, so a LOG_LEVEL or SERVICE_NAME in the caller's shell cannot change what
# is measured (LOG_LEVEL=WARNING would drop the three log lines each request costs).
ENV = {
    "ALLOWED_SYMBOLS": "BTC/USDT,ETH/USDT",
    "ALLOWED_EXCHANGES": "binance,coinbase",
    "LOG_LEVEL": "INFO",
    "SERVICE_NAME": "execution",
    "SERVICE_VERSION": "0.1.0",
}


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench: wrk is not installed; install it with `apt-get install -y wrk` (Debian package)")
    return wrk


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    app: str, port: int, log: Path, extra_env: dict[str, str], *uvicorn_args: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, **extra_env, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), *uvicorn_args]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: {app} exited at start-up; see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"bench: {app} did not start within 20 s; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_wrk(
    wrk: str, port: int, seconds: float, prefix: str, lua: Path = LUA, *, env: dict[str, str] | None = None
) -> tuple[Result, int]:
    """One bounded wrk run of `lua` (`env`: extra variables for the script)."""
    cmd = [wrk, "-t1", "-c32", f"-d{round(seconds)}s", "--timeout", "5s", "-s", str(lua), f"http://127.0.0.1:{port}"]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        env={**os.environ, "BENCH_LUA_DIR": str(LUA.parent), "BENCH_KEY_PREFIX": prefix, **(env or {})},
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH_RESULT "))
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    if data["unexpected"] or data["socket_errors"]:
        sys.exit(
            f"bench: {data['unexpected']} answers were not the expected status, {data['socket_errors']} socket errors"
        )
    result = Result(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )
    return result, int(data["requests"])


def measure(wrk: str, app: str, *, seconds: float, warmup: float, log: Path, logs_requests: bool) -> Result:
    port = free_port()
    log.unlink(missing_ok=True)
    proc = start_server(app, port, log, {})
    try:
        _, warmup_requests = run_wrk(wrk, port, warmup, "warmup")
        result, requests = run_wrk(wrk, port, seconds, "measured")
    finally:
        stop_server(proc)
    if logs_requests:
        # Proof that the service did its logging: a request line and a created line per
        # order (wrk may count a few requests it sent but never saw answered).
        text = log.read_text()
        for message in ("HTTP request", "Order created successfully"):
            lines = text.count(f" - execution - INFO - {message} ")
            if lines < warmup_requests + requests:
                sys.exit(f"bench: {lines} '{message}' lines for {warmup_requests + requests} requests; see {log}")
    return result


def print_round(round_no: int, name: str, result: Result, width: int) -> None:
    print(
        f"round {round_no} {name:{width}} {result.rps:8.0f} req/s"
        f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms",
        flush=True,
    )


def median(results: list[Result]) -> Result:
    return Result(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    wrk = require_wrk()
    print(f"bench: using {wrk}; {args.rounds} rounds of {args.seconds:g} s each, service and floor alternating")

    contenders = {"service": "app.main:app", "floor": "bench.floor_app:app"}
    results: dict[str, list[Result]] = {name: [] for name in contenders}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for round_no in range(1, args.rounds + 1):
            # Alternate which goes first, so neither always runs on a warmer machine.
            order = list(contenders) if round_no % 2 else list(reversed(contenders))
            for name in order:
                result = measure(
                    wrk,
                    contenders[name],
                    seconds=args.seconds,
                    warmup=args.warmup,
                    log=Path(tmp) / f"{name}.log",
                    logs_requests=name == "service",
                )
                results[name].append(result)
                print_round(round_no, name, result, 8)
    service, floor = median(results["service"]), median(results["floor"])
    ratios = [s.rps / f.rps for s, f in zip(results["service"], results["floor"], strict=True)]
    print()
    print(f"{'median':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, res in (("service", service), ("floor", floor)):
        print(f"{name:8} {res.rps:8.0f} {res.p50_ms:8.2f} {res.p99_ms:8.2f}")
    per_round = statistics.median(ratios)
    print(f"ratio service/floor: {service.rps / floor.rps:.2f} (median of per-round ratios {per_round:.2f})")


if __name__ == "__main__":
    main()
