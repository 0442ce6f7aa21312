"""Group commit: work that arrives while a transaction runs shares the next one.

A durable commit waits for the disk; a transaction per request would make every
request wait for all the commits before its own. Here the event loop hands each item
to a batcher and awaits a future; the batcher takes everything waiting (up to a
limit) as one batch, runs it as one transaction, and answers each item's future on
its own loop. `GroupCommit` runs the batches in one writer thread; `LoopGroupCommit`
runs them on the event loop itself, for a store whose batches do not block it (they
hand their waits to a thread, or await them).
"""

import asyncio
import contextlib
import copy
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Waiting(Generic[T, R]):
    """One item, and the outcome its batch gave it."""

    __slots__ = ("_error", "_result", "abandoned", "future", "item", "loop")

    def __init__(self, item: T, loop: asyncio.AbstractEventLoop, future: "asyncio.Future[R]") -> None:
        self.item = item
        self.loop = loop
        self.future = future
        self._result: R | None = None
        self._error: BaseException | None = None
        # Set when the caller stopped waiting (its deadline passed) before the writer
        # took the item: it is then never started, rather than done unseen.
        self.abandoned = False

    def succeed(self, result: R) -> None:
        self._result = result

    def fail(self, error: BaseException) -> None:
        self._error = error

    @property
    def answered(self) -> bool:
        return self._result is not None or self._error is not None

    def settle(self) -> None:
        """On the item's event loop: hand the outcome to whoever awaits it."""
        if self.future.done():  # the request was canceled (client gone); its work stands
            return
        if self._error is not None:
            self.future.set_exception(self._error)
        elif self._result is None:
            self.future.set_exception(RuntimeError("the batch gave this item no result"))
        else:
            self.future.set_result(self._result)


class GroupCommit(Generic[T, R]):
    """`run_batch` gets the waiting items in arrival order and gives each its result
    (`succeed`); if it raises, every item of the batch without one gets that error."""

    def __init__(self, run_batch: Callable[[list[Waiting[T, R]]], None], max_batch: int, name: str) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Waiting[T, R] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        entry: Waiting[T, R] = Waiting(item, loop, loop.create_future())
        self._queue.put(entry)
        try:
            return await entry.future
        except asyncio.CancelledError:
            entry.abandoned = True
            raise

    def close(self) -> None:
        """Finish what was submitted, then stop the writer."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                if entry is None:
                    stop = True
                    break
                batch.append(entry)
            batch = [entry for entry in batch if not entry.abandoned]
            if batch:
                self._run(batch)
            if stop:
                return

    def _run(self, batch: list[Waiting[T, R]]) -> None:
        try:
            self._run_batch(batch)
        except BaseException as error:  # every caller must hear back, whatever happened
            for entry in batch:
                if not entry.answered:
                    # A copy each: a shared exception object would gather every
                    # caller's traceback as each re-raises it.
                    entry.fail(copy.copy(error))
        by_loop: dict[asyncio.AbstractEventLoop, list[Waiting[T, R]]] = {}
        for entry in batch:
            by_loop.setdefault(entry.loop, []).append(entry)
        for loop, entries in by_loop.items():
            # One wake-up of each loop for the whole batch, not one per item. A loop that
            # has closed has nobody waiting on it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_all, entries)


def _settle_all(entries: list[Waiting[T, R]]) -> None:
    for entry in entries:
        entry.settle()


class LoopGroupCommit(Generic[T, R]):
    """Group commit whose batches are formed and run on the event loop: `run_batch` is
    a coroutine that gives each item of the batch its result (`succeed`) or error
    (`fail`), and hands the waits (a lock, a commit's fsync) to a thread itself. Each
    event loop batches its own items (a test client runs its own loop); one batch at a
    time per loop."""

    def __init__(self, run_batch: Callable[[list[Waiting[T, R]]], Awaitable[None]], max_batch: int) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._pending: dict[asyncio.AbstractEventLoop, list[Waiting[T, R]]] = {}
        self._draining: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        entry: Waiting[T, R] = Waiting(item, loop, loop.create_future())
        self._pending.setdefault(loop, []).append(entry)
        if loop not in self._draining:
            # Its own task, not the caller's: a request that goes away does not stop the
            # batch it joined.
            self._draining[loop] = loop.create_task(self._drain(loop))
        try:
            return await entry.future
        except asyncio.CancelledError:
            entry.abandoned = True
            raise

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while pending := self._pending.get(loop):
                batch = [entry for entry in pending[: self._max_batch] if not entry.abandoned]
                del pending[: self._max_batch]
                if batch:
                    await self._run(batch)
        finally:
            del self._draining[loop]
            self._pending.pop(loop, None)

    async def _run(self, batch: list[Waiting[T, R]]) -> None:
        try:
            await self._run_batch(batch)
        except BaseException as error:  # every caller must hear back, whatever happened
            for entry in batch:
                if not entry.answered:
                    entry.fail(copy.copy(error))
            if not isinstance(error, Exception):  # the loop is stopping: so does the drain
                raise
        finally:
            for entry in batch:
                entry.settle()
