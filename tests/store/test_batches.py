"""A SQL store's batch (intents and market data that arrive together share one
transaction) answers as the memory store does taking the same items one at a time: the
same admissions, fills, prices, fees, provenance and positions, and the same market
data refused (out of order, stale). Market data is quotes, books with depth and prints.
The memory store's fills are proved against the core's rules elsewhere; this proves the
SQL batches' against them, with several quotes in one batch finding the orders they
reach as the batch left them."""

import asyncio
import itertools
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.engine import Policy
from app.core.errors import IntentRefused, MarketDataRefused
from app.core.events import Event, OrderAccepted, OrderCanceled, OrderExpired, OrderFilled
from app.core.order import Order, OrderKind, OrderTerms
from app.core.values import Costs, Quote, Trade, book_of
from app.core.vocabulary import FillSource, OrderType, Side, TimeInForce
from app.store.base import OrderStore
from app.store.ids import new_number
from app.store.memory import InMemoryStore
from app.store.sql import SqlStore
from tests.conftest import empty_postgres_store

# Steps are 10 µs apart; market data older than 20 µs is stale (MAX_QUOTE_AGE_MS, scaled).
STEP, MAX_AGE = 10, 20
POLICY = Policy(Costs(slippage_bps=Decimal(3), taker_fee_bps=Decimal(5), maker_fee_bps=Decimal(1)), None, MAX_AGE)
# 99.1 and 100.1 have no exact binary form: the stores must compare them alike.
prices = st.sampled_from([97, 99, 99.1, 100, 100.1, 101, 103])
sizes = st.none() | st.sampled_from(["0.1", "0.3", "1", "2.5"])
intents = st.tuples(
    st.just("intent"),
    st.sampled_from([Side.BUY, Side.SELL]),
    st.sampled_from([0.1, 0.3, 0.5, 1, 2]),
    st.none() | prices,
    st.sampled_from([TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC]),
)
duplicates = st.tuples(st.just("duplicate"), st.integers(0, 40))
# A quote's time: none (when it arrives), now, older than the step before (out of order
# after a quote stamped then), or older than the maximum age (stale).
stamps = st.sampled_from([None, None, 0, -15, -25])
quotes = st.tuples(st.just("quote"), prices, st.sampled_from([0, 0.5, 2]), sizes, sizes, stamps)
# A book: its best bid and spread, then one to three levels a side a dollar apart.
level_sizes = st.sampled_from([0.1, 0.3, 1.0])
books = st.tuples(
    st.just("book"),
    prices,
    st.sampled_from([0.5, 2]),
    st.lists(level_sizes, min_size=1, max_size=3),
    st.lists(level_sizes, min_size=1, max_size=3),
    stamps,
)
trades = st.tuples(st.just("trade"), prices, st.sampled_from([0.1, 0.5, 2]), st.booleans(), stamps)
# Each inner list arrives at once: one batch.
batches = st.lists(
    st.lists(intents | duplicates | quotes | books | trades, min_size=1, max_size=12), min_size=1, max_size=4
)
# Each example trades its own instrument: nothing of an earlier one is in its way.
_examples = itertools.count()


class Run:
    """The steps of one example turned into calls, alike for every store."""

    def __init__(self, steps: list[tuple[Any, ...]]) -> None:
        self.instrument = ("binance", f"T{next(_examples)}/USDT")
        self.keys: list[str] = []
        self.calls: list[tuple[str, Any]] = []
        for number, step in enumerate(steps):
            if step[0] in ("quote", "book", "trade"):
                self.calls.append((step[0], step[1:]))
            elif step[0] == "duplicate" and self.keys:
                self.calls.append(
                    ("intent", (self.keys[step[1] % len(self.keys)], Side.BUY, 7.0, None, TimeInForce.GTC))
                )
            else:
                _, side, qty, limit, tif = step if step[0] == "intent" else ("", Side.SELL, 1, None, TimeInForce.GTC)
                self.keys.append(f"{self.instrument[1]}-k{number}")
                self.calls.append(("intent", (self.keys[-1], side, float(qty), limit, tif)))

    async def call(self, store: OrderStore, at: int) -> tuple[Any, ...]:
        """The call at `at` (made at `at` steps), its answer summed up."""
        kind, values = self.calls[at]
        now = at * STEP
        if kind in ("quote", "book", "trade"):
            ts = None if values[-1] is None else now + values[-1]
            try:
                return (kind, _summary(await self.market_data(store, kind, values[:-1], now, ts)))
            except MarketDataRefused as refused:
                return ("refused", refused.code)
        key, side, qty, limit, tif = values
        order_type = OrderType.MARKET if limit is None else OrderType.LIMIT
        kind_of = OrderKind(*self.instrument, side, order_type, tif)
        new = Order(number=new_number(), idempotency_key=key, kind=kind_of, terms=OrderTerms.of(qty, limit, now, None))
        try:
            admission = await store.admit(new, POLICY, now)
        except IntentRefused as refused:  # the paper balance
            return ("refused", key, refused.code)
        # A new order as admitted, whatever a later quote of its batch did to it (a
        # duplicate's 409 shows its order's id and terms only).
        shown = (admission.order.status, admission.order.filled_qty) if admission.created else None
        return ("intent", key, admission.created, admission.order.idempotency_key, shown, _summary(admission.events))

    async def market_data(
        self, store: OrderStore, kind: str, values: tuple[Any, ...], now: int, ts: int | None
    ) -> list[Event]:
        if kind == "trade":
            price, qty, buys = values
            trade = Trade(Decimal(repr(price)), Decimal(repr(qty)), buys)
            return await store.add_trade(self.instrument, trade, POLICY, now, ts=ts)
        if kind == "book":
            bid, spread, bid_sizes, ask_sizes = values
            book = book_of(
                [(bid - level, size) for level, size in enumerate(bid_sizes)],
                [(bid + spread + level, size) for level, size in enumerate(ask_sizes)],
            )
            return await store.add_quote(self.instrument, book, POLICY, now, ts=ts, source=FillSource.BOOK)
        bid, spread, bid_size, ask_size = values
        quote = Quote(
            Decimal(repr(bid)),
            Decimal(repr(bid + spread)),
            None if bid_size is None else Decimal(bid_size),
            None if ask_size is None else Decimal(ask_size),
        )
        return await store.add_quote(self.instrument, quote, POLICY, now, ts=ts)

    def outcome(self, store: OrderStore) -> dict[str, Any]:
        """What the store holds of this example afterwards (None: no order has the key,
        its intent was refused)."""
        held: dict[str, Any] = {}
        for key in self.keys:
            order = store.get_by_key(key)
            held[key] = (
                None
                if order is None
                else (
                    order.status.value,
                    order.filled_qty,
                    [(fill.qty, fill.price, fill.fee, fill.liquidity.value, fill.provenance) for fill in order.fills],
                )
            )
        positions = [
            (view.position.qty, view.position.cost, view.position.realized_pnl, view.position.fees, _top(view.quote))
            for view in store.positions()
            if (view.exchange, view.symbol) == self.instrument
        ]
        return {"orders": held, "positions": positions}


