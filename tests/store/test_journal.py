"""The event journal on every store: each step's events are numbered 1, 2, 3, ... with
no gaps in the step that made them, read back as of their events, filtered, and kept
(SQL: across a restart; memory: the newest EVENTS_RETAIN)."""

import asyncio
import re
from decimal import Decimal
from pathlib import Path

import pytest

from app.core.controls import TradingState
from app.core.errors import IntentRefused
from app.core.journal import Entry, EntryFilter, EventType
from app.core.vocabulary import CancelReason, OrderStatus, Side, TradingStateName
from app.store.base import OrderStore
from app.store.journal import RetainedEvents
from app.store.memory import InMemoryStore
from app.store.sql import SqlStore
from tests.conftest import open_test_store
from tests.store.test_contract import BTC, PLAIN, admit, order, quote

EVERYTHING = EntryFilter()


def everything(store: OrderStore, after: int = 0) -> list[Entry]:
    return store.read_journal(after, 1000, EVERYTHING).entries


def a_session(store: OrderStore) -> dict[str, str]:
    """Orders accepted, filled on arrival and by a quote, canceled, and a kill switch
    with cancel_open: every kind of step. The order ids by name."""
    rests, _, _ = admit(store, order("rests", Side.BUY, 2.0, 100.0, at=1))
    asyncio.run(store.add_quote(BTC, quote("99", "100", ask_size="0.5"), PLAIN, 2))  # fills 0.5 of `rests`
    takes, _, _ = admit(store, order("takes", Side.SELL, 1.0, 99.0, at=3))  # fills at the bid
    waits, _, _ = admit(store, order("waits", Side.SELL, 1.0, 500.0, at=4))
    store.cancel(waits.order_id, 5)
    admit(store, order("open", Side.BUY, 1.0, 10.0, at=6))
    store.set_trading_state(TradingState(TradingStateName.HALTED, "drill", 7), cancel_open=True)
    return {"rests": rests.order_id, "takes": takes.order_id, "waits": waits.order_id}


def test_every_step_is_journaled_in_order_with_no_gaps(store: OrderStore) -> None:
    ids = a_session(store)
    entries = everything(store)
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert store.journal_head() == len(entries)
    assert [(entry.type, entry.order_id) for entry in entries] == [
        (EventType.NEW, ids["rests"]),
        (EventType.PARTIAL_FILL, ids["rests"]),
        (EventType.NEW, ids["takes"]),
        (EventType.FILL, ids["takes"]),
        (EventType.NEW, ids["waits"]),
        (EventType.CANCELED, ids["waits"]),
        (EventType.NEW, entries[6].order_id),
        (EventType.TRADING_STATE, None),
        (EventType.CANCELED, ids["rests"]),
        (EventType.CANCELED, entries[6].order_id),
    ]


def test_entries_show_each_order_as_it_was_right_after_the_event(store: OrderStore) -> None:
    a_session(store)
    entries = everything(store)
    new, partial = entries[0], entries[1]
    assert new.order is not None
    assert partial.order is not None
    assert (new.order.status, new.order.filled_qty, new.order.fills, new.ts) == (OrderStatus.NEW, 0, [], 1)
    assert (partial.order.status, partial.order.filled_qty, partial.ts) == (
        OrderStatus.PARTIALLY_FILLED,
        Decimal("0.5"),
        2,
    )
    assert partial.fill is not None
    assert (partial.fill.qty, partial.fill.price, partial.fill.seq) == (
        Decimal("0.5"),
        Decimal("100"),
        2,
    )
    assert partial.position is not None
    assert (partial.position.qty, partial.position.cost) == (
        Decimal("0.5"),
        Decimal("50"),
    )
    # The same order, canceled by the kill switch at the end: its fill kept.
    last_cancel = entries[8]
    assert last_cancel.order is not None
    assert (last_cancel.order.status, last_cancel.order.filled_qty, len(last_cancel.order.fills)) == (
        OrderStatus.CANCELED,
        Decimal("0.5"),
        1,
    )
    assert (last_cancel.reason, last_cancel.detail, last_cancel.ts) == (
        CancelReason.KILL_SWITCH,
        "cancel_open_orders with trading state HALTED",
        7,
    )
    assert entries[5].reason == CancelReason.REQUESTED
    state = entries[7]
    assert state.trading_state == TradingState(TradingStateName.HALTED, "drill", 7)
    assert state.previous_state is not None
    assert state.previous_state.state == TradingStateName.ACTIVE
    assert state.canceled_orders == 2


def test_reads_page_and_filter_and_report_the_bounds(store: OrderStore) -> None:
    ids = a_session(store)
    page = store.read_journal(2, 3, EVERYTHING)
    assert ([entry.seq for entry in page.entries], page.oldest, page.head) == ([3, 4, 5], 1, 10)
    fills = store.read_journal(0, 100, EntryFilter(types=frozenset({EventType.FILL, EventType.PARTIAL_FILL})))
    assert [entry.seq for entry in fills.entries] == [2, 4]
    one_order = store.read_journal(0, 100, EntryFilter(order_id=ids["rests"])).entries
    assert [entry.seq for entry in one_order] == [1, 2, 8, 9]  # the kill switch concerns every order
    other_symbol = store.read_journal(0, 100, EntryFilter(symbol="ETH/USDT", exchange="binance")).entries
    assert [entry.seq for entry in other_symbol] == [8]
    assert store.read_journal(10, 100, EVERYTHING).entries == []


