"""A mixed load at high concurrency, then a check that nothing was lost or doubled.

Starts the service (the spec's uvicorn command; in-memory store unless --storage-url
says otherwise) on a loopback port and drives it with `wrk` (a separate process; 1
thread, 128 connections by default) for 60 s: new intents (half MARKET, a third
LIMIT), duplicates of keys already acknowledged, invalid bodies, quotes that fill
orders, and reads. Every answer must have its kind's status (201, 409, 400, 200).
Afterwards the store, read back page by page through the API, must hold every order
that got a 201 (same ids) and nothing else but intents still in flight when wrk
stopped (their answers are dropped; wrk reports which); no key may name two orders,
and /metrics must count as many created intents as the store holds.

    python -m bench.soak [--seconds 60] [--connections 128] [--storage-url sqlite:///tmp/soak.db]

`--compare` runs it on the memory store, SQLite and PostgreSQL (a throwaway cluster
with fsync on, two uvicorn workers) in alternating rounds, each on fresh storage and
each checked as above, and judges each durable store's throughput as a ratio of the
memory store's in the same round (target: at least 0.5):

    python -m bench.soak --compare [--rounds 3] [--seconds 20]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.run import require_wrk, start_server, stop_server
from harness.postgres import postgres_cluster
from harness.servers import ROOT, free_port

LUA = ROOT / "bench" / "mixed_load.lua"
RATIO_TARGET = 0.5


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        body = response.read()
    return body.decode() if path == "/metrics" else json.loads(body)


def stored_orders(port: int) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    path = "/execution/orders?limit=1000"
    while True:
        page = get(port, path)
        orders += page["items"]
        if page["next_cursor"] is None:
            return orders
        path = f"/execution/orders?limit=1000&cursor={page['next_cursor']}"


def created_in_metrics(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('execution_order_intents_total{outcome="created",reason=""}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def settle(port: int) -> None:
    """Wait (30 s at most) until the server has finished what wrk left queued when it
    stopped: the count of created intents holds still for a second."""
    deadline = time.monotonic() + 30
    last = created_in_metrics(get(port, "/metrics"))
    while time.monotonic() < deadline:
        time.sleep(1)
        now = created_in_metrics(get(port, "/metrics"))
        if now == last:
            return
        last = now


def find_problems(
    data: dict[str, Any],
    *,
    acknowledged: list[str],
    in_flight: set[str],
    orders: list[dict[str, Any]],
    metrics: str,
    server_errors: int,
) -> list[str]:
    """What the run and the store say went wrong (nothing, if all is well); prints the store."""
    problems: list[str] = []
    if data["unexpected"]:
        problems.append(f"{data['unexpected']} answers had the wrong status for their kind")
    if data["socket_errors"]:
        problems.append(f"{data['socket_errors']} socket errors (requests whose outcome is unknown)")
    if server_errors:
        problems.append(f"{server_errors} unhandled errors in the server log")
    stored_ids = Counter(order["order_id"] for order in orders)
    keys = Counter(order["idempotency_key"] for order in orders)
    answered = set(acknowledged)
    missing = answered - set(stored_ids)
    unacknowledged = [order for order in orders if order["order_id"] not in answered]
    if missing:
        problems.append(f"{len(missing)} orders got a 201 and are not in the store")
    if len(answered) != len(acknowledged):
        problems.append("one order id was given to two 201s")
    # An order stored without its 201 reaching wrk must be one still in flight at the stop.
    strays = [order for order in unacknowledged if order["idempotency_key"] not in in_flight]
    if strays:
        problems.append(f"{len(strays)} stored orders were neither acknowledged nor in flight at the stop")
    if keys and max(keys.values()) > 1:
        problems.append(f"{sum(1 for c in keys.values() if c > 1)} keys name more than one order")
    if created_in_metrics(metrics) != len(orders):
        problems.append(f"/metrics counts {created_in_metrics(metrics):.0f} created intents, the store {len(orders)}")
    statuses = Counter(order["status"] for order in orders)
    print(
        f"store     {len(orders)} orders ({', '.join(f'{s} {n}' for s, n in sorted(statuses.items()))}), "
        f"{len(acknowledged)} acknowledged, {len(unacknowledged)} more whose answer the stop cut off "
        f"(of {len(in_flight)} in flight), {len(keys)} distinct keys"
    )
    return problems


@dataclass
class Soak:
    """One run's throughput and what went wrong in it."""

    rps: float
    problems: list[str]