def _top(quote: Quote | None) -> tuple[Any, ...] | None:
    """The top of a book (what marks a position: the SQL store reads only that)."""
    return None if quote is None else (quote.bid, quote.ask, quote.bid_size, quote.ask_size)


def _summary(events: list[Event]) -> list[tuple[Any, ...]]:
    """Each event's kind, order and what it did (a fill's size, price and fee)."""
    summary: list[tuple[Any, ...]] = []
    for event in events:
        if isinstance(event, OrderFilled):
            fill = event.fill
            summary.append(("filled", event.order.idempotency_key, event.after, fill.qty, fill.price, fill.fee))
        elif isinstance(event, (OrderAccepted, OrderCanceled, OrderExpired)):
            summary.append((type(event).__name__, event.order.idempotency_key))
        else:
            summary.append((type(event).__name__,))
    return summary


async def _in_batches(store: SqlStore, run: Run, sizes: list[int]) -> list[tuple[Any, ...]]:
    answers: list[tuple[Any, ...]] = []
    async with store.serve():
        start = 0
        for size in sizes:
            # Started together on one loop: they join one batch, in this order.
            answers += await asyncio.gather(*(run.call(store, at) for at in range(start, start + size)))
            start += size
    return answers


async def _one_by_one(store: OrderStore, run: Run) -> list[tuple[Any, ...]]:
    return [await run.call(store, at) for at in range(len(run.calls))]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    if request.param == "sqlite":
        opened = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('batches') / 'orders.db'}")
    else:
        opened = empty_postgres_store(request.getfixturevalue("postgres_url"))
    yield opened
    opened.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=batches)
def test_a_sql_batch_answers_as_the_memory_store_one_by_one(sql_store: SqlStore, steps: list[list[Any]]) -> None:
    run = Run([step for batch in steps for step in batch])
    memory = InMemoryStore()
    expected = asyncio.run(_one_by_one(memory, run))
    assert asyncio.run(_in_batches(sql_store, run, [len(batch) for batch in steps])) == expected
    assert run.outcome(sql_store) == run.outcome(memory)


# Little enough that balances cut and refuse fills (a BUY of 2 at 100 costs 200).
START = {"USDT": Decimal(300), "BTC": Decimal(2)}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=batches)
def test_with_paper_balances_a_sql_batch_answers_as_the_memory_store(
    sql_store: SqlStore, tmp_path_factory: pytest.TempPathFactory, steps: list[list[Any]]
) -> None:
    """The same with the paper account on (its own path: each quote reads its orders
    with their reservations), on a fresh store each time: balances are shared by every
    instrument of a quote currency."""
    run = Run([step for batch in steps for step in batch])
    assets = {"USDT", run.instrument[1].split("/")[0]}
    start = {"USDT": START["USDT"], run.instrument[1].split("/")[0]: START["BTC"]}
    if sql_store.name == "sqlite":
        fresh = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('account') / 'orders.db'}")
    else:
        fresh = empty_postgres_store(str(sql_store.engine.url.render_as_string(hide_password=False)))
    try:
        memory = InMemoryStore()
        for store in (memory, fresh):
            store.open_account(start, assets, POLICY)
        expected = asyncio.run(_one_by_one(memory, run))
        assert asyncio.run(_in_batches(fresh, run, [len(batch) for batch in steps])) == expected
        assert run.outcome(fresh) == run.outcome(memory)
        assert fresh.balances() == memory.balances()
    finally:
        fresh.close()
