"""Quote handling with 100,000 resting orders on another symbol, against none.

Matching must cost what the quote touches, not what the store holds. Each round
starts the service twice with the spec's uvicorn command (INFO logging): once empty,
once after `wrk` has placed 100,000 resting LIMIT orders on ETH/USDT that no quote
reaches. Then `wrk` (separate process, 1 thread, 32 connections, loopback) posts
BTC/USDT quotes for 10 s. Medians of the rounds and their ratio are printed.

    python -m bench.quotes [--rounds 3] [--seconds 10] [--resting 100000]
"""

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from bench.run import Result, median, require_wrk, run_wrk, start_server, stop_server
from harness.servers import ROOT, free_port

QUOTES_LUA = ROOT / "bench" / "post_quotes.lua"
PREFILL_LUA = ROOT / "bench" / "prefill_resting.lua"


def prefill(wrk: str, port: int, orders: int, lua: Path = PREFILL_LUA, env: dict[str, str] | None = None) -> int:
    """Place `orders` resting orders with `lua` (`env`: extra variables for it), in
    passes of a bounded duration until all are in."""
    created, passes = 0, 0
    while created < orders:
        passes += 1
        if passes > 20:
            raise SystemExit(f"bench: only {created} of {orders} resting orders were created")
        remaining = orders - created
        seconds = max(3, remaining // 1500 + 2)  # about what this machine takes, and a margin
        out = subprocess.run(
            [wrk, "-t1", "-c8", f"-d{seconds}s", "-s", str(lua), f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            env={
                **os.environ,
                "BENCH_LUA_DIR": str(lua.parent),
                **(env or {}),
                "BENCH_ORDERS": str(remaining),
                "BENCH_KEY_PREFIX": f"rest{passes}",
            },
            check=True,
        ).stdout
        line = next(line for line in out.splitlines() if line.startswith("PREFILL_RESULT "))
        created += int(json.loads(line.removeprefix("PREFILL_RESULT "))["created"])
    return created


def measure(wrk: str, resting: int, seconds: int, log: Path) -> tuple[Result, int]:
    port = free_port()
    proc = start_server("app.main:app", port, log, {})
    try:
        created = prefill(wrk, port, resting) if resting else 0
        run_wrk(wrk, port, 2, "warmup", QUOTES_LUA)
        result, _ = run_wrk(wrk, port, seconds, "measured", QUOTES_LUA)
    finally:
        stop_server(proc)
    return result, created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--resting", type=int, default=100_000)
    args = parser.parse_args()
    wrk = require_wrk()
    print(f"bench: using {wrk}; {args.rounds} rounds; quotes for {args.seconds} s against an empty store and one")
    print(f"holding {args.resting:,} resting orders on another symbol")
    cases = {"empty": 0, "resting": args.resting}
    results: dict[str, list[Result]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory(prefix="bench-quotes-") as tmp:
        for round_no in range(1, args.rounds + 1):
            order = list(cases) if round_no % 2 else list(reversed(cases))
            for name in order:
                result, created = measure(wrk, cases[name], args.seconds, Path(tmp) / f"{name}.log")
                results[name].append(result)
                print(
                    f"round {round_no} {name:8} ({created:>7,} resting) {result.rps:7.0f} quotes/s"
                    f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms",
                    flush=True,
                )
    empty, resting = median(results["empty"]), median(results["resting"])
    print()
    print(f"{'median':8} {'quotes/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, res in (("empty", empty), ("resting", resting)):
        print(f"{name:8} {res.rps:9.0f} {res.p50_ms:8.2f} {res.p99_ms:8.2f}")
    print(f"ratio resting/empty: {resting.rps / empty.rps:.2f}")


if __name__ == "__main__":
    main()
