"""What a store's journal answers, and the memory store's journal: the newest events in
a ring, numbered by their place in it."""

from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import NamedTuple

from app.core.events import Event, OrderFilled
from app.core.journal import Entry, EntryFilter, entry_of

# How many entries a read returns at most: a page, or a batch for the streams.
MAX_READ = 1000


class JournalPage(NamedTuple):
    """Entries after a seq, and the bounds of the journal when they were read: `oldest`
    is the oldest entry still kept (the head + 1 when none is), `head` the newest seq
    committed (0 for an empty journal)."""

    entries: list[Entry]
    oldest: int
    head: int


class RetainedEvents:
    """The newest `capacity` events, numbered 1, 2, 3, ... as they are appended. Only
    events are kept, not their seqs: the event at place i of the ring has seq
    `oldest + i`. Memory stays bounded by `capacity` events (and what they refer to)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a journal keeps at least one event")
        self._events: deque[Event] = deque(maxlen=capacity)
        self._head = 0

    @property
    def head(self) -> int:
        return self._head

    @property
    def oldest(self) -> int:
        return self._head - len(self._events) + 1

    def append(self, events: Sequence[Event]) -> int:
        """Number and keep `events` (dropping the oldest past the capacity); returns
        the seq of the first. A fill learns the seq of its event."""
        first = self._head + 1
        for seq, event in enumerate(events, start=first):
            if isinstance(event, OrderFilled):
                event.fill.seq = seq
        self._events.extend(events)
        self._head += len(events)
        return first

    def read(self, after: int, limit: int, keep: EntryFilter) -> JournalPage:
        """Up to `limit` kept entries with seq > `after` that `keep` accepts, oldest first."""
        oldest = self.oldest
        start = max(after + 1, oldest)
        found: list[Entry] = []
        if start <= self._head:
            # From the right: a reader is usually near the newest end, and a deque's
            # iteration from the left would walk every older entry first.
            newer = list(islice(reversed(self._events), self._head - start + 1))
            keeps_all = keep.keeps_all
            for seq, event in enumerate(reversed(newer), start=start):
                if keeps_all or keep.keeps_event(event):
                    found.append(entry_of(seq, event))
                    if len(found) >= limit:
                        break
        return JournalPage(found, oldest, self._head)