def soak_once(
    wrk: str, storage_url: str, *, seconds: int, connections: int, workers: int = 1, quiet: bool = False
) -> Soak:
    """Start the service on `storage_url`, drive it, and check the store afterwards."""
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        ids_file, log = Path(folder) / "ids.txt", Path(folder) / "server.log"
        unanswered_file = Path(folder) / "unanswered.txt"
        server_env = {"STORAGE_URL": storage_url}
        uvicorn_args: list[str] = []
        if workers > 1:
            # Each worker counts its own intents: /metrics adds them up from this folder.
            (Path(folder) / "metrics").mkdir()
            server_env["PROMETHEUS_MULTIPROC_DIR"] = str(Path(folder) / "metrics")
            uvicorn_args = ["--workers", str(workers)]
        port = free_port()
        proc = start_server("app.main:app", port, log, server_env, *uvicorn_args)
        try:
            cmd = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA)]
            env = {
                **os.environ,
                "BENCH_IDS_FILE": str(ids_file),
                "BENCH_UNANSWERED_FILE": str(unanswered_file),
                "BENCH_KEY_PREFIX": f"soak{port}",
            }
            out = subprocess.run(
                [*cmd, f"http://127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                timeout=seconds + 60,
                env=env,
                check=True,
            ).stdout
            result = next(line for line in out.splitlines() if line.startswith("BENCH_RESULT "))
            data = json.loads(result.removeprefix("BENCH_RESULT "))
            acknowledged = [line for line in ids_file.read_text().splitlines() if line]
            in_flight = {line for line in unanswered_file.read_text().splitlines() if line}
            settle(port)
            orders = stored_orders(port)
            metrics = get(port, "/metrics")
        finally:
            stop_server(proc)
        server_errors = log.read_text().count("Unhandled error")

    rps = data["requests"] / (data["duration_us"] / 1e6)
    if not quiet:
        print(f"requests  {data['requests']} in {data['duration_us'] / 1e6:.1f} s: {rps:.0f} req/s")
        print(f"latency   p50 {data['p50_us'] / 1000:.2f} ms  p99 {data['p99_us'] / 1000:.2f} ms")
        print("answers   " + ", ".join(f"{kind} {count}" for kind, count in sorted(data["by_kind"].items())))
    problems = find_problems(
        data,
        acknowledged=acknowledged,
        in_flight=in_flight,
        orders=orders,
        metrics=metrics,
        server_errors=server_errors,
    )
    return Soak(rps, problems)


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the cluster at `server_url`; its URL."""
    import psycopg  # noqa: PLC0415 (only the comparison uses PostgreSQL)

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def compare(wrk: str, rounds: int, seconds: int, connections: int) -> None:
    """Memory, SQLite and PostgreSQL with two workers, alternating, each round on fresh
    storage; every run must pass the soak's checks. Judged: the median per-round ratio
    of each durable store's throughput to the memory store's (target at least 0.5)."""
    rates: dict[str, list[float]] = {"memory": [], "sqlite": [], "postgresql x2": []}
    with tempfile.TemporaryDirectory(prefix="soak-compare-") as folder, postgres_cluster(durable=True) as cluster:
        for round_no in range(1, rounds + 1):
            runs = {
                "memory": ("memory://", 1),
                "sqlite": (f"sqlite:///{folder}/round{round_no}.db", 1),
                "postgresql x2": (fresh_database(cluster, f"soak_round{round_no}"), 2),
            }
            for name, (url, workers) in runs.items():
                run = soak_once(wrk, url, seconds=seconds, connections=connections, workers=workers, quiet=True)
                if run.problems:
                    sys.exit(f"soak: FAILED on {name}: " + "; ".join(run.problems))
                rates[name].append(run.rps)
                print(f"round {round_no} {name:>14}: {run.rps:7.0f} req/s (checks passed)")
    print(f"\nmedian over {rounds} rounds, ratio to memory in the same round (target: at least {RATIO_TARGET})")
    failed = False
    for name in ("sqlite", "postgresql x2"):
        ratio = statistics.median(
            durable / memory for durable, memory in zip(rates[name], rates["memory"], strict=True)
        )
        verdict = "PASS" if ratio >= RATIO_TARGET else "FAIL"
        failed |= verdict == "FAIL"
        print(f"  {name:>14}: {statistics.median(rates[name]):7.0f} req/s, {ratio:.2f} of memory  {verdict}")
    print(f"  {'memory':>14}: {statistics.median(rates['memory']):7.0f} req/s")
    sys.exit(1 if failed else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--storage-url", default="memory://")
    parser.add_argument("--compare", action="store_true", help="memory, SQLite and PostgreSQL x2 side by side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare")
    args = parser.parse_args()
    wrk = require_wrk()
    if args.compare:
        print(f"soak: using {wrk}; {args.rounds} rounds of {args.seconds} s per store, {args.connections} connections")
        compare(wrk, args.rounds, args.seconds, args.connections)
        return
    print(f"soak: using {wrk}; {args.seconds} s, {args.connections} connections, store {args.storage_url}")
    run = soak_once(wrk, args.storage_url, seconds=args.seconds, connections=args.connections)
    if run.problems:
        sys.exit("soak: FAILED: " + "; ".join(run.problems))
    print(
        "soak: OK: every 201 is stored under its id, nothing else is stored but intents in flight at the stop, "
        "one order per key, and /metrics agrees"
    )


if __name__ == "__main__":
    main()
