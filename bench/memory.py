"""Memory per stored order and lookup cost, in-process, through the service's own path.

Stores 200,000 orders (each from a JSON body, as the route does, with a UUID4 string as
its idempotency key, a common choice for bots) in the in-memory store and reports the
memory they hold per order (tracemalloc: every allocation still alive afterwards,
maps included). Then times random lookups by order id and by key in stores of 2,000 to 1,000,000
orders. A lookup is one hash-map probe, so its cost does not grow with the number
stored; what rises from the smallest store is the CPU cache missing (a small store
fits in it, a large one does not), and it levels off once no store fits.

    python -m bench.memory [--orders 200000]
"""

import argparse
import gc
import logging
import random
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable

from app.config import Settings
from app.logs import EventLog
from app.service import OrderService
from app.storage import InMemoryStore

LOOKUPS = 200_000


def body(key: str) -> bytes:
    return (
        f'{{"idempotency_key":"{key}","exchange":"binance","symbol":"BTC/USDT","side":"BUY",'
        f'"qty":0.01,"type":"MARKET","limit_price":null,"client_ts_utc":null}}'
    ).encode()


def fill(orders: int, *, measure: bool = False) -> tuple[InMemoryStore, list[str], list[str], int]:
    """Store `orders` orders; return the store, their ids and keys, and bytes they hold."""
    quiet = logging.getLogger("bench-memory")
    quiet.setLevel(logging.CRITICAL)
    settings = Settings(allowed_symbols="BTC/USDT", allowed_exchanges="binance")
    store = InMemoryStore()
    service = OrderService(settings, store, EventLog(quiet))
    keys = [str(uuid.uuid4()) for _ in range(orders)]
    ids: list[str] = []
    if not measure:
        for key in keys:
            ids.append(service.submit_json(body(key)).order_id)
        return store, ids, keys, 0
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key in keys:
        ids.append(service.submit_json(body(key)).order_id)
    gc.collect()
    # The ids list and the id strings are the benchmark's own (the store keeps ids as
    # numbers); what the store holds is the rest.
    held = tracemalloc.get_traced_memory()[0] - before - sys.getsizeof(ids) - sum(sys.getsizeof(i) for i in ids)
    tracemalloc.stop()
    return store, ids, keys, held


def time_lookups(lookup: Callable[[str], object], names: list[str]) -> float:
    sample = random.choices(names, k=LOOKUPS)
    started = time.perf_counter()
    for name in sample:
        lookup(name)
    return (time.perf_counter() - started) / LOOKUPS * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200_000)
    args = parser.parse_args()

    store, ids, keys, held = fill(args.orders, measure=True)
    print(f"stored orders:        {store.count():,}")
    print(f"memory held:          {held / 1e6:.1f} MB")
    print(f"bytes per order:      {held / args.orders:.0f}  (target <= 450; key: a 36-character UUID string)")

    stores = [fill(2_000), fill(20_000), (store, ids, keys, held), fill(1_000_000)]
    for label in ("by order id", "by key"):
        cells = []
        for each_store, each_ids, each_keys, _ in stores:
            if label == "by key":
                nanos = time_lookups(each_store.get_by_key, each_keys)
            else:
                nanos = time_lookups(each_store.get, each_ids)
            cells.append(f"{nanos:5.0f} ns at {each_store.count():>7,}")
        print(f"lookup {label:12} " + "   ".join(cells))


if __name__ == "__main__":
    main()
