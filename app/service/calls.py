"""How the service calls a store: inline for one that never waits (a moment's lock), in a
worker thread for one that waits on I/O, so the event loop serves others meanwhile."""

from collections.abc import Awaitable, Callable
from typing import ParamSpec, Protocol, TypeVar

from anyio import to_thread

P = ParamSpec("P")
T = TypeVar("T")


class StoreCall(Protocol):
    def __call__(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]: ...


async def call_inline(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    return function(*args, **kwargs)


async def call_in_thread(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    return await to_thread.run_sync(lambda: function(*args, **kwargs))


def store_call(blocking: bool) -> StoreCall:
    return call_in_thread if blocking else call_inline
