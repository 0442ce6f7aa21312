"""Books with depth and prints on the tape, with 10,000 resting orders in the book's
queues against none.

Each round starts the service twice with the spec's uvicorn command (INFO logging, the
memory store): once empty, once after `wrk` has placed 10,000 resting LIMIT orders on
BTC/USDT at the prices of the book below (BUYs at its bids, SELLs at its asks, none
crossing), so each waits in the queue at its price. In each, one book of 1,000 levels
a side is posted first; then `wrk` (a separate process, loopback) posts

- books of 1,000 levels a side, the same prices and changing sizes (so the queues at
  every level shrink or grow), over one connection, as a feed sends them: the time
  each book is answered, p50 and p99;
- prints at the ten best levels of each side, alternately a SELL and a BUY aggressor,
  over 32 connections: prints a second.

Medians of the rounds, the resting/empty ratios, and the issue's figures: a book
answered within 5 ms at p99 and at least 2,000 prints a second, both with the resting
orders.

    python -m bench.depth [--rounds 3] [--seconds 10] [--resting 10000]
"""

import argparse
import tempfile
from pathlib import Path

from bench.quotes import prefill
from bench.run import Result, median, post_json, require_wrk, run_wrk, start_server, stop_server
from harness.servers import ROOT, free_port

BOOKS_LUA = ROOT / "bench" / "post_books.lua"
TRADES_LUA = ROOT / "bench" / "post_trades.lua"
PREFILL_LUA = ROOT / "bench" / "prefill_depth.lua"
LEVELS = 1000
BOOK_P99_MS = 5.0
TRADES_PER_SECOND = 2000


def first_book(port: int) -> None:
    """The book the resting orders join the queues of (sizes of 2.5 everywhere)."""
    body = {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "bids": [[49999 - i, 2.5] for i in range(LEVELS)],
        "asks": [[50001 + i, 2.5] for i in range(LEVELS)],
    }
    post_json(port, "/execution/market-data/books", body)


def measure(wrk: str, resting: int, seconds: int, log: Path) -> tuple[Result, Result, int]:
    port = free_port()
    proc = start_server("app.main:app", port, log, {})
    levels = {"BENCH_LEVELS": str(LEVELS)}
    try:
        first_book(port)
        created = prefill(wrk, port, resting, PREFILL_LUA, levels) if resting else 0
        run_wrk(wrk, port, 2, "warmup", BOOKS_LUA, env=levels, connections=1)
        books, _ = run_wrk(wrk, port, seconds, "books", BOOKS_LUA, env=levels, connections=1)
        run_wrk(wrk, port, 2, "warmup", TRADES_LUA)
        trades, _ = run_wrk(wrk, port, seconds, "trades", TRADES_LUA)
    finally:
        stop_server(proc)
    return books, trades, created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--resting", type=int, default=10_000)
    args = parser.parse_args()
    wrk = require_wrk()
    print(f"bench: using {wrk}; {args.rounds} rounds; books of {LEVELS:,} levels a side (1 connection) and")
    print(f"prints (32 connections) for {args.seconds} s each, against an empty book and one holding")
    print(f"{args.resting:,} resting orders in its queues")
    cases = {"empty": 0, "resting": args.resting}
    books: dict[str, list[Result]] = {name: [] for name in cases}
    trades: dict[str, list[Result]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory(prefix="bench-depth-") as tmp:
        for round_no in range(1, args.rounds + 1):
            order = list(cases) if round_no % 2 else list(reversed(cases))
            for name in order:
                book, trade, created = measure(wrk, cases[name], args.seconds, Path(tmp) / f"{name}.log")
                books[name].append(book)
                trades[name].append(trade)
                print(
                    f"round {round_no} {name:8} ({created:>6,} resting)  books {book.rps:6.0f}/s"
                    f"  p50 {book.p50_ms:6.2f} ms  p99 {book.p99_ms:6.2f} ms   prints {trade.rps:6.0f}/s"
                    f"  p99 {trade.p99_ms:6.2f} ms",
                    flush=True,
                )
    print()
    print(f"{'median':8} {'books/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'prints/s':>9}")
    summary = {name: (median(books[name]), median(trades[name])) for name in cases}
    for name, (book, trade) in summary.items():
        print(f"{name:8} {book.rps:8.0f} {book.p50_ms:7.2f} {book.p99_ms:7.2f} {trade.rps:9.0f}")
    (book_empty, trade_empty), (book_resting, trade_resting) = summary["empty"], summary["resting"]
    print(
        f"ratio resting/empty: book p99 {book_resting.p99_ms / book_empty.p99_ms:.2f}, "
        f"prints/s {trade_resting.rps / trade_empty.rps:.2f}"
    )
    book_verdict = "PASS" if book_resting.p99_ms <= BOOK_P99_MS else "MISS"
    trades_verdict = "PASS" if trade_resting.rps >= TRADES_PER_SECOND else "MISS"
    print(f"book p99 with resting orders {book_resting.p99_ms:.2f} ms (<= {BOOK_P99_MS} ms): {book_verdict}")
    print(f"prints with resting orders {trade_resting.rps:.0f}/s (>= {TRADES_PER_SECOND}): {trades_verdict}")


if __name__ == "__main__":
    main()
