"""Every call into a store that waits is bounded by STORE_TIMEOUT_MS on this side: a
database that stops answering gives a 503 instead of holding the request."""

import asyncio
import threading

import pytest

from app.service.calls import StoreCalls, StoreTimedOut
from app.store.errors import StoreUnavailable
from app.store.group_commit import GroupCommit, Waiting

HELD = 10.0  # seconds a stuck call would wait if nothing bounded it


def never(call: str, *args: object) -> bool:
    return False


def every(call: str, *args: object) -> bool:
    return True


def test_a_call_the_database_holds_past_the_deadline_is_answered_store_unavailable() -> None:
    release = threading.Event()
    finished = threading.Event()

    def stuck() -> str:
        release.wait(HELD)
        finished.set()
        return "late"

    async def scenario() -> None:
        calls = StoreCalls("postgresql", blocking=True, timeout_ms=50, quick=never)
        with pytest.raises(StoreTimedOut) as raised:
            await calls(stuck)
        assert isinstance(raised.value, StoreUnavailable)
        assert raised.value.code == "STORE_UNAVAILABLE"
        assert "50 ms" in raised.value.detail
        assert "same idempotency_key" in raised.value.detail
        assert not finished.is_set()  # the caller did not wait for the thread
        release.set()

    asyncio.run(scenario())
    assert finished.wait(HELD)  # the abandoned thread ends on its own once the database answers


def test_a_call_within_the_deadline_returns_its_result() -> None:
    async def scenario() -> int:
        return await StoreCalls("sqlite", blocking=True, timeout_ms=5_000, quick=never)(lambda a, b: a + b, 2, 3)

    assert asyncio.run(scenario()) == 5


def test_a_store_that_never_waits_is_called_inline_and_never_timed_out() -> None:
    called_on: list[threading.Thread] = []

    async def scenario() -> None:
        calls = StoreCalls("memory", blocking=False, timeout_ms=1, quick=every)
        await calls(lambda: called_on.append(threading.current_thread()))
        await calls.bounded(asyncio.sleep(0.02))  # longer than the deadline: not bounded

    asyncio.run(scenario())
    assert called_on == [threading.main_thread()]


def test_a_blocking_stores_quick_calls_are_made_inline_and_the_others_in_a_thread() -> None:
    """The store says which calls answer at once (SQLite's indexed reads): those run on
    the event loop's own thread, the rest in a worker thread."""
    called_on: dict[str, threading.Thread] = {}

    def get(order_id: str) -> None:
        called_on["get"] = threading.current_thread()

    def count() -> None:
        called_on["count"] = threading.current_thread()

    def quick(call: str, *args: object) -> bool:
        return call == "get" and args == ("o-1",)

    async def scenario() -> None:
        calls = StoreCalls("sqlite", blocking=True, timeout_ms=5_000, quick=quick)
        await calls(get, "o-1")
        await calls(count)

    asyncio.run(scenario())
    assert called_on["get"] is threading.main_thread()
    assert called_on["count"] is not threading.main_thread()


def test_a_store_coroutine_past_the_deadline_is_answered_store_unavailable() -> None:
    async def scenario() -> None:
        calls = StoreCalls("sqlite", blocking=True, timeout_ms=20, quick=never)
        with pytest.raises(StoreTimedOut):
            await calls.bounded(asyncio.sleep(HELD))

    asyncio.run(scenario())


def test_an_intent_whose_caller_gave_up_before_its_batch_began_is_never_admitted() -> None:
    """The writer is stuck on one batch; an intent queued behind it times out; when the
    database answers again that intent is skipped, not stored unseen."""
    release = threading.Event()
    batches: list[list[str]] = []

    taken = threading.Event()

    def run_batch(batch: list[Waiting[str, str]]) -> None:
        batches.append([entry.item for entry in batch])
        if batch[0].item == "first":
            taken.set()
            release.wait(HELD)
        for entry in batch:
            entry.succeed(entry.item.upper())

    commit: GroupCommit[str, str] = GroupCommit(run_batch, max_batch=8, name="test-writer")

    async def scenario() -> str:
        first = asyncio.ensure_future(commit.submit("first"))
        # The writer has taken "first" and is stuck in it.
        assert await asyncio.to_thread(taken.wait, HELD)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(commit.submit("given up"), 0.05)
        release.set()
        assert await first == "FIRST"
        return await commit.submit("after")

    try:
        assert asyncio.run(scenario()) == "AFTER"
    finally:
        commit.close()
    assert [item for batch in batches for item in batch] == ["first", "after"]
