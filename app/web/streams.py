"""The live side of the event journal: one feed per app reads each new entry once,
renders it once, and keeps the newest in a window that every stream subscriber reads
from at its own pace.

A subscriber is never pushed to, so it can never slow order intake: it takes what it
has not yet sent from the window when it is ready to send. How far it trails the feed
is its queue; when that passes the bound it is told so (`Overflow`) and let go, to
resume from its last seq. A subscriber resuming from further back than the window
reads its history from the journal first, then joins the window.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from itertools import islice
from typing import Any

import anyio

from app.core.journal import Entry, EntryFilter
from app.service.journal import RETRY_SECONDS, EventsExpired, Journal
from app.store.errors import StoreUnavailable
from app.store.journal import MAX_READ

# Entries are read at most this often, and subscribers woken as often: under load a
# subscriber gets a batch per interval rather than a wake-up per event. With many
# subscribers the interval grows so that all of them together are woken at most
# WAKEUPS_PER_SECOND times a second: each wake-up is a send through the server, and
# order intake shares the process with them.
FLUSH_SECONDS = 0.02
WAKEUPS_PER_SECOND = 2500
KEEP_ALL = EntryFilter()


@dataclass(frozen=True, slots=True)
class Rendered:
    """An entry and its JSON (rendered once, whatever the number of subscribers), and
    the start of its Server-Sent Events message."""

    entry: Entry
    json: bytes
    sse_head: bytes  # b"id: <seq>\nevent: <type>\ndata: " (the JSON and a blank line follow)

    @classmethod
    def of(cls, entry: Entry, render: Callable[[Entry], bytes]) -> "Rendered":
        return cls(entry, render(entry), b"id: %d\nevent: %s\ndata: " % (entry.seq, entry.type.value.encode()))


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries for one subscriber, oldest first. `span` names the window range they
    came from when the subscriber keeps every entry (its messages are then the same
    bytes for every such subscriber, joined once)."""

    items: list[Rendered]
    span: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Overflow:
    """The subscriber fell more than its queue behind: it is let go after this."""

    last_sent: int  # the last seq it was sent (its `after` when nothing was)


class Heartbeat:
    """Nothing to send for a while: say so, so the connection is known to be alive."""


HEARTBEAT = Heartbeat()
Delivery = Batch | Overflow | Heartbeat


async def _within(scope: anyio.CancelScope, work: Coroutine[Any, Any, None]) -> None:
    with scope:
        await work


