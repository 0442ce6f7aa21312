"""The store a STORAGE_URL names, opened at start-up."""

import sys

from app.store.base import OrderStore
from app.store.errors import StoreUnavailable
from app.store.memory import InMemoryStore


def open_store(url: str) -> OrderStore:
    """`memory://` (the default), `sqlite:///PATH` or `postgresql://...`, as Settings
    has already checked. Raises StoreUnavailable if the database cannot be opened."""
    if url == "memory://":
        return InMemoryStore()
    # Imported only for a SQL store: SQLAlchemy's many objects would otherwise sit in
    # every memory-store process, and each full garbage collection walks them all.
    from app.store.sql import SqlStore  # noqa: PLC0415

    return SqlStore(url)


def load_store(url: str) -> OrderStore:
    """Open the store, or stop start-up with one clear line (as a bad setting does)."""
    try:
        return open_store(url)
    except StoreUnavailable as error:
        print(f"execution: {error.detail}", file=sys.stderr)
        raise SystemExit(2) from None
