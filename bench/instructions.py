"""Instructions the server executes per order intent: the working tree against an
earlier commit, counted by valgrind's callgrind, which counts instructions rather than
time. Throughput on this shared 2-core machine swings by a quarter from minute to
minute (the same commit gave 29,000 and 37,000 intents in 12 s), more than the
differences worth finding; an instruction count is the same from run to run for the
same code and load.

Each contender is the spec's uvicorn command (one worker, bench.run's settings,
in-memory store) under `valgrind --tool=callgrind`, from a `git worktree` of its
commit (the working tree for "after"). A client in this process sends `--warmup`
intents one at a time over one keep-alive connection, the counters are zeroed
(`callgrind_control -z`), it sends `--intents` more, and the counters are dumped: the
count covers exactly those requests (parsing, checks, storing, the three log lines,
the 201), uvicorn's share included. Bounded: each server gets `--timeout` seconds.
Needs valgrind (Debian package).

    python -m bench.instructions --ref 139f29a [--intents 1000] [--warmup 300]
"""

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from bench.compare import describe_commit, describe_working_tree, resolve, worktree
from bench.run import ENV
from harness.servers import ROOT, free_port, stop

SUMMARY = re.compile(rb"^summary: (\d+)$", re.MULTILINE)


def post_intents(port: int, count: int, prefix: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for n in range(count):
            body = {
                "idempotency_key": f"{prefix}-{n}",
                "exchange": "binance",
                "symbol": "BTC/USDT",
                "side": "BUY",
                "qty": 0.01,
                "type": "MARKET",
            }
            conn.request("POST", "/execution/order-intents", json.dumps(body), {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 201:
                sys.exit(f"instructions: intent {n} answered {response.status}")
    finally:
        conn.close()


def count(root: Path, folder: Path, name: str, *, intents: int, warmup: int, timeout: float) -> int:
    """Instructions the server from `root` executes for `intents` intents after `warmup`."""
    port = free_port()
    out = folder / f"{name}.callgrind"
    log = folder / f"{name}.log"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**ENV, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"instructions: {name} did not start; see {log}")
                time.sleep(1)
        post_intents(port, warmup, f"{name}-warmup")
        subprocess.run(["callgrind_control", "-z", str(process.pid)], capture_output=True, check=True, timeout=60)
        post_intents(port, intents, f"{name}-measured")
        subprocess.run(["callgrind_control", "-d", str(process.pid)], capture_output=True, check=True, timeout=60)
    finally:
        stop(process, grace=60)
    # The dump after the zeroing is the last numbered file.
    dumps = sorted(folder.glob(f"{name}.callgrind.*"), key=lambda path: int(path.suffix[1:]))
    match = SUMMARY.search(dumps[-1].read_bytes()) if dumps else None
    if match is None:
        sys.exit(f"instructions: no callgrind dump for {name}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="the commit to compare against (before)")
    parser.add_argument("--intents", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=300, help="seconds a server under valgrind may take to start")
    parser.add_argument("--target", type=float, default=0.95, help="the lowest acceptable before/after")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("instructions: valgrind is not installed; install it with `apt-get install -y valgrind`")
    before = resolve(args.ref)
    with ExitStack() as cleanup:
        folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-instructions-")))
        roots = {"before": cleanup.enter_context(worktree(before, folder / "before")), "after": ROOT}
        print(f"instructions: {args.intents} intents after {args.warmup}, one at a time, under callgrind")
        print(f"before  {describe_commit(before)}")
        print(f"after   {describe_working_tree()}")
        counts = {
            name: count(root, folder, name, intents=args.intents, warmup=args.warmup, timeout=args.timeout)
            for name, root in roots.items()
        }
    for name, total in counts.items():
        print(f"{name:7} {total / args.intents:12,.0f} instructions per intent")
    ratio = counts["before"] / counts["after"]
    verdict = "met" if ratio >= args.target else "MISSED"
    print(f"before/after (the throughput this predicts for after): {ratio:.3f} ({verdict}; target ≥{args.target:g})")


if __name__ == "__main__":
    main()