class Feed:
    def __init__(
        self, journal: Journal, render: Callable[[Entry], bytes], window: int, heartbeat_seconds: float
    ) -> None:
        self._journal = journal
        self._heartbeat_seconds = heartbeat_seconds
        self._render = render
        self._window: deque[Rendered] = deque(maxlen=window)
        self._head = 0  # the newest seq the feed has read (the window ends there)
        # Set when the window grows or a heartbeat is due, then replaced: every waiting
        # subscriber shares it (no timer or future of its own per wait).
        self._changed: asyncio.Event | None = None
        self._subscribers = 0
        self._closing = False  # the server is stopping: every stream ends
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: asyncio.Future[None] | None = None
        self._scopes: list[anyio.CancelScope] = []
        self._joined: tuple[tuple[int, int], bytes] | None = None

    @property
    def head(self) -> int:
        return self._head

    async def start(self) -> None:
        """Start reading (on the first subscriber), from the journal's head on, and
        return once that head is known."""
        loop = asyncio.get_running_loop()
        tasks = self._tasks
        if not (tasks and tasks[0].get_loop() is loop and not any(task.done() for task in tasks)):
            # First start, or the loop the feed ran on has ended (a test client's): anew.
            # No await from the check to here, so one subscriber starts it. Whatever
            # was left of a run before is ended, and its waiting subscribers woken.
            for scope in self._scopes:
                scope.cancel()
            self._wake()
            self._window.clear()
            self._joined = None
            self._closing = False
            self._ready = loop.create_future()
            self._changed = asyncio.Event()
            self._scopes = [anyio.CancelScope(), anyio.CancelScope(), anyio.CancelScope()]
            work = (self._read_forever(self._ready), self._journal.follow_others(), self._beat())
            self._tasks = [
                asyncio.create_task(_within(scope, job), name="journal-feed")
                for scope, job in zip(self._scopes, work, strict=True)
            ]
        assert self._ready is not None
        # Shielded: a subscriber that leaves while the feed starts must not cancel the
        # start every other subscriber waits on.
        await asyncio.shield(self._ready)

    async def stop(self) -> None:
        # Through anyio's cancel scopes, not Task.cancel: a read running in a worker
        # thread then finishes (and gives its connection back) before the store closes.
        tasks, self._tasks = self._tasks, []
        for scope in self._scopes:
            scope.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def close(self) -> None:
        """End every stream now (the server is stopping); its clients resume elsewhere."""
        self._closing = True
        self._wake()

    async def check(self, after: int) -> None:
        """Raise EventsExpired if the journal cannot resume after `after` (asked before
        a stream starts, so the client gets a 410 rather than a stream)."""
        await self._journal.read(after, 1, KEEP_ALL)

    async def _read_forever(self, ready: asyncio.Future[None]) -> None:
        try:
            self._head = await self._journal.head()
        except Exception as error:  # the store is down: subscribers are told, a later one starts again
            ready.set_exception(error)
            raise
        ready.set_result(None)
        while True:
            await self._journal.signal.wait()
            try:
                await self._read_new()
            except EventsExpired as expired:
                # The journal dropped entries before this feed read them (a ring smaller
                # than one step's events): go on from its newest; a subscriber that had
                # not read them is let go and told on resuming.
                self._window.clear()
                self._head = expired.extra["newest_seq"]
                self._wake()
            except StoreUnavailable:
                self._journal.signal.moved()  # read again once the database answers
                await asyncio.sleep(RETRY_SECONDS)
            await asyncio.sleep(max(FLUSH_SECONDS, self._subscribers / WAKEUPS_PER_SECOND))

    async def _beat(self) -> None:
        """Wake every subscriber twice a heartbeat interval: one that has sent nothing
        for half an interval then sends a heartbeat, so none is silent for a whole one
        (also one whose filter keeps none of a busy journal's events)."""
        while True:
            await asyncio.sleep(self._heartbeat_seconds / 2)
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    async def _read_new(self) -> None:
        while True:
            page = await self._journal.read(self._head, MAX_READ, KEEP_ALL)
            if page.entries:
                self._window.extend(Rendered.of(entry, self._render) for entry in page.entries)
                self._head = page.entries[-1].seq
                self._wake()
            if len(page.entries) < MAX_READ:
                return

    def sse_bytes(self, batch: Batch) -> bytes:
        """A batch's Server-Sent Events messages, joined once per window span."""
        if batch.span is not None and self._joined is not None and self._joined[0] == batch.span:
            return self._joined[1]
        joined = b"".join(part for item in batch.items for part in (item.sse_head, item.json, b"\n\n"))
        if batch.span is not None:
            self._joined = (batch.span, joined)
        return joined

    async def follow(self, after: int | None, keep: EntryFilter, *, queue: int) -> AsyncIterator[Delivery]:
        """What a subscriber is sent: entries after `after` (None: from now on) that
        `keep` accepts, in seq order, none twice; a heartbeat when it was sent nothing
        for a heartbeat interval; an Overflow, last, once it trails the feed by more
        than `queue`."""
        await self.start()
        self._subscribers += 1
        try:
            async for delivery in self._deliveries(after, keep, queue):
                yield delivery
        finally:
            self._subscribers -= 1

    async def _deliveries(self, after: int | None, keep: EntryFilter, queue: int) -> AsyncIterator[Delivery]:
        cursor = self._head if after is None else after  # every seq up to it is dealt with
        last_sent = cursor
        # The feed's head when it was last given something to send (None: it has been
        # waiting since). It is too slow when more than `queue` entries came while it
        # was sending; one that was waiting takes whatever the feed read meanwhile,
        # however much came in one read.
        sent_at_head: int | None = None
        clock = asyncio.get_running_loop().time
        spoke_at = clock()  # when it was last sent anything, a heartbeat included
        while not self._closing:
            if sent_at_head is not None and self._head - sent_at_head > queue:
                yield Overflow(last_sent)
                return
            oldest_in_window = self._head - len(self._window) + 1
            if cursor + 1 < oldest_in_window:
                # History the window no longer holds (a resume from further back, or a
                # subscriber still catching up): from the journal, rendered for it alone.
                try:
                    page = await self._journal.read(cursor, MAX_READ, keep)
                except EventsExpired:
                    yield Overflow(last_sent)  # its resume will be told what expired
                    return
                if page.entries:
                    cursor = page.entries[-1].seq
                    last_sent = cursor
                    spoke_at = clock()
                    sent_at_head = self._head
                    yield Batch([Rendered.of(entry, self._render) for entry in page.entries])
                if len(page.entries) < MAX_READ:
                    cursor = max(cursor, page.head)  # read through the journal's head: all seen
                continue
            if cursor < self._head:
                span = (cursor, self._head)
                newer = list(islice(reversed(self._window), self._head - cursor))
                newer.reverse()
                cursor = self._head
                if keep.keeps_all:
                    last_sent = cursor
                    spoke_at = clock()
                    sent_at_head = self._head
                    yield Batch(newer, span)
                else:
                    kept = [item for item in newer if keep.keeps(item.entry)]
                    if kept:
                        last_sent = kept[-1].entry.seq
                        spoke_at = clock()
                        sent_at_head = self._head
                        yield Batch(kept)
                continue
            changed = self._changed
            assert changed is not None
            if clock() - spoke_at >= self._heartbeat_seconds / 2:
                spoke_at = clock()
                sent_at_head = self._head
                yield HEARTBEAT
                continue
            await changed.wait()
            sent_at_head = None
