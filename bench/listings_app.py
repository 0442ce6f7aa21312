"""The service, as `app.main` builds it, around an in-memory store prefilled in this
process, for bench/listings.py (`uvicorn bench.listings_app:app`).

Posting a million intents through HTTP takes longer than the bench should; this fills
the store through its own code instead: every order is admitted by the store's
`admit` (the core's engine, the journal, the listing index), filled by its quotes
(`add_quote`) and canceled by its `cancel`, exactly as requests would, only without
parsing and rendering them. BENCH_ORDERS orders (default 1,000,000), the mix seeded so
every run holds the same statuses:

- NEW: about 75%, resting LIMIT orders that no quote reaches;
- FILLED: about 23%, MARKET orders filled at once by the instrument's quote;
- CANCELED: about 2%, resting orders canceled right after;
- EXPIRED: about 0.05%, IOC orders that found nothing to take;
- PARTIALLY_FILLED: about 0.05%, LIMIT BUYs that took the half a sized quote offered.

The rare ones are spread over the whole history, so a page of them reaches far back.
The start-up objects are frozen out of the garbage collector's sight as the service
does it, before the prefill: the orders are not, as those of a service that took them
one by one are not.
"""

import asyncio
import atexit
import gc
import os
import random
import time

from app.core.engine import Policy
from app.core.order import Order, OrderKind, OrderTerms
from app.core.values import Quote, exact
from app.core.vocabulary import OrderType, Side, TimeInForce
from app.service.settings import load_settings
from app.store.ids import new_number
from app.store.memory import InMemoryStore
from app.web.app import create_app

EXCHANGES = ("binance", "coinbase")
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
INSTRUMENTS = [(exchange, symbol) for exchange in EXCHANGES for symbol in SYMBOLS]
SEED = 20261201
# The quote each instrument rests under: MARKET orders fill at once, LIMIT orders at
# these prices never do.
BID, ASK = 99.0, 101.0
RESTING_BUY, RESTING_SELL = 50.0, 200.0
PLAIN = Policy()


def _quote(bid: float, ask: float, ask_size: float | None = None) -> Quote:
    return Quote(exact(bid), exact(ask), None, None if ask_size is None else exact(ask_size))


async def prefill(store: InMemoryStore, orders: int) -> None:
    rng = random.Random(SEED)
    kinds: dict[OrderKind, OrderKind] = {}
    clock = time.time_ns() // 1000
    regular = _quote(BID, ASK)
    for instrument in INSTRUMENTS:
        store.add_quote(instrument, regular, PLAIN, clock)
    partial_price = 100.0  # each partially filled BUY a little above the one before

    async def admit(n: int, instrument: tuple[str, str], side: Side, kind: OrderType, **terms: object) -> Order:
        order_kind = OrderKind(*instrument, side, kind, terms.pop("tif", TimeInForce.GTC))  # type: ignore[arg-type]
        order = Order(
            number=new_number(),
            idempotency_key=f"bench-{n}",
            kind=kinds.setdefault(order_kind, order_kind),
            terms=OrderTerms.of(terms["qty"], terms.get("limit"), clock + n, None),  # type: ignore[arg-type]
        )
        return (await store.admit(order, PLAIN, clock + n)).order

    for n in range(orders):
        instrument = INSTRUMENTS[rng.randrange(len(INSTRUMENTS))]
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        resting = RESTING_BUY - n * 1e-5 if side == Side.BUY else RESTING_SELL + n * 1e-5  # joins its list's end
        roll = rng.random()
        if roll < 0.0005:
            await admit(n, instrument, side, OrderType.LIMIT, qty=1.0, limit=resting, tif=TimeInForce.IOC)
        elif roll < 0.001:
            partial_price += 0.0005  # above every earlier one, so the sized quote reaches this one only
            store.add_quote(instrument, _quote(BID, partial_price, 0.5), PLAIN, clock + n)
            await admit(n, instrument, Side.BUY, OrderType.LIMIT, qty=1.0, limit=partial_price)
            store.add_quote(instrument, regular, PLAIN, clock + n)  # passes it by: it rests, half filled
        elif roll < 0.02:
            order = await admit(n, instrument, side, OrderType.LIMIT, qty=1.0, limit=resting)
            store.cancel(order.order_id, clock + n)
        elif roll < 0.25:
            await admit(n, instrument, side, OrderType.MARKET, qty=0.5)
        else:
            await admit(n, instrument, side, OrderType.LIMIT, qty=1.0, limit=resting)


def build() -> object:
    settings = load_settings()
    store = InMemoryStore(settings.events_retain)
    app = create_app(settings, store)
    app.openapi()
    gc.collect()
    gc.freeze()
    started = time.monotonic()
    asyncio.run(prefill(store, int(os.environ.get("BENCH_ORDERS", "1000000"))))
    print(f"listings_app: {store.count():,} orders in {time.monotonic() - started:.1f} s", flush=True)
    full_before = gc.get_stats()[2]["collections"]
    atexit.register(lambda: print(f"listings_app: full collections while serving: {_full_since(full_before)}"))
    gc.callbacks.append(_time_full_collections)
    return app


_slowest_full = [0.0]
_full_started = [0.0]


def _time_full_collections(phase: str, info: dict[str, int]) -> None:
    """The longest full collection while serving: it stops the event loop for its length."""
    if info["generation"] != 2:
        return
    if phase == "start":
        _full_started[0] = time.perf_counter()
    else:
        _slowest_full[0] = max(_slowest_full[0], time.perf_counter() - _full_started[0])


def _full_since(before: int) -> str:
    return f"{gc.get_stats()[2]['collections'] - before}, the longest {_slowest_full[0] * 1000:.0f} ms"


app = build()
