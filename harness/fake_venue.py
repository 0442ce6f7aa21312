"""What the fake exchanges (fake_binance.py, fake_okx.py) share: an aiohttp app on a
free 127.0.0.1 port, in a thread with its own event loop, driven from the test's (or
bench's) thread with bounded calls; the open websocket connections and what each is
subscribed to; dropping and refusing connections."""

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from aiohttp import web

HOST = "127.0.0.1"
# Bound on any wait for the fake's loop (start, stop, a push): far above what it takes.
LOOP_TIMEOUT = 10.0
# How long closing a websocket waits for the client's close frame (aiohttp waits 10 s by default).
CLOSE_TIMEOUT = 2.0

T = TypeVar("T")
Topic = TypeVar("Topic")  # what a connection subscribes to (a stream name, a channel and instrument)


class FakeVenue(Generic[Topic]):
    """The life cycle and connections of a fake exchange; a subclass adds its routes
    (`add_routes`) and what its subscribers are sent."""

    def __init__(self, thread_name: str) -> None:
        self.port = 0
        self.connections = 0  # websocket connections accepted, in all
        self.refused = 0  # websocket upgrades refused while refusing
        self.requests: list[str] = []  # REST paths asked, in order
        self._refusing = False
        self._sockets: dict[web.WebSocketResponse, set[Topic]] = {}  # open connection -> its subscriptions
        self._thread_name = thread_name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def subscribers(self, symbol: str, kind: str) -> int:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=self._thread_name, daemon=True)
        self._thread.start()
        if not started.wait(LOOP_TIMEOUT):
            raise RuntimeError("the fake exchange did not start")
        if failure:
            raise RuntimeError("the fake exchange did not start") from failure[0]

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(LOOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError("the fake exchange's thread did not end")
        self._loop = None
        self._thread = None

    async def _serve(self) -> None:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        listener = socket.socket()
        listener.bind((HOST, 0))  # the kernel's pick of a free port, held from here on
        self.port = int(listener.getsockname()[1])
        await web.SockSite(self._runner, listener).start()

    async def _shutdown(self) -> None:
        await self._drop()
        assert self._runner is not None
        await self._runner.cleanup()
        self._runner = None

    def _call(self, work: Awaitable[T]) -> T:
        """Run `work` on the fake's loop from the caller's thread; bounded."""
        assert self._loop is not None, "the fake exchange is not running"

        async def wrapped() -> T:
            return await work

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(LOOP_TIMEOUT)

    def wait_for_subscribers(self, symbol: str, kind: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.subscribers(symbol, kind) == 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"no subscriber to {symbol} {kind} within {timeout:g} s")
            time.sleep(0.01)

    def drop_connections(self) -> int:
        """Close every open websocket connection; how many there were."""
        return self._call(self._drop())

    def refuse_connections(self, refusing: bool) -> None:
        """While refusing, websocket upgrades get 503 (REST still answers)."""

        async def switch() -> None:
            self._refusing = refusing

        self._call(switch())

    @property
    def open_connections(self) -> int:
        async def count() -> int:
            return len(self._sockets)

        return self._call(count())

    async def _drop(self) -> int:
        connections = list(self._sockets)
        self._sockets.clear()  # no push reaches a connection being closed
        await asyncio.gather(*(each.close(code=1001, message=b"going away") for each in connections))
        return len(connections)


def until(check: Callable[[], T], what: str, timeout: float = 10.0, every: float = 0.05) -> T:
    """`check()` once it is truthy, polled until a deadline (then the test fails)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"never within {timeout:g} s: {what}")
        time.sleep(every)
