"""The event stream under load: what subscribers cost order intake, and how soon they hear of an order.

1. Throughput with subscribers. The service (the spec's uvicorn command, one worker,
   INFO logging, in-memory store) takes bench.run's load, `wrk` (1 thread, 32
   connections) posting intents with fresh keys, once with no stream subscriber and
   once with 100 connected to GET /execution/events/stream; the two alternate over
   several rounds and the median of per-round throughput ratios is judged (target
   ≥0.8). The 100 subscribers live in one separate process (`python -m bench.streams
   subscribers`): asyncio protocols on raw sockets that read every byte the server
   sends into one shared buffer and count messages, parsing nothing else, so they cost
   the machine as little as a reader can. Afterwards each must have received every
   event since it connected (seqs gap-free, all up to the same last one, at least one
   per acknowledged intent) and none may have been let go with `event: overflow`.
2. Delivery latency. A paced poster (64 keep-alive connections, 500 intents a second
   on a fixed schedule) and 4 stream subscribers run as asyncio tasks of this process,
   on one clock: the latency of an order is the time from its 201 being read to a
   subscriber reading its `new` event (matched by idempotency key), over every
   subscriber, after a warm-up. For (a) the in-memory store, one worker (target p99
   ≤50 ms) and (b) PostgreSQL (a throwaway cluster with fsync on) with two uvicorn
   workers (target p99 ≤250 ms): there the subscribers and the poster's connections
   are spread over both workers, and deliveries are told apart by whether the
   poster's connection and the subscriber's were served by the same worker (a
   cross-worker event comes through PostgreSQL's NOTIFY).

Loopback only and bounded: every run has a fixed duration, every server and helper
process is stopped afterwards. A summary with PASS/FAIL per target ends the output.

    python -m bench.streams [--rounds 5] [--seconds 10] [--warmup 2] [--latency-seconds 10]
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bench.run import (
    Result,
    alternate,
    cpu_seconds,
    per_round_ratios,
    print_medians,
    require_wrk,
    run_wrk,
    start_server,
    stop_server,
)
from harness.postgres import PostgresMissing, postgres_cluster
from harness.servers import HOST, ROOT, free_port

APP = "app.main:app"
MEMORY = {"STORAGE_URL": "memory://"}
STREAM = "/execution/events/stream"
RATIO_TARGET = 0.8
MEMORY_P99_TARGET_MS = 50.0
POSTGRES_P99_TARGET_MS = 250.0
# What the counting subscribers look for: each event's message has an `id:` line, the
# first of its chunk after the chunk's size line, the others after a blank line.
ID_LINE = b"\nid: "
READ_SIZE = 256 * 1024
KEEP_TAIL = 2048  # the stream's last bytes each counting subscriber keeps (its last seq is there)
POSTER_CONNECTIONS = 64
SETTLE_SECONDS = 5.0  # the longest a finished run waits for subscribers to catch up


# --- The 100 counting subscribers (their own process) -------------------------------


class CountingSubscriber(asyncio.BufferedProtocol):
    """One stream subscriber that reads everything into a buffer it shares with the
    others (callbacks run one at a time) and only counts `id:` lines. It keeps the
    stream's first and last bytes, to tell its first and last seq and a final
    `event: overflow` at the end."""

    def __init__(self, buffer: bytearray, request: bytes) -> None:
        self.buffer = buffer
        self.view = memoryview(buffer)
        self.request = request
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.head = b""  # the first bytes: status line, headers, first messages
        self.tail = b""
        self.events = 0
        self.received = 0
        self.lost = False  # the server closed the connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        buffer = self.buffer
        self.events += buffer.count(ID_LINE, 0, nbytes)
        # A line split between two reads: it ends in this one (the pattern is 5 bytes).
        across = self.tail[-(len(ID_LINE) - 1) :] + buffer[: min(nbytes, len(ID_LINE) - 1)]
        self.events += across.count(ID_LINE)
        self.received += nbytes
        if nbytes >= KEEP_TAIL:
            self.tail = bytes(buffer[nbytes - KEEP_TAIL : nbytes])
        else:
            self.tail = (self.tail + buffer[:nbytes])[-KEEP_TAIL:]
        if not self.answered.done():
            self.head += buffer[:nbytes]
            if b"\r\n\r\n" in self.head:
                status = self.head.split(b"\r\n", 1)[0]
                if status.startswith(b"HTTP/1.1 200"):
                    self.answered.set_result(None)
                else:
                    self.answered.set_exception(RuntimeError(f"stream answered {status.decode(errors='replace')}"))
        elif len(self.head) < 4096:
            self.head += buffer[: min(nbytes, 4096 - len(self.head))]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.answered.done():
            self.answered.set_exception(ConnectionError(f"stream closed before answering: {exc}"))

    def first_seq(self) -> int | None:
        found = re.search(rb"\nid: (\d+)\n", self.head)
        return None if found is None else int(found[1])

    def last_seq(self) -> int | None:
        found = re.findall(rb"\nid: (\d+)\n", self.tail)
        return None if not found else int(found[-1])

    def overflowed(self) -> bool:
        return b"event: overflow" in self.tail


def itself(subscriber: CountingSubscriber) -> Callable[[], CountingSubscriber]:
    return lambda: subscriber


async def settle(subscribers: list[CountingSubscriber]) -> None:
    """Wait until no subscriber has received anything for 0.3 s and all have the same
    last seq (SETTLE_SECONDS at most): what the server had sent is then read."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        before = [sub.received for sub in subscribers]
        await asyncio.sleep(0.3)
        quiet = before == [sub.received for sub in subscribers]
        if quiet and len({sub.last_seq() for sub in subscribers if not sub.overflowed()}) <= 1:
            return


