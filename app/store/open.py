"""The store a STORAGE_URL names, opened at start-up."""

import sys

from app.store.base import OrderStore
from app.store.errors import StoreUnavailable
from app.store.memory import DEFAULT_EVENTS_RETAIN, InMemoryStore


def open_store(url: str, events_retain: int = DEFAULT_EVENTS_RETAIN) -> OrderStore:
    """`memory://` (the default), `sqlite:///PATH` or `postgresql://...`, as Settings
    has already checked (the memory store keeps the newest `events_retain` events).
    Raises StoreUnavailable if the database cannot be opened."""
    if url == "memory://":
        return InMemoryStore(events_retain)
    # Imported only for a SQL store: SQLAlchemy's many objects would otherwise sit in
    # every memory-store process, and each full garbage collection walks them all.
    from app.store.sql import SqlStore  # noqa: PLC0415

    return SqlStore(url)


def load_store(url: str, events_retain: int = DEFAULT_EVENTS_RETAIN) -> OrderStore:
    """Open the store, or stop start-up with one clear line (as a bad setting does)."""
    try:
        return open_store(url, events_retain)
    except StoreUnavailable as error:
        print(f"execution: {error.detail}", file=sys.stderr)
        raise SystemExit(2) from None
