"""What a market data feed costs order intake: the service taking fresh-key intents
while a feed brings 1,000 book updates a second for 10 symbols, against the same
service without a feed, side by side.

A fake Binance (harness/fake_binance.py) runs in its own process (`python -m
bench.feeds exchange`): it lists 10 symbols with books of 150 levels a side and sends
1,000 diff depth updates a second on schedule, round robin over the symbols, each
changing one of the top five bids. Both contenders run the spec's uvicorn command (one
worker, INFO logging, in-memory store) with the same 10 symbols allowlisted; "feed"
adds MARKET_DATA_FEEDS=binance pointed at the fake (the real ccxt follows the 10 books
over websockets and the service takes each book it reads, its best 100 levels a side);
the load starts once every symbol's feed has brought a book. `wrk` (1 thread, 32
connections, every answer must be 201) posts LIMIT BUYs far below the market, which
rest in both. Contenders alternate over several rounds; the median of per-round
throughput ratios is judged (target ≥0.8: the feed costs at most 20%). Also printed:
how many books a second the feed's service took during the load (ccxt hands over the
newest state of a book, so a busy service takes fewer, never a stale one).

    python -m bench.feeds [--rounds 3] [--seconds 10]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.run import Result, alternate, per_round_ratios, post_json, print_medians, require_wrk
from bench.stores import measure
from harness.fake_binance import FakeBinance
from harness.servers import ROOT

TARGET = 0.8
RATE = 1000  # book updates a second, over every symbol
SYMBOLS = [f"{base}/USDT" for base in ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "AVAX", "DOT", "LINK", "LTC")]
RESTING_LIMIT_BUY = '"side":"BUY","qty":0.01,"type":"LIMIT","limit_price":1.0'
NO_FEED = {"STORAGE_URL": "memory://", "ALLOWED_EXCHANGES": "binance", "ALLOWED_SYMBOLS": ",".join(SYMBOLS)}


def run_exchange(rate: float) -> None:
    """The fake exchange's process: READY <port> on stdout, then pump until stdin ends."""
    fake = FakeBinance(SYMBOLS)
    fake.start()
    try:
        fake.pump_depth(rate)
        print(f"READY {fake.port}", flush=True)
        sys.stdin.read()
        print(f"PUMPED {fake.stop_pump()}", flush=True)
    finally:
        fake.stop()


def post_books(port: int) -> None:
    """The no-feed contender's books, one per symbol, as the feed's first ones look:
    the intents then meet the same books in both (a resting order takes its place in
    its level's queue only where there is a book)."""
    for symbol in SYMBOLS:
        book = {
            "exchange": "binance",
            "symbol": symbol,
            "bids": [[round(99.99 - n * 0.01, 2), 1.0] for n in range(100)],
            "asks": [[round(100.00 + n * 0.01, 2), 1.0] for n in range(100)],
        }
        post_json(port, "/execution/market-data/books", book)


def books_taken(port: int) -> dict[str, float]:
    """Books each instrument's feed has received, from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    taken: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("execution_market_data_messages_total{") and 'kind="book"' in line:
            symbol = line.split('symbol="', 1)[1].split('"', 1)[0]
            taken[symbol] = float(line.rsplit(" ", 1)[1])
    return taken


class FeedWatch:
    """The feed contender's hooks: wait until every symbol has a book, then count the
    books taken during the load."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self._start: tuple[float, float] | None = None

    def before(self, port: int) -> None:
        deadline = time.monotonic() + 60
        while len(books_taken(port)) < len(SYMBOLS) or min(books_taken(port).values()) == 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: the feed brought no book for some symbol: {books_taken(port)}")
            time.sleep(0.2)
        self._start = (time.monotonic(), sum(books_taken(port).values()))

    def after(self, port: int) -> None:
        assert self._start is not None
        started, before = self._start
        self.rates.append((sum(books_taken(port).values()) - before) / (time.monotonic() - started))


def main() -> None:
    if sys.argv[1:2] == ["exchange"]:
        run_exchange(float(sys.argv[2]) if len(sys.argv) > 2 else RATE)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    wrk = require_wrk()
    exchange = subprocess.Popen(
        [sys.executable, "-m", "bench.feeds", "exchange", str(RATE)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert exchange.stdout is not None
        ready = exchange.stdout.readline().split()
        if ready[:1] != ["READY"]:
            raise SystemExit(f"bench: the fake exchange did not start: {ready}")
        feed = {**NO_FEED, "MARKET_DATA_FEEDS": "binance", "MARKET_DATA_URL_BINANCE": f"http://127.0.0.1:{ready[1]}"}
        print(f"bench: using {wrk}; {args.rounds} rounds of {args.seconds:g} s; a fake exchange sends {RATE} books/s")
        watch = FeedWatch()
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:

            def runner(name: str, env: dict[str, str], hooks: FeedWatch | None) -> Callable[[int], Result]:
                return lambda round_no: measure(
                    wrk,
                    env,
                    [],
                    seconds=args.seconds,
                    warmup=args.warmup,
                    log=Path(tmp) / f"{name}.log",
                    label=f"{name}-{round_no}",
                    intent_fields=RESTING_LIMIT_BUY,
                    before_load=post_books if hooks is None else hooks.before,
                    after_load=None if hooks is None else hooks.after,
                )

            results = alternate(
                args.rounds, {"no-feed": runner("no-feed", NO_FEED, None), "feed": runner("feed", feed, watch)}, 8
            )
    finally:
        assert exchange.stdin is not None
        exchange.stdin.close()
        pumped = exchange.stdout.read() if exchange.stdout is not None else ""
        exchange.wait(timeout=30)
    print_medians(results, 8)
    print(f"the fake exchange: {pumped.strip()} updates sent in all")
    print(
        "books taken by the feed's service during the load, per second: " + ", ".join(f"{r:.0f}" for r in watch.rates)
    )
    ratio = statistics.median(per_round_ratios(results["feed"], results["no-feed"]))
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"feed / no-feed: {ratio:.2f} (median of per-round ratios; target ≥{TARGET}: {verdict})")
    print(json.dumps({"ratio": round(ratio, 3), "books_per_second": [round(r) for r in watch.rates]}))


if __name__ == "__main__":
    main()
