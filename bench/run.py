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
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.servers import ROOT, ServerFailed, free_port, start_uvicorn, stop

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
    # The server's own CPU time (user + system) per answered request, in microseconds:
    # what the code costs, much less moved by the machine's other load than throughput.
    cpu_us: float | None = None


def post_json(port: int, path: str, body: object) -> None:
    """POST `body` to the service on `port` before a load (a quote, a book); it must be taken."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200, answer.status


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench: wrk is not installed; install it with `apt-get install -y wrk` (Debian package)")
    return wrk


def start_server(
    app: str, port: int, log: Path, extra_env: dict[str, str], *uvicorn_args: str, root: Path = ROOT
) -> subprocess.Popen[bytes]:
    """The spec's command for `app` with ENV and `extra_env`, its code from `root`; a
    server that does not come up ends the bench."""
    try:
        # /openapi.json, not /healthz: the floor app has no health route.
        return start_uvicorn(
            app, port, log=log, env={**ENV, **extra_env}, root=root, uvicorn_args=uvicorn_args, probe="/openapi.json"
        )
    except ServerFailed as failed:
        sys.exit(f"bench: {app} from {root}: {failed}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    stop(proc, grace=10)


def run_wrk(
    wrk: str,
    port: int,
    seconds: float,
    prefix: str,
    lua: Path = LUA,
    *,
    env: dict[str, str] | None = None,
    connections: int = 32,
) -> tuple[Result, int]:
    """One bounded wrk run of `lua` (`env`: extra variables for the script) over
    `connections` connections."""
    cmd = [
        *(wrk, "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "5s"),
        *("-s", str(lua), f"http://127.0.0.1:{port}"),
    ]
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
        f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
        + ("" if result.cpu_us is None else f"  cpu {result.cpu_us:6.1f} us/req"),
        flush=True,
    )


def median(results: list[Result]) -> Result:
    return Result(
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        cpu_us=None if any(r.cpu_us is None for r in results) else statistics.median(r.cpu_us or 0 for r in results),
    )


def alternate(rounds: int, contenders: Mapping[str, Callable[[int], Result]], width: int) -> dict[str, list[Result]]:
    """Run every contender (called with the round number) once per round and print each
    result. Who goes first rotates, so none always runs on a warmer machine."""
    results: dict[str, list[Result]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_no in range(1, rounds + 1):
        shift = (round_no - 1) % len(names)
        for name in names[shift:] + names[:shift]:
            result = contenders[name](round_no)
            results[name].append(result)
            print_round(round_no, name, result, width)
    return results


def print_medians(results: Mapping[str, list[Result]], width: int) -> dict[str, Result]:
    """Print each contender's medians; return them."""
    medians = {name: median(runs) for name, runs in results.items()}
    print()
    print(f"{'median':{width}} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/req':>10}")
    for name, res in medians.items():
        cpu = "" if res.cpu_us is None else f"{res.cpu_us:10.1f}"
        print(f"{name:{width}} {res.rps:8.0f} {res.p50_ms:8.2f} {res.p99_ms:8.2f} {cpu}")
    return medians


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process (and its reaped children) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime, stime, cutime, cstime: fields 14-17 of stat(5), 12-15 after the name.
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def per_round_ratios(numerators: list[Result], denominators: list[Result]) -> list[float]:
    """Throughput ratios of runs of the same round: the machine's drift cancels out in each."""
    return [n.rps / d.rps for n, d in zip(numerators, denominators, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    wrk = require_wrk()
    print(f"bench: using {wrk}; {args.rounds} rounds of {args.seconds:g} s each, service and floor alternating")

    contenders = {"service": "app.main:app", "floor": "bench.floor_app:app"}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:

        def runner(name: str) -> Callable[[int], Result]:
            return lambda _round_no: measure(
                wrk,
                contenders[name],
                seconds=args.seconds,
                warmup=args.warmup,
                log=Path(tmp) / f"{name}.log",
                logs_requests=name == "service",
            )

        results = alternate(args.rounds, {name: runner(name) for name in contenders}, 8)
    medians = print_medians(results, 8)
    per_round = statistics.median(per_round_ratios(results["service"], results["floor"]))
    ratio = medians["service"].rps / medians["floor"].rps
    print(f"ratio service/floor: {ratio:.2f} (median of per-round ratios {per_round:.2f})")


if __name__ == "__main__":
    main()
