"""Reading the event journal: pages of entries and of fills, with the journal's bounds
checked, and the signal that wakes whatever follows it when it grows."""

import asyncio
from collections.abc import AsyncIterator

import anyio

from app.core.errors import ServiceError
from app.core.journal import Entry, EntryFilter
from app.core.order import Order, StoredFill
from app.service.calls import StoreCalls
from app.store.base import OrderStore
from app.store.errors import StoreUnavailable
from app.store.journal import MAX_READ, JournalPage

# Seconds before a journal read that failed (the database is down) is tried again.
RETRY_SECONDS = 1.0


class EventsExpired(ServiceError):
    """The journal no longer holds what a reader asked for (or never held it: a memory
    store that restarted numbers from 1 again). The reader starts over from `oldest`."""

    code = "EVENTS_EXPIRED"

    def __init__(self, after: int, oldest: int, head: int) -> None:
        if after > head:
            detail = (
                f"The journal has no event after seq {after}: its newest is {head} (a memory store numbers from 1 "
                "again after a restart); read the orders again and follow from the oldest_seq"
            )
        else:
            detail = (
                f"Events after seq {after} are no longer kept: the oldest kept is {oldest}; "
                "read the orders again and follow from there"
            )
        super().__init__(detail, oldest_seq=oldest, newest_seq=head)


def wake(waiters: list[asyncio.Future[None]]) -> None:
    """Resolve `waiters`, each on its own event loop (the one its waiter runs on may not
    be the caller's: a test client serves HTTP and each WebSocket on loops of their own)."""
    try:
        current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for waiter in waiters:
        loop = waiter.get_loop()
        if loop is current:
            _resolve(waiter)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class JournalSignal:
    """Set each time the journal may have grown: by this process's own writes (the
    service calls `moved` after each) or another process's (the store's `follow`).
    Whoever follows the journal waits on it, then reads what is new."""

    def __init__(self) -> None:
        self._pending = False
        self._waiters: list[asyncio.Future[None]] = []

    def moved(self) -> None:
        # Called after every intent: with no follower waiting, it only marks.
        self._pending = True
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            wake(waiters)

    async def wait(self) -> None:
        if not self._pending:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self._pending = False


class Journal:
    """The journal as readers see it, over any store."""

    def __init__(self, store: OrderStore, calls: StoreCalls) -> None:
        self.store = store
        self.signal = JournalSignal()
        self._call = calls

    @property
    def id(self) -> str:
        """Names this journal: seqs mean something only within it (a memory store's
        numbering starts again, under a new id, with each start)."""
        return self.store.journal_id

    async def head(self) -> int:
        return await self._call(self.store.journal_head)

    async def page(self, after: int, limit: int, keep: EntryFilter) -> tuple[list[Entry], int]:
        """Up to `limit` entries after `after` that `keep` accepts, and the seq to read
        on from (the last returned; `after` if none). EventsExpired if the journal no
        longer holds the entry right after `after`."""
        found = await self.read(after, limit, keep)
        return found.entries, found.entries[-1].seq if found.entries else after

    async def read(self, after: int, limit: int, keep: EntryFilter) -> JournalPage:
        found = await self._call(self.store.read_journal, after, min(limit, MAX_READ), keep)
        if after + 1 < found.oldest or after > found.head:
            raise EventsExpired(after, found.oldest, found.head)
        return found

    async def fills(self, after: int, limit: int) -> tuple[list[tuple[Order, StoredFill]], int]:
        """Up to `limit` fills whose entries come after `after`, and the seq to read on
        from. EventsExpired if `after` is beyond the newest seq (a journal that started
        over): the fills the new numbering gives up to `after` would be skipped."""
        head = await self.head()
        if after > head:
            raise EventsExpired(after, 1, head)
        found = await self._call(self.store.fills_after, after, min(limit, MAX_READ))
        last = found[-1][1].seq if found else None
        return found, after if last is None else last

    async def follow_others(self) -> None:
        """Wake the signal whenever another process appends (runs until cancelled). A
        store that fails meanwhile is followed again a moment later: this must not end."""
        while True:
            updates: AsyncIterator[int] = self.store.follow()
            try:
                async for _head in updates:
                    self.signal.moved()
            except StoreUnavailable:
                self.signal.moved()  # whatever came meanwhile is read once the store is back
                await anyio.sleep(RETRY_SECONDS)