def test_fills_are_listed_by_their_events_seq_with_their_orders(store: OrderStore) -> None:
    ids = a_session(store)
    listed = store.fills_after(0, 100)
    assert [(found.order_id, fill.seq) for found, fill in listed] == [(ids["rests"], 2), (ids["takes"], 4)]
    assert [fill.seq for _, fill in store.fills_after(2, 100)] == [4]
    assert store.fills_after(4, 100) == []
    assert [fill.seq for _, fill in store.fills_after(0, 1)] == [2]
    # An order read back names the seq of each of its fills.
    got = store.get(ids["takes"])
    assert got is not None
    assert [fill.seq for fill in got.fills] == [4]


def test_a_refused_or_duplicate_intent_journals_nothing(store: OrderStore) -> None:
    admit(store, order("k"))
    admit(store, order("k"))
    store.set_trading_state(TradingState(TradingStateName.HALTED, "stop", 2))
    with pytest.raises(IntentRefused, match=r"HALTED"):
        admit(store, order("refused"))
    assert [entry.type for entry in everything(store)] == [EventType.NEW, EventType.TRADING_STATE]
    # A cancel journals once; a cancel of an order no longer open journals nothing.
    kept = store.get_by_key("k")
    assert kept is not None
    store.cancel(kept.order_id, 3)
    store.cancel(kept.order_id, 4)
    assert [entry.type for entry in everything(store)] == [EventType.NEW, EventType.TRADING_STATE, EventType.CANCELED]
    assert store.journal_head() == 3


def test_a_sqlite_journal_is_kept_across_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    first = SqlStore(url)
    a_session(first)
    before = [(entry.seq, entry.type, entry.order_id) for entry in everything(first)]
    first.close()
    again = SqlStore(url)
    try:
        assert [(entry.seq, entry.type, entry.order_id) for entry in everything(again)] == before
        again.set_trading_state(TradingState(TradingStateName.ACTIVE, None, 8))
        admit(again, order("after-restart", at=9))
        assert [(entry.seq, entry.type) for entry in everything(again, after=len(before))] == [
            (len(before) + 1, EventType.TRADING_STATE),
            (len(before) + 2, EventType.NEW),
        ]
    finally:
        again.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_durable_journal_has_one_id_for_every_worker_and_restart(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ours = open_test_store(kind, tmp_path, request)
    url = str(ours.engine.url.render_as_string(hide_password=False))  # type: ignore[attr-defined]
    theirs = SqlStore(url)  # as another worker, or this one after a restart
    another = SqlStore(f"sqlite:///{tmp_path / 'another.db'}")
    try:
        assert re.fullmatch(r"[0-9a-f]{32}", ours.journal_id)
        assert theirs.journal_id == ours.journal_id
        assert another.journal_id != ours.journal_id  # another database numbers another journal
    finally:
        for store in (ours, theirs, another):
            store.close()


def test_a_memory_journal_is_another_one_at_each_start() -> None:
    """Its seqs start again at 1 with each start: a seq from before means nothing after."""
    assert InMemoryStore().journal_id != InMemoryStore().journal_id


def test_the_memory_store_keeps_only_the_newest_events() -> None:
    store = InMemoryStore(events_retain=3)
    for n in range(5):
        admit(store, order(f"k{n}", limit=10.0 + n))
    page = store.read_journal(0, 100, EVERYTHING)
    assert ([entry.seq for entry in page.entries], page.oldest, page.head) == ([3, 4, 5], 3, 5)
    assert [entry.seq for entry in store.read_journal(3, 100, EVERYTHING).entries] == [4, 5]


def test_retained_events_are_numbered_by_their_place_and_bounded() -> None:
    ring = RetainedEvents(2)
    assert (ring.head, ring.oldest) == (0, 1)
    store = InMemoryStore()
    events = [asyncio.run(store.admit(order(f"r{n}"), PLAIN, n)).events[0] for n in range(3)]
    assert ring.append(events[:1]) == 1
    assert ring.append(events[1:]) == 2
    assert (ring.head, ring.oldest, len(ring._events)) == (3, 2, 2)
    assert [entry.seq for entry in ring.read(0, 10, EVERYTHING).entries] == [2, 3]
    assert [entry.seq for entry in ring.read(2, 1, EVERYTHING).entries] == [3]
    with pytest.raises(ValueError, match="at least one"):
        RetainedEvents(0)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_sql_store_hears_of_what_another_process_appends(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`follow` yields the head once it listens, then again when another store object
    (as another worker would) commits events."""
    ours = open_test_store(kind, tmp_path, request)
    theirs = SqlStore(str(ours.engine.url.render_as_string(hide_password=False)))  # type: ignore[attr-defined]

    async def follow() -> list[int]:
        heads = ours.follow()
        seen = [await asyncio.wait_for(anext(heads), 10)]
        writer = asyncio.create_task(asyncio.to_thread(admit, theirs, order("from-another-worker")))
        while seen[-1] < 1:
            seen.append(await asyncio.wait_for(anext(heads), 10))
        await writer
        await heads.aclose()  # type: ignore[attr-defined]
        return seen

    try:
        assert asyncio.run(follow()) in ([0, 1], [0, 0, 1])
    finally:
        theirs.close()
        ours.close()
