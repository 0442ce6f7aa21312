"""How the service calls a store: inline for one that never waits (a moment's lock), in a
worker thread for one that waits on I/O, so the event loop serves others meanwhile.

A database can stop answering without closing its connections (a frozen server, a
network that drops packets silently): its own lock and statement timeouts run on the
server, so they never fire. Every call into a store that waits is therefore bounded on
this side too: past the deadline the caller gets `StoreUnavailable` (a 503; whether a
write took effect is unknown, so a client retries an intent with the same key), the
thread that waits is left to finish on its own when the database answers again, and
the event loop goes on serving everything that does not need the database.
"""

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import anyio
from anyio import to_thread

from app.store.errors import StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")


async def _in_thread(call: Callable[[], T]) -> T:
    return await to_thread.run_sync(call, abandon_on_cancel=True)


class StoreTimedOut(StoreUnavailable):
    """The store did not answer within STORE_TIMEOUT_MS."""

    def __init__(self, store: str, timeout_ms: int) -> None:
        super().__init__(
            f"The {store} store did not answer within {timeout_ms} ms (STORE_TIMEOUT_MS); whether a change was "
            "made is unknown: retry (an intent with the same idempotency_key)"
        )


class StoreCalls:
    """Calls into one store: inline when it never waits (the store's `quick` says which
    of a blocking store's calls never do), else in a worker thread and within
    `timeout_ms`."""

    def __init__(
        self,
        store: str,
        blocking: bool,
        timeout_ms: int,
        quick: Callable[..., bool],
        wait_for: "Callable[[Callable[[], Any]], Awaitable[Any]] | None" = None,
    ) -> None:
        self._store = store
        self._blocking = blocking
        self._quick = quick
        self._wait_for = wait_for or _in_thread
        self._timeout_ms = timeout_ms
        self._timeout = timeout_ms / 1000

    async def __call__(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if not self._blocking or self._quick(getattr(function, "__name__", ""), *args):
            return function(*args, **kwargs)
        # A caller cancelled for another reason (its client left, the service stops)
        # waits for the thread as before, so the store is never closed under a call;
        # only the deadline abandons it: the thread cannot be interrupted while the
        # database holds it, and the caller must not wait for it.
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout):
            result: T = await self._wait_for(lambda: function(*args, **kwargs))
            return result
        raise StoreTimedOut(self._store, self._timeout_ms)  # only the deadline ends the block unreturned

    async def bounded(self, call: Awaitable[T]) -> T:
        """Await a store's own coroutine (its group commit) within the deadline."""
        if not self._blocking:
            return await call
        with anyio.move_on_after(self._timeout):
            return await call
        raise StoreTimedOut(self._store, self._timeout_ms)
