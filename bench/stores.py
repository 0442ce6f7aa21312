"""Order-intent throughput of each store, side by side, with the core benchmark's load.

Contenders, each started with the spec's uvicorn command and INFO logging:
- memory: the in-memory store, one worker (the baseline);
- sqlite: SQLite with durable commits (WAL, synchronous=FULL), one worker, a fresh
  database file per run;
- postgresql-2w: PostgreSQL with fsync on, two uvicorn workers, tables emptied before
  each run. The cluster is a throwaway one from this machine's binaries.

`wrk` (1 thread, 32 connections, fresh keys, every answer must be 201) drives each for
a fixed time; contenders alternate over several rounds and the medians of per-round
ratios to memory are printed with the issue's targets. After each run the orders are
counted through the API: every acknowledged intent must be stored, once.

    python -m bench.stores [--rounds 3] [--seconds 10]
"""

import argparse
import json
import statistics
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from bench.run import (
    Result,
    alternate,
    cpu_seconds,
    median,
    per_round_ratios,
    require_wrk,
    run_wrk,
    start_server,
    stop_server,
)
from harness.postgres import PostgresMissing, postgres_cluster
from harness.servers import ROOT, free_port

TARGETS = {"sqlite": 0.6, "postgresql-2w": 0.5}


def stored_orders(port: int) -> int:
    """How many orders the service holds, page by page through the API."""
    total, cursor = 0, None
    while True:
        query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/orders?{query}", timeout=60) as response:
            page = json.loads(response.read())
        total += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return total


def measure(
    wrk: str,
    env: dict[str, str],
    uvicorn_args: list[str],
    *,
    seconds: float,
    warmup: float,
    log: Path,
    label: str,
    intent_fields: str | None = None,
    before_load: Callable[[int], None] | None = None,
    after_load: Callable[[int], None] | None = None,
    root: Path = ROOT,
) -> Result:
    """One run of fresh-key intents (`intent_fields`: their fields after the key and
    instrument, as bench/post_intents.lua takes them), after `before_load(port)` if
    given, then `after_load(port)` before the server stops; every acknowledged intent
    must then be stored, once. The service's code is
    `root`'s (a `git worktree` of another commit, say); the load script is this tree's."""
    wrk_env = None if intent_fields is None else {"BENCH_INTENT_FIELDS": intent_fields}
    port = free_port()
    proc = start_server("app.main:app", port, log, env, *uvicorn_args, root=root)
    try:
        if before_load is not None:
            before_load(port)
        _, warmup_requests = run_wrk(wrk, port, warmup, f"{label}-warmup", env=wrk_env)
        cpu_before = cpu_seconds(proc.pid)
        result, requests = run_wrk(wrk, port, seconds, f"{label}-measured", env=wrk_env)
        if after_load is not None:
            after_load(port)
        # With --workers the requests are served by children this cannot see: no figure.
        if "--workers" not in uvicorn_args:
            result.cpu_us = (cpu_seconds(proc.pid) - cpu_before) * 1e6 / max(requests, 1)
        stored = stored_orders(port)
    finally:
        stop_server(proc)
    # wrk counts only answered requests (all 201); one cut off at the end may be stored too.
    if not warmup_requests + requests <= stored <= warmup_requests + requests + 64:
        raise SystemExit(f"bench: {label}: {warmup_requests + requests} intents acknowledged, {stored} stored")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    wrk = require_wrk()
    print(f"bench: using {wrk}; {args.rounds} rounds of {args.seconds:g} s per store, stores alternating")

    try:
        with postgres_cluster(durable=True) as postgres_url, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            results = run_rounds(wrk, args, Path(tmp), postgres_url)
    except PostgresMissing as missing:
        raise SystemExit(f"bench: {missing}") from None

    memory = median(results["memory"])
    print()
    print(f"{'median':14} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs memory':>10} {'target':>7}")
    for name, runs in results.items():
        res = median(runs)
        ratio = statistics.median(per_round_ratios(runs, results["memory"]))
        target = TARGETS.get(name)
        verdict = "" if target is None else f"≥{target:.1f} {'met' if ratio >= target else 'MISSED'}"
        print(f"{name:14} {res.rps:8.0f} {res.p50_ms:8.2f} {res.p99_ms:8.2f} {ratio:10.2f} {verdict:>7}")
    print(f"(ratios: median of per-round ratios; memory median {memory.rps:.0f} req/s)")


def run_rounds(wrk: str, args: argparse.Namespace, tmp: Path, postgres_url: str) -> dict[str, list[Result]]:
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))

    def empty_postgres() -> None:
        # The service creates the tables at its first start; afterwards each run starts
        # empty: no orders, and an empty event journal numbering from 1 again (its head
        # row is kept, at 0). A schema from before the journal (version < 5) has neither.
        with engine.begin() as conn:
            if conn.execute(text("SELECT to_regclass('orders')")).scalar() is None:
                return
            journal = conn.execute(text("SELECT to_regclass('events')")).scalar() is not None
            queues = conn.execute(text("SELECT to_regclass('queues')")).scalar() is not None
            tables = "fills, orders, quotes, positions, balances" + (", events" if journal else "")
            tables += ", queues" if queues else ""
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
            if journal:
                conn.execute(text("UPDATE journal_head SET seq = 0"))

    def contenders(round_no: int) -> dict[str, tuple[dict[str, str], list[str], Callable[[], None]]]:
        return {
            "memory": ({"STORAGE_URL": "memory://"}, [], lambda: None),
            "sqlite": ({"STORAGE_URL": f"sqlite:///{tmp / f'orders-{round_no}.db'}"}, [], lambda: None),
            "postgresql-2w": ({"STORAGE_URL": postgres_url}, ["--workers", "2"], empty_postgres),
        }

    def runner(name: str) -> Callable[[int], Result]:
        def run(round_no: int) -> Result:
            env, uvicorn_args, prepare = contenders(round_no)[name]
            prepare()
            return measure(
                wrk,
                env,
                uvicorn_args,
                seconds=args.seconds,
                warmup=args.warmup,
                log=tmp / f"{name}.log",
                label=f"{name}-{round_no}",
            )

        return run

    try:
        results = alternate(args.rounds, {name: runner(name) for name in contenders(0)}, 14)
    finally:
        engine.dispose()
    return results


if __name__ == "__main__":
    main()
