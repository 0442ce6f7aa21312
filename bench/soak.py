"""A mixed load at high concurrency, then a check that nothing was lost or doubled.

Starts the service (the spec's uvicorn command; in-memory store unless --storage-url
says otherwise) on a loopback port and drives it with `wrk` (a separate process; 1
thread, 128 connections by default) for 60 s: new intents (half MARKET, a third
LIMIT), duplicates of keys already acknowledged, invalid bodies, quotes that fill
orders, and reads. Every answer must have its kind's status (201, 409, 400, 200).
Afterwards the store, read back page by page through the API, must hold exactly the
orders that got a 201 (same ids), no key may name two orders, and /metrics must count
as many created intents as there were 201s.

    python -m bench.soak [--seconds 60] [--connections 128] [--storage-url sqlite:///tmp/soak.db]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.run import free_port, require_wrk, start_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "mixed_load.lua"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--storage-url", default="memory://")
    args = parser.parse_args()
    wrk = require_wrk()
    print(f"soak: using {wrk}; {args.seconds} s, {args.connections} connections, store {args.storage_url}")

    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        ids_file, log = Path(folder) / "ids.txt", Path(folder) / "server.log"
        port = free_port()
        proc = start_server("app.main:app", port, log, {"STORAGE_URL": args.storage_url})
        try:
            cmd = [wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--timeout", "10s", "-s", str(LUA)]
            env = {**os.environ, "BENCH_IDS_FILE": str(ids_file), "BENCH_KEY_PREFIX": f"soak{port}"}
            out = subprocess.run(
                [*cmd, f"http://127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                timeout=args.seconds + 60,
                env=env,
                check=True,
            ).stdout
            result = next(line for line in out.splitlines() if line.startswith("BENCH_RESULT "))
            data = json.loads(result.removeprefix("BENCH_RESULT "))
            acknowledged = [line for line in ids_file.read_text().splitlines() if line]
            orders = stored_orders(port)
            metrics = get(port, "/metrics")
        finally:
            stop_server(proc)
        server_errors = log.read_text().count("Unhandled error")

    seconds = data["duration_us"] / 1e6
    print(f"requests  {data['requests']} in {seconds:.1f} s: {data['requests'] / seconds:.0f} req/s")
    print(f"latency   p50 {data['p50_us'] / 1000:.2f} ms  p99 {data['p99_us'] / 1000:.2f} ms")
    print("answers   " + ", ".join(f"{kind} {count}" for kind, count in sorted(data["by_kind"].items())))

    problems = []
    if data["unexpected"]:
        problems.append(f"{data['unexpected']} answers had the wrong status for their kind")
    if data["socket_errors"]:
        problems.append(f"{data['socket_errors']} socket errors (requests whose outcome is unknown)")
    if server_errors:
        problems.append(f"{server_errors} unhandled errors in the server log")
    stored_ids = Counter(order["order_id"] for order in orders)
    keys = Counter(order["idempotency_key"] for order in orders)
    if set(stored_ids) != set(acknowledged) or len(orders) != len(acknowledged):
        problems.append(
            f"the store holds {len(orders)} orders, {len(acknowledged)} got a 201; "
            f"{len(set(acknowledged) - set(stored_ids))} acknowledged but missing, "
            f"{len(set(stored_ids) - set(acknowledged))} stored but never acknowledged"
        )
    if keys and max(keys.values()) > 1:
        problems.append(f"{sum(1 for c in keys.values() if c > 1)} keys name more than one order")
    if created_in_metrics(metrics) != len(acknowledged):
        problems.append(f"/metrics counts {created_in_metrics(metrics):.0f} created intents, {len(acknowledged)} 201s")
    statuses = Counter(order["status"] for order in orders)
    print(
        f"store     {len(orders)} orders ({', '.join(f'{s} {n}' for s, n in sorted(statuses.items()))}), "
        f"{len(acknowledged)} acknowledged, {len(keys)} distinct keys"
    )
    if problems:
        sys.exit("soak: FAILED: " + "; ".join(problems))
    print("soak: OK: the store holds exactly the acknowledged orders, one per key; metrics agree")


if __name__ == "__main__":
    main()