async def run_subscribers(port: int, count: int) -> dict[str, Any]:
    """Connect `count` subscribers, say READY once all are answered, read until a line
    (or EOF) on stdin, then report what they received."""
    loop = asyncio.get_running_loop()
    request = f"GET {STREAM} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
    buffer = bytearray(READ_SIZE)
    subscribers = [CountingSubscriber(buffer, request) for _ in range(count)]
    await asyncio.gather(*(loop.create_connection(itself(sub), HOST, port) for sub in subscribers))
    async with asyncio.timeout(30):
        await asyncio.gather(*(sub.answered for sub in subscribers))
    print("READY", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await settle(subscribers)
    report = subscriber_report(subscribers)
    for sub in subscribers:
        if sub.transport is not None:
            sub.transport.close()
    return report


def subscriber_report(subscribers: list[CountingSubscriber]) -> dict[str, Any]:
    lasts = [sub.last_seq() for sub in subscribers]
    newest = max((last for last in lasts if last is not None), default=None)
    complete = 0
    for sub, last in zip(subscribers, lasts, strict=True):
        first = sub.first_seq()
        gap_free = sub.events == 0 if first is None or last is None else sub.events == last - first + 1
        if gap_free and last == newest and not sub.overflowed():
            complete += 1
    events = [sub.events for sub in subscribers]
    return {
        "count": len(subscribers),
        "events_total": sum(events),
        "events_min": min(events),
        "events_max": max(events),
        "bytes_total": sum(sub.received for sub in subscribers),
        "complete": complete,
        "overflow": sum(sub.overflowed() for sub in subscribers),
        # Let go by the server without an overflow message (the stream's end is a 0 chunk).
        "closed": sum(sub.lost or sub.tail.endswith(b"\r\n0\r\n\r\n") for sub in subscribers),
        "last_seq": newest,
    }


@dataclass
class SubscriberReport:
    count: int
    events_total: int
    events_min: int
    events_max: int
    bytes_total: int
    complete: int
    overflow: int
    closed: int
    last_seq: int | None
    cpu_seconds: float = 0.0
    acknowledged: int = 0  # intents wrk saw answered while they were connected

    def problems(self) -> list[str]:
        found = []
        if self.overflow:
            found.append(f"{self.overflow} subscribers were sent `event: overflow` (too slow) and let go")
        if self.closed - self.overflow > 0:
            found.append(f"{self.closed - self.overflow} streams were closed by the server")
        if self.complete < self.count:
            found.append(f"{self.count - self.complete} subscribers missed events (a gap, or behind the others)")
        if self.events_min < self.acknowledged:
            found.append(f"a subscriber got {self.events_min} events for {self.acknowledged} acknowledged intents")
        return found


class SubscriberProcess:
    """`python -m bench.streams subscribers` in a process of its own, connected once built."""

    def __init__(self, port: int, count: int, log: Path) -> None:
        self.log = log
        with log.open("ab") as errors:
            # S603 silenced by the bench's per-file ignores: this interpreter, this module.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.streams", "subscribers", "--port", str(port), "--count", str(count)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        assert self.proc.stdout is not None
        # The child gives up after 30 s without every answer, and its EOF ends this read.
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            self.kill()
            sys.exit(f"bench: the subscribers did not connect ({line!r}); {log}:\n{log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def finish(self) -> SubscriberReport:
        """Let them read what is left, and their report."""
        try:
            out, _ = self.proc.communicate("stop\n", timeout=SETTLE_SECONDS + 30)
        except subprocess.TimeoutExpired:
            self.kill()
            sys.exit(f"bench: the subscribers did not report; {self.log}")
        line = next((line for line in out.splitlines() if line.startswith("SUBSCRIBERS ")), None)
        if line is None:
            sys.exit(f"bench: the subscribers exited without a report; {self.log}:\n{self.log.read_text()[-2000:]}")
        return SubscriberReport(**json.loads(line.removeprefix("SUBSCRIBERS ")))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- 1. Throughput with and without subscribers ------------------------------------


def measure_throughput(
    wrk: str, count: int, *, seconds: float, warmup: float, log: Path, label: str, reports: list[SubscriberReport]
) -> Result:
    """bench.run's load on the in-memory service with `count` subscribers connected
    throughout (their report appended to `reports`); the server's CPU per request too."""
    port = free_port()
    proc = start_server(APP, port, log, MEMORY)
    try:
        readers = SubscriberProcess(port, count, log.with_suffix(".subscribers.log")) if count else None
        try:
            time.sleep(0.3)  # each stream's place is taken once its first read of the feed runs
            _, warmup_requests = run_wrk(wrk, port, warmup, f"{label}-warmup")
            cpu_before = cpu_seconds(proc.pid)
            readers_before = 0.0 if readers is None else cpu_seconds(readers.pid)
            result, requests = run_wrk(wrk, port, seconds, f"{label}-measured")
            result.cpu_us = (cpu_seconds(proc.pid) - cpu_before) * 1e6 / max(requests, 1)
            readers_cpu = 0.0 if readers is None else cpu_seconds(readers.pid) - readers_before
        finally:
            report = None if readers is None else readers.finish()
    finally:
        stop_server(proc)
    if report is not None:
        report.cpu_seconds = readers_cpu
        report.acknowledged = warmup_requests + requests
        reports.append(report)
        problems = report.problems()
        print(
            f"        {report.count} subscribers: {report.events_total:,} events ({report.events_min:,} to "
            f"{report.events_max:,} each, {report.bytes_total / 1e6:,.0f} MB) for {report.acknowledged:,} intents; "
            f"their process used {100 * readers_cpu / seconds:.0f}% of a core; "
            + ("every event to every subscriber, no overflow" if not problems else "; ".join(problems)),
            flush=True,
        )
    return result


# --- 2. Delivery latency -----------------------------------------------------------


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (uvicorn's workers, for its supervisor)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def uvicorn_workers(pid: int) -> list[int]:
    """The worker processes of a uvicorn started with --workers (a multiprocessing
    resource tracker is a child too); none when a single process serves."""
    return [child for child in children(pid) if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def server_cpu(pid: int) -> float:
    """CPU seconds of a server and its live workers."""
    total = cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total


def worker_of(workers: list[int], server_port: int, client_port: int) -> int | None:
    """Which of `workers` holds the server's end of our loopback connection from `client_port`."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{server_port:04X}" and fields[2] == f"0100007F:{client_port:04X}":
            inode = fields[9]
    if inode is None:
        return None
    for pid in workers:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
    return None


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


class TimingSubscriber:
    """A stream subscriber that parses every message (chunked transfer encoding, then
    Server-Sent Events) and notes when each order's `new` event arrived."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, worker: int | None) -> None:
        self.reader, self.writer, self.worker = reader, writer, worker
        self.arrivals: dict[str, float] = {}  # idempotency key -> monotonic time read
        self.overflow = False
        self.gaps = 0
        self.last_seq: int | None = None
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, port: int, workers: list[int]) -> "TimingSubscriber":
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(f"GET {STREAM} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
        async with asyncio.timeout(30):
            headers = await reader.readuntil(b"\r\n\r\n")
        if not headers.startswith(b"HTTP/1.1 200") or b"transfer-encoding: chunked" not in headers.lower():
            raise SystemExit(f"bench: the stream answered {headers[:200]!r}")
        worker = worker_of(workers, port, writer.get_extra_info("sockname")[1]) if workers else None
        return cls(reader, writer, worker)

    def start(self) -> None:
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        pending = b""
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                return  # the stream ended
            chunk = await self.reader.readexactly(size + 2)
            now = time.monotonic()
            *messages, pending = (pending + chunk[:-2]).split(b"\n\n")
            for message in messages:
                self.take(message, now)

    def take(self, message: bytes, now: float) -> None:
        fields: dict[bytes, bytes] = {}
        for line in message.split(b"\n"):
            name, colon, value = line.partition(b": ")
            if colon and name:
                fields[name] = value
        kind = fields.get(b"event")
        if kind == b"overflow":
            self.overflow = True
        if b"id" not in fields:
            return
        seq = int(fields[b"id"])
        if self.last_seq is not None and seq != self.last_seq + 1:
            self.gaps += 1
        self.last_seq = seq
        if kind == b"new":
            key = json.loads(fields[b"data"])["order"]["idempotency_key"]
            self.arrivals.setdefault(key, now)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError):
                await self.task
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@dataclass
class Posted:
    """One paced intent: its key, when it was due and sent, its answer's arrival, the connection's worker."""

    key: str
    due: float
    sent: float = 0.0
    acked: float | None = None
    status: int = 0
    worker: int | None = None


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    headers = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in headers.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(headers[9:12]), await reader.readexactly(length)


@dataclass
class PosterConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    worker: int | None

    @classmethod
    async def connect(cls, port: int, workers: list[int]) -> "PosterConnection":
        """A keep-alive connection, answered once (so a worker has accepted it: which one is known)."""
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
        async with asyncio.timeout(30):
            status, _ = await read_answer(reader)
        if status != 200:
            raise SystemExit(f"bench: /healthz answered {status}")
        worker = worker_of(workers, port, writer.get_extra_info("sockname")[1]) if workers else None
        return cls(reader, writer, worker)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def post_paced(port: int, posted: list[Posted], connections: list[PosterConnection]) -> None:
    """POST each intent at its due time over `connections`, keep-alive (one still
    waiting for its answer leaves the next due intent to another)."""
    indices = itertools.count()

    async def send(connection: PosterConnection) -> None:
        reader, writer, worker = connection.reader, connection.writer, connection.worker
        try:
            while (index := next(indices)) < len(posted):
                intent = posted[index]
                await asyncio.sleep(max(0.0, intent.due - time.monotonic()))
                body = (
                    f'{{"idempotency_key":"{intent.key}","exchange":"binance","symbol":"BTC/USDT","side":"BUY",'
                    '"qty":0.01,"type":"MARKET","limit_price":null,"client_ts_utc":null}'
                ).encode()
                writer.write(
                    b"POST /execution/order-intents HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (HOST.encode(), port, len(body), body)
                )
                intent.sent = time.monotonic()
                intent.status, _ = await read_answer(reader)
                intent.acked = time.monotonic()
                intent.worker = worker
        finally:
            await connection.close()

    await asyncio.gather(*(send(connection) for connection in connections))


@dataclass
class Latency:
    name: str
    target_ms: float
    delays_ms: list[float] = field(default_factory=list)
    same_worker_ms: list[float] = field(default_factory=list)
    cross_worker_ms: list[float] = field(default_factory=list)
    intents: int = 0
    refused: int = 0
    missing: int = 0  # deliveries never seen (intent x subscriber)
    overflow: int = 0
    gaps: int = 0
    rate: float = 0.0
    post_p50_ms: float = 0.0
    post_p99_ms: float = 0.0
    late_posts: int = 0  # intents sent more than 5 ms after they were due
    placement: str = ""
    server_cpu: float = 0.0  # cores the server used while measured

    @property
    def p50(self) -> float:
        return percentile(self.delays_ms, 50) if self.delays_ms else math.inf

    @property
    def p99(self) -> float:
        return percentile(self.delays_ms, 99) if self.delays_ms else math.inf

    def problems(self) -> list[str]:
        found = []
        if self.refused:
            found.append(f"{self.refused} intents not answered 201")
        if self.missing:
            found.append(f"{self.missing} deliveries never arrived")
        if self.overflow:
            found.append(f"{self.overflow} subscribers got `event: overflow`")
        if self.gaps:
            found.append(f"{self.gaps} gaps in the seqs a subscriber got")
        return found


async def measure_latency(
    port: int,
    server_pid: int,
    latency: Latency,
    *,
    rate: float,
    seconds: float,
    warmup: float,
    subscribers: int,
    label: str,
) -> None:
    """Fill in `latency` from a paced run of `warmup + seconds` against the server on `port`."""
    workers = uvicorn_workers(server_pid)
    streams, extra_streams = await spread(subscribers, workers, lambda: TimingSubscriber.connect(port, workers))
    for stream in streams + extra_streams:
        stream.start()
    # Connected before the schedule starts, so it does not start with handshakes.
    posters, extra_posters = await spread(POSTER_CONNECTIONS, workers, lambda: PosterConnection.connect(port, workers))
    await asyncio.sleep(0.5)  # each stream's place is taken once its first read of the feed runs
    # The extras are closed only now that every stream has started, so what is measured
    # is the streams running, not connections coming and going.
    for stream in extra_streams:
        await stream.close()
    for poster in extra_posters:
        await poster.close()
    if workers:
        per_worker = [sum(stream.worker == pid for stream in streams) for pid in workers]
        latency.placement = f"{len(streams)} subscribers over {len(workers)} workers: {per_worker}"
    else:
        latency.placement = f"{len(streams)} subscribers, one process"

    start = time.monotonic() + 0.2
    total = round((warmup + seconds) * rate)
    posted = [Posted(f"{label}-{index}", start + index / rate) for index in range(total)]
    cpu_at = server_cpu(server_pid), time.monotonic()
    try:
        await post_paced(port, posted, posters)
        cpu_used = server_cpu(server_pid) - cpu_at[0]
        latency.server_cpu = cpu_used / (time.monotonic() - cpu_at[1])
        # Until every subscriber has the last acknowledged intents' events, SETTLE_SECONDS at most.
        last = [intent.key for intent in posted if intent.status == 201][-50:]
        for _ in range(round(SETTLE_SECONDS / 0.05)):
            if all(key in stream.arrivals for stream in streams for key in last):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
    finally:
        for stream in streams:
            await stream.close()
    tally(latency, posted[round(warmup * rate) :], streams, workers)


class Placed(Protocol):
    worker: int | None


P = TypeVar("P", bound=Placed)


async def spread(count: int, workers: list[int], connect: Callable[[], Awaitable[P]]) -> tuple[list[P], list[P]]:
    """`count` connections, and extras to close: with workers, evenly spread, a
    connection landing on a worker that has its share already being an extra (and
    another one tried, a few times at most)."""
    kept: list[P] = []
    extra: list[P] = []
    share = math.ceil(count / max(len(workers), 1))
    for _ in range(count * 8):
        connection = await connect()
        if sum(other.worker == connection.worker for other in kept) < share:
            kept.append(connection)
            if len(kept) == count:
                break
        else:
            extra.append(connection)
    return kept, extra


def tally(latency: Latency, measured: list[Posted], streams: list[TimingSubscriber], workers: list[int]) -> None:
    """The figures of the intents past the warm-up, each delivery to each subscriber."""
    latency.intents = len(measured)
    latency.refused = sum(intent.status != 201 for intent in measured)
    span = max(intent.acked or 0 for intent in measured) - measured[0].due
    latency.rate = len(measured) / span if span > 0 else 0.0
    answers = [1000 * ((intent.acked or intent.sent) - intent.sent) for intent in measured]
    latency.post_p50_ms, latency.post_p99_ms = percentile(answers, 50), percentile(answers, 99)
    latency.late_posts = sum(intent.sent - intent.due > 0.005 for intent in measured)
    for stream in streams:
        latency.overflow += stream.overflow
        latency.gaps += stream.gaps
        for intent in measured:
            if intent.status != 201 or intent.acked is None:
                continue
            arrived = stream.arrivals.get(intent.key)
            if arrived is None:
                latency.missing += 1
                continue
            delay = 1000 * (arrived - intent.acked)
            latency.delays_ms.append(delay)
            if workers:
                (latency.same_worker_ms if intent.worker == stream.worker else latency.cross_worker_ms).append(delay)


def run_latency(
    latency: Latency, env: dict[str, str], uvicorn_args: list[str], args: argparse.Namespace, *, log: Path, label: str
) -> Latency:
    port = free_port()
    proc = start_server(APP, port, log, env, *uvicorn_args)
    try:
        asyncio.run(
            measure_latency(
                port,
                proc.pid,
                latency,
                rate=args.rate,
                seconds=args.latency_seconds,
                warmup=args.warmup,
                subscribers=args.latency_subscribers,
                label=label,
            )
        )
    finally:
        stop_server(proc)
    print_latency(latency)
    return latency


def print_latency(latency: Latency) -> None:
    def spread(values: list[float]) -> str:
        if not values:
            return "none"
        return f"p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms ({len(values):,})"

    print(
        f"latency {latency.name}: {latency.intents:,} intents at {latency.rate:.0f}/s "
        f"(201 in p50 {latency.post_p50_ms:.1f} ms, p99 {latency.post_p99_ms:.1f} ms; "
        f"{latency.late_posts} sent over 5 ms late); "
        f"{latency.placement}; server CPU {100 * latency.server_cpu:.0f}% of a core",
        flush=True,
    )
    print(
        f"        201 -> `new` event: p50 {latency.p50:.1f} ms, p99 {latency.p99:.1f} ms, "
        f"max {max(latency.delays_ms, default=math.inf):.1f} ms over {len(latency.delays_ms):,} deliveries"
        + (
            f"; same worker {spread(latency.same_worker_ms)}, other worker {spread(latency.cross_worker_ms)}"
            if latency.same_worker_ms or latency.cross_worker_ms
            else ""
        )
        + "".join(f"; {problem}" for problem in latency.problems()),
        flush=True,
    )


# --- The bench -----------------------------------------------------------------------


def judge(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10, help="each throughput run")
    parser.add_argument("--warmup", type=int, default=2, help="before each run, not measured")
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=500.0, help="intents a second in the latency runs")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--latency-subscribers", type=int, default=4)
    commands = parser.add_subparsers(dest="command")
    helper = commands.add_parser("subscribers", help="(the bench's helper) connect counting stream subscribers")
    helper.add_argument("--port", type=int, required=True)
    helper.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    if args.command == "subscribers":
        report = asyncio.run(run_subscribers(args.port, args.count))
        print("SUBSCRIBERS " + json.dumps(report), flush=True)
        return

    wrk = require_wrk()
    load_at_start = os.getloadavg()[0]
    print(
        f"bench: using {wrk}; {args.rounds} rounds of {args.seconds} s, 0 and {args.subscribers} stream subscribers "
        f"alternating; then delivery latency at {args.rate:g} intents/s for {args.latency_seconds:g} s "
        f"(memory, 1 worker; PostgreSQL, 2 workers)"
    )
    names = ("0 subscribers", f"{args.subscribers} subscribers")
    width = max(len(name) for name in names)
    reports: list[SubscriberReport] = []
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as folder:
        tmp = Path(folder)

        def runner(count: int) -> Callable[[int], Result]:
            return lambda round_no: measure_throughput(
                wrk,
                count,
                seconds=args.seconds,
                warmup=args.warmup,
                log=tmp / f"subscribers-{count}.log",
                label=f"s{count}-{round_no}",
                reports=reports,
            )

        results = alternate(args.rounds, {names[0]: runner(0), names[1]: runner(args.subscribers)}, width)
        print_medians(results, width)
        ratios = per_round_ratios(results[names[1]], results[names[0]])
        # Server CPU per request, without over with subscribers: what the throughput ratio
        # would be with the server alone the bottleneck, much less moved by other load.
        cpu_ratios = [
            without.cpu_us / with_.cpu_us
            for without, with_ in zip(results[names[0]], results[names[1]], strict=True)
            if without.cpu_us and with_.cpu_us
        ]
        print(f"per-round {names[1]} / {names[0]}: {', '.join(f'{ratio:.2f}' for ratio in ratios)}")
        print(f"per-round server CPU per request, 0 / {args.subscribers}: {', '.join(f'{r:.2f}' for r in cpu_ratios)}")
        print()

        memory = run_latency(
            Latency("memory, 1 worker", MEMORY_P99_TARGET_MS),
            MEMORY,
            [],
            args,
            log=tmp / "latency-memory.log",
            label="lm",
        )
        postgres: Latency | None = None
        try:
            with postgres_cluster(durable=True) as url:
                postgres = run_latency(
                    Latency("postgresql, 2 workers", POSTGRES_P99_TARGET_MS),
                    {"STORAGE_URL": url},
                    ["--workers", "2"],
                    args,
                    log=tmp / "latency-postgres.log",
                    label="lp",
                )
        except PostgresMissing as missing:
            print(f"latency postgresql: skipped: {missing}")

    print_summary(args, ratios, cpu_ratios, reports, [memory, postgres])
    print(
        f"machine: {os.cpu_count()} CPUs; load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} "
        "at the end (above 1 or so, other processes compete with the bench: throughput and latency suffer)"
    )


def print_summary(
    args: argparse.Namespace,
    ratios: list[float],
    cpu_ratios: list[float],
    reports: list[SubscriberReport],
    latencies: list[Latency | None],
) -> None:
    ratio = statistics.median(ratios)
    problems = sorted({problem for report in reports for problem in report.problems()})
    print()
    print("summary")
    print(
        f"  throughput {args.subscribers} subscribers / 0: {ratio:.2f} (median of per-round ratios)"
        f"  target ≥{RATIO_TARGET:g}  {judge(ratio >= RATIO_TARGET)}"
    )
    if cpu_ratios:
        print(
            f"    (server CPU per request, 0 / {args.subscribers} subscribers: {statistics.median(cpu_ratios):.2f}, "
            "median of per-round ratios; the throughput ratio if the server alone were the bottleneck)"
        )
    print(
        f"  events read by the {args.subscribers} subscribers: {sum(r.events_total for r in reports):,} "
        f"over {len(reports)} runs, "
        + ("every one to every subscriber, no overflow" if not problems else "; ".join(problems))
        + f"  {judge(not problems)}"
    )
    for latency in latencies:
        if latency is None:
            print(
                "  latency postgresql, 2 workers: not measured (no PostgreSQL)"
                f"  target p99 ≤{POSTGRES_P99_TARGET_MS:g} ms  FAIL"
            )
            continue
        ok = latency.p99 <= latency.target_ms and not latency.problems()
        print(
            f"  latency {latency.name}: p50 {latency.p50:.1f} ms, p99 {latency.p99:.1f} ms"
            + "".join(f", {problem}" for problem in latency.problems())
            + f"  target p99 ≤{latency.target_ms:g} ms  {judge(ok)}"
        )


if __name__ == "__main__":
    main()
