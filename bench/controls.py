"""Order-intent throughput with every trading control on, against the same service with
them off, side by side.

Both contenders run the spec's uvicorn command (one worker, INFO logging, in-memory
store) and get the same quote for binance BTC/USDT before the load, then `wrk` (1
thread, 32 connections, fresh keys, every answer must be 201) posts LIMIT BUY intents
that cross it and fill at once. "controls-on" adds a rules file for the instrument
with every rule (tick and lot size, quantity and notional bounds, open orders and
position limits, set so that none refuses), TRADING_STATE=ACTIVE, a rate limit far
above the load and a paper account large enough never to refuse: every check runs,
and every fill moves the balances, on every intent. Contenders alternate over
several rounds; the median of per-round ratios is printed with the target (0.9).

    python -m bench.controls [--rounds 5] [--seconds 10]
"""

import argparse
import json
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.run import Result, alternate, per_round_ratios, post_json, print_medians, require_wrk
from bench.stores import measure

TARGET = 0.9
# LIMIT BUYs crossing QUOTE's ask: each fills at once, and every rule has a price to check.
CROSSING_LIMIT_BUY = '"side":"BUY","qty":0.01,"type":"LIMIT","limit_price":50010.5'
QUOTE = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 49999.5, "ask": 50000.0}
RULES = {
    "binance:BTC/USDT": {
        "tick_size": "0.5",
        "lot_size": "0.001",
        "min_qty": "0.001",
        "max_qty": 10,
        "min_notional": 10,
        "max_notional": 1_000_000,
        "max_open_orders": 1_000_000,
        "max_position": 1_000_000_000,
    }
}
CONTROLS_OFF = {"STORAGE_URL": "memory://"}


def write_rules(folder: Path) -> Path:
    """RULES as an INSTRUMENTS_FILE in `folder`."""
    rules = folder / "rules.json"
    rules.write_text(json.dumps(RULES))
    return rules


def controls_on(rules: Path) -> dict[str, str]:
    """The controls-on contender's settings (`rules`: from write_rules): every check runs,
    none refuses, and every fill moves the balances."""
    return {
        **CONTROLS_OFF,
        "INSTRUMENTS_FILE": str(rules),
        "TRADING_STATE": "ACTIVE",
        "MAX_INTENTS_PER_SECOND": "1000000",
        "PAPER_BALANCES": "USDT=1000000000000,BTC=1000000",
    }


def post_quote(port: int) -> None:
    """QUOTE, before the load, so the LIMIT BUYs cross it."""
    post_json(port, "/execution/market-data/quotes", QUOTE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    wrk = require_wrk()
    print(f"bench: using {wrk}; {args.rounds} rounds of {args.seconds:g} s each, controls off and on alternating")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        contenders = {"controls-off": CONTROLS_OFF, "controls-on": controls_on(write_rules(Path(tmp)))}

        def runner(name: str) -> Callable[[int], Result]:
            return lambda round_no: measure(
                wrk,
                contenders[name],
                [],
                seconds=args.seconds,
                warmup=args.warmup,
                log=Path(tmp) / f"{name}.log",
                label=f"{name}-{round_no}",
                intent_fields=CROSSING_LIMIT_BUY,
                before_load=post_quote,
            )

        results = alternate(args.rounds, {name: runner(name) for name in contenders}, 12)
    print_medians(results, 12)
    ratio = statistics.median(per_round_ratios(results["controls-on"], results["controls-off"]))
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"controls-on / controls-off: {ratio:.2f} (median of per-round ratios; target ≥{TARGET}: {verdict})")


if __name__ == "__main__":
    main()
