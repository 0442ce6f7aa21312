"""The feed behind the streams, driven directly (no HTTP): it survives a store that
fails for a moment and a journal that dropped entries before it read them."""

import asyncio
import itertools
from typing import Any

from app.core.controls import TradingState
from app.core.journal import EntryFilter, EventType
from app.core.vocabulary import TradingStateName
from app.service.calls import StoreCalls
from app.service.journal import Journal
from app.store.errors import StoreUnavailable
from app.store.journal import JournalPage
from app.store.memory import InMemoryStore
from app.web.streams import Batch, Feed, Heartbeat, Overflow
from app.web.views import entry_json
from tests.store.test_contract import PLAIN, order


class Flaky(InMemoryStore):
    """A memory store whose next journal reads fail (as a database that went away)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = 0

    def read_journal(self, after: int, limit: int, keep: EntryFilter) -> JournalPage:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("the database is unavailable")
        return super().read_journal(after, limit, keep)


async def admitted(store: InMemoryStore, journal: Journal, key: str, limit: float = 10.0) -> None:
    await store.admit(order(key, limit=limit), PLAIN, 1)
    journal.signal.moved()


async def next_seqs(deliveries: Any, count: int) -> list[int]:
    seqs: list[int] = []
    while len(seqs) < count:
        delivery = await asyncio.wait_for(anext(deliveries), 10)
        if isinstance(delivery, Batch):
            seqs += [item.entry.seq for item in delivery.items]
    return seqs


async def burst(store: InMemoryStore, journal: Journal, prefix: str, count: int) -> None:
    """`count` orders in the journal before the feed is told: it reads them at once."""
    for n in range(count):
        await store.admit(order(f"{prefix}{n}", limit=10.0), PLAIN, 1)
    journal.signal.moved()


async def first_two_deliveries(
    window: int, queue: int, first_burst: int, second_burst: int, *, settle: float = 0.0
) -> list[Any]:
    """A subscriber waiting on a fresh feed; `first_burst` entries, its first delivery
    (which it then holds, as a client still sending it), `second_burst` more, and
    `settle` seconds later its second delivery."""
    store = InMemoryStore()
    journal = Journal(store, StoreCalls(store.name, store.blocking, timeout_ms=5_000, quick=store.quick))
    feed = Feed(journal, entry_json, window=window, heartbeat_seconds=5)
    subscriber = feed.follow(None, EntryFilter(), queue=queue)
    first = asyncio.ensure_future(anext(subscriber))
    await asyncio.sleep(0.05)
    await burst(store, journal, "a", first_burst)
    deliveries = [await asyncio.wait_for(first, 10)]
    await burst(store, journal, "b", second_burst)
    await asyncio.sleep(settle)
    deliveries.append(await asyncio.wait_for(anext(subscriber), 10))
    await feed.stop()
    return deliveries


def test_the_feed_reads_on_after_a_store_failure() -> None:
    async def scenario() -> list[int]:
        store = Flaky()
        journal = Journal(store, StoreCalls(store.name, store.blocking, timeout_ms=5_000, quick=store.quick))
        feed = Feed(journal, entry_json, window=100, heartbeat_seconds=5)
        subscriber = feed.follow(None, EntryFilter(), queue=50)
        first = asyncio.ensure_future(next_seqs(subscriber, 2))
        await asyncio.sleep(0.05)
        store.failures = 2
        await admitted(store, journal, "a")
        await admitted(store, journal, "b")
        seqs = await first
        await feed.stop()
        return seqs

    assert asyncio.run(scenario()) == [1, 2]


def test_the_feed_goes_on_when_the_journal_dropped_what_it_had_not_read() -> None:
    """A ring of 3 and a kill switch that cancels 5 orders in one step (6 events): the
    live subscriber is let go at its last seq; the feed goes on and a new one hears
    what comes next."""

    async def scenario() -> tuple[list[int], Any, list[int]]:
        store = InMemoryStore(events_retain=3)
        journal = Journal(store, StoreCalls(store.name, store.blocking, timeout_ms=5_000, quick=store.quick))
        feed = Feed(journal, entry_json, window=100, heartbeat_seconds=5)
        live = feed.follow(None, EntryFilter(), queue=50)
        first = asyncio.ensure_future(next_seqs(live, 5))
        await asyncio.sleep(0.05)
        for n in range(5):
            await admitted(store, journal, f"k{n}")
            await asyncio.sleep(0.03)  # each read by the feed on its own
        seen = await first
        store.set_trading_state(TradingState(TradingStateName.HALTED, "drill", 2), cancel_open=True)
        journal.signal.moved()
        last = await asyncio.wait_for(anext(live), 10)
        store.set_trading_state(TradingState(TradingStateName.ACTIVE, None, 3))
        journal.signal.moved()
        await asyncio.sleep(0.05)
        later = feed.follow(None, EntryFilter(), queue=50)
        waiting = asyncio.ensure_future(next_seqs(later, 1))
        await asyncio.sleep(0.05)
        await admitted(store, journal, "after")
        after = await waiting
        await feed.stop()
        return seen, last, after

    seen, last, after = asyncio.run(scenario())
    assert seen == [1, 2, 3, 4, 5]
    assert isinstance(last, Overflow)
    assert last.last_sent == 5
    assert after == [13]  # 6 events of the kill switch, 1 of ACTIVE, then the new order


def test_a_filtered_subscriber_hears_a_heartbeat_while_the_journal_is_busy_with_others() -> None:
    """It keeps only fills; new orders keep coming: it is still never silent for a
    whole heartbeat interval."""

    async def scenario() -> list[float]:
        store = InMemoryStore()
        journal = Journal(store, StoreCalls(store.name, store.blocking, timeout_ms=5_000, quick=store.quick))
        feed = Feed(journal, entry_json, window=1000, heartbeat_seconds=0.2)
        fills_only = feed.follow(None, EntryFilter(types=frozenset({EventType.FILL})), queue=500)
        loop = asyncio.get_running_loop()
        heard: list[float] = []

        async def listen() -> None:
            async for delivery in fills_only:
                assert isinstance(delivery, Heartbeat)
                heard.append(loop.time())

        listening = asyncio.ensure_future(listen())
        started = loop.time()
        for n in range(50):  # a new order every 20 ms or so, for a second
            await admitted(store, journal, f"busy-{n}")
            await asyncio.sleep(0.02)
        listening.cancel()
        await feed.stop()
        return [started, *heard, loop.time()]

    moments = asyncio.run(scenario())
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert len(moments) >= 5  # heartbeats came (before, a busy journal kept it silent)
    # Never silent for a whole interval; twice that as a margin for a loaded machine.
    assert max(gaps) < 2 * 0.2


def test_a_waiting_subscriber_takes_a_read_larger_than_its_queue_whole() -> None:
    """Ten orders reach the journal before the feed reads them: one read of ten, more
    than the subscriber's queue of 3. It was waiting, not behind: it gets all ten and
    is not let go (it had been, when the feed read faster than intake: a resumed
    stream ended with an overflow it had not earned)."""
    deliveries = asyncio.run(first_two_deliveries(window=100, queue=3, first_burst=10, second_burst=1))
    assert all(isinstance(delivery, Batch) for delivery in deliveries), deliveries
    assert [[item.entry.seq for item in delivery.items] for delivery in deliveries] == [list(range(1, 11)), [11]]


def test_a_subscriber_catching_up_from_history_is_let_go_when_it_falls_behind() -> None:
    """A window of 30 and a queue of 3: a hundred entries come while it waits, so it
    reads them from the journal; while it sends those, a hundred more come. It is too
    slow, wherever its entries came from, and is let go at the last seq it was sent."""
    # The second hundred come while it is still sending the first; the feed reads them.
    first, then = asyncio.run(first_two_deliveries(window=30, queue=3, first_burst=100, second_burst=100, settle=0.1))
    assert isinstance(first, Batch)
    assert [item.entry.seq for item in first.items] == list(range(1, 101))
    assert then == Overflow(100)
