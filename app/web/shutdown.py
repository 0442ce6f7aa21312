"""Ending the event streams when the server is told to stop.

uvicorn's graceful shutdown waits for every open response to finish, and a stream
never does: without this, a SIGTERM would wait for the process manager's kill. The
server's own handlers for SIGINT and SIGTERM are wrapped, so a stop first ends every
stream (its clients reconnect and resume from their last seq, on this worker once it
is back or on another), then goes on as the server's handler says."""

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` on the running loop when a stop signal arrives, before the
    handler that was there; returns what puts that handler back. Signals are only
    handled in the main thread: elsewhere (a test client's thread) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handle(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        prior = previous[signal.Signals(signum)]
        if callable(prior):
            prior(signum, frame)
        else:  # the default action (or none): as if this handler had never been there
            signal.signal(signum, prior)
            signal.raise_signal(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handle)

    def restore() -> None:
        for sig, prior in previous.items():
            signal.signal(sig, prior)

    return restore
