"""Memory per stored order and lookup cost, in-process, through the service's own path.

Stores 200,000 orders in the in-memory store, each from a JSON body as the route gets
it, with a fresh UUID4 string as its idempotency key (a common choice for bots), and
reports what they hold per order, in two ways, each in a fresh process:
- RSS: the growth of the process's resident memory (what the machine pays, allocator
  rounding and fragmentation included); the target is judged on this one;
- tracemalloc: the bytes still allocated afterwards (exact, but without rounding).
Two kinds of order: the spec's example (MARKET, `limit_price` and `client_ts_utc`
null) and a LIMIT order that carries both; and, the same way, what a fill holds (the
memory store's MAX_ORDERS counts fills as orders).

Then it times random lookups by order id and by key in stores of 2,000 to 1,000,000
orders. A lookup is one hash-map probe, so its cost does not grow with the number
stored; what rises from the smallest store is the CPU cache missing (a small store
fits in it, a large one does not), and it levels off once no store fits.

    python -m bench.memory [--orders 200000]
"""

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable

from app.ops.logs import EventLog
from app.service.orders import OrderService, QuoteRequest
from app.service.settings import Settings
from app.store.memory import DEFAULT_EVENTS_RETAIN, InMemoryStore
from app.web.parsing import parse_intent

LOOKUPS = 200_000
FILLED_BY_TINY_QUOTES = (
    b'{"idempotency_key":"big","exchange":"binance","symbol":"BTC/USDT","side":"BUY","qty":1000000,"type":"MARKET"}'
)
KINDS = ("market", "limit")
TARGET = 450


def body(kind: str, n: int) -> bytes:
    key = uuid.uuid4()
    if kind == "market":
        return (
            f'{{"idempotency_key":"{key}","exchange":"binance","symbol":"BTC/USDT","side":"BUY",'
            f'"qty":0.01,"type":"MARKET","limit_price":null,"client_ts_utc":null}}'
        ).encode()
    return (
        f'{{"idempotency_key":"{key}","exchange":"binance","symbol":"BTC/USDT","side":"SELL",'
        f'"qty":0.25,"type":"LIMIT","limit_price":{30000 + n / 100},'
        f'"client_ts_utc":"2026-11-24T07:34:{n % 60:02d}.{n % 1000000:06d}Z"}}'
    ).encode()


def new_service() -> tuple[OrderService, InMemoryStore]:
    quiet = logging.getLogger("bench-memory")
    quiet.setLevel(logging.CRITICAL)
    store = InMemoryStore()
    # No cap: the fills measurement holds more fills than the default MAX_ORDERS allows.
    settings = Settings(allowed_symbols="BTC/USDT", allowed_exchanges="binance", max_orders=10**9)
    return OrderService(settings, store, EventLog(quiet)), store


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def held_bytes(method: str, *, start: bool = False) -> int:
    """What the process holds after a full collection: its resident set, or by
    tracemalloc what is still allocated (`start` begins tracing, at the baseline)."""
    gc.collect()
    if method != "tracemalloc":
        return resident_bytes()
    if start:
        tracemalloc.start()
    return tracemalloc.get_traced_memory()[0]


def measure_in_this_process(kind: str, orders: int, method: str) -> float:
    """Bytes per order that `orders` stored orders of `kind` hold, by `method`."""
    return asyncio.run(_measure(kind, orders, method))


async def _measure(kind: str, orders: int, method: str) -> float:
    if kind == "fill":
        return await _measure_fills(orders, method)
    service, store = new_service()
    await service.submit(parse_intent(body(kind, 0), None))  # first-call costs (imports, caches) are not an order's
    before = held_bytes(method, start=True)
    for n in range(1, orders + 1):
        await service.submit(parse_intent(body(kind, n), None))
    after = held_bytes(method)
    assert store.count() == orders + 1
    return (after - before) / orders


async def _measure_fills(fills: int, method: str) -> float:
    """Bytes per fill: one large MARKET order filled by `fills` quotes of a tiny size,
    one fill each, after as many quotes again have filled the journal's ring (whose
    EVENTS_RETAIN newest events are held on top of any store's fills, and bounded on
    their own)."""
    service, _store = new_service()
    await service.submit(parse_intent(FILLED_BY_TINY_QUOTES, None))
    tiny = QuoteRequest("binance", "BTC/USDT", 99.0, 100.0, None, 1e-6)
    for _ in range(DEFAULT_EVENTS_RETAIN + 1000):
        await service.add_quote(tiny)
    before = held_bytes(method, start=True)
    for _ in range(fills):
        await service.add_quote(tiny)
    after = held_bytes(method)
    return (after - before) / fills


def measure(kind: str, orders: int, method: str) -> float:
    """Run one measurement in a fresh interpreter, so none inherits another's heap."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", "--child", kind, method, "--orders", str(orders)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return float(json.loads(out)["bytes_per_order"])


def filled(orders: int) -> tuple[InMemoryStore, list[str], list[str]]:
    return asyncio.run(_filled(orders))


async def _filled(orders: int) -> tuple[InMemoryStore, list[str], list[str]]:
    service, store = new_service()
    ids: list[str] = []
    keys: list[str] = []
    for n in range(orders):
        order = await service.submit(parse_intent(body("market", n), None))
        ids.append(order.order_id)
        keys.append(order.idempotency_key)
    return store, ids, keys


def time_lookups(lookup: Callable[[str], object], names: list[str]) -> float:
    sample = random.choices(names, k=LOOKUPS)
    started = time.perf_counter()
    for name in sample:
        if lookup(name) is None:
            raise AssertionError(f"lost {name}")
    return (time.perf_counter() - started) / LOOKUPS * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, method = args.child
        print(json.dumps({"bytes_per_order": measure_in_this_process(kind, args.orders, method)}))
        return

    print(f"memory per stored order, {args.orders:,} orders (target: at most {TARGET} bytes, by RSS)")
    for kind in KINDS:
        rss = measure(kind, args.orders, "rss")
        traced = measure(kind, args.orders, "tracemalloc")
        verdict = "meets" if rss <= TARGET else "MISSES"
        print(f"  {kind:7} RSS {rss:5.0f} B/order   tracemalloc {traced:5.0f} B/order   {verdict} the target")
    rss, traced = measure("fill", args.orders, "rss"), measure("fill", args.orders, "tracemalloc")
    print(f"  a fill  RSS {rss:5.0f} B/fill    tracemalloc {traced:5.0f} B/fill    (MAX_ORDERS counts it as an order)")

    stores = [filled(size) for size in (2_000, 20_000, 200_000, 1_000_000)]
    for label in ("by order id", "by key"):
        cells = []
        for store, ids, keys in stores:
            nanos = time_lookups(store.get, ids) if label == "by order id" else time_lookups(store.get_by_key, keys)
            cells.append(f"{nanos:5.0f} ns at {store.count():>9,}")
        print(f"lookup {label:12} " + "   ".join(cells))


if __name__ == "__main__":
    main()
