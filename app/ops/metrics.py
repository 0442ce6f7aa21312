"""Prometheus metrics: what the service counts as it serves, and the /metrics page.

Counters and the latency histogram live in a registry per app. With several worker
processes, set PROMETHEUS_MULTIPROC_DIR (an empty directory, before the server
starts): prometheus-client then keeps each process's values in files there, and
/metrics adds up every worker's. Orders by status and store size are read from the
store when scraped, so with a shared store any worker gives the whole picture.
"""

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from app.core.vocabulary import OrderStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUSES: tuple[str, ...] = tuple(OrderStatus)
# Seconds; this service answers in milliseconds, so the small buckets are the useful ones.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class StoreSnapshot(Collector):
    """Gauges read from the store at scrape time."""

    def __init__(self, store_name: str, by_status: Mapping[str, int]) -> None:
        self.store_name = store_name
        self.by_status = by_status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        orders = GaugeMetricFamily("execution_orders", "Orders in the store by status", labels=["status"])
        for status in STATUSES:
            orders.add_metric([status], self.by_status.get(status, 0))
        yield orders
        yield GaugeMetricFamily("execution_store_orders", "Orders the store holds", value=sum(self.by_status.values()))
        info = GaugeMetricFamily("execution_store_info", "The active store (value 1)", labels=["store"])
        info.add_metric([self.store_name], 1)
        yield info


@dataclass(frozen=True)
class FeedSample:
    """One instrument's market data feed, as a scrape sees it."""

    exchange: str
    symbol: str
    age_seconds: float | None  # since its latest data was taken; None: none yet
    books: int
    trades: int
    refused: int
    reconnects: int


class FeedSnapshot(Collector):
    """The feeds this process runs, read at scrape time (each process its own)."""

    def __init__(self, samples: Callable[[], Iterable[FeedSample]]) -> None:
        self.samples = samples

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        labels = ["exchange", "symbol"]
        age = GaugeMetricFamily(
            "execution_market_data_age_seconds", "Seconds since the feed's latest data was taken", labels=labels
        )
        messages = CounterMetricFamily(
            "execution_market_data_messages",
            "Market data a feed received, by kind (book, trade, refused: taken by neither)",
            labels=[*labels, "kind"],
        )
        reconnects = CounterMetricFamily(
            "execution_market_data_reconnects",
            "Times a feed's book or trade stream failed and then received data again",
            labels=labels,
        )
        for sample in self.samples():
            instrument = [sample.exchange, sample.symbol]
            if sample.age_seconds is not None:
                age.add_metric(instrument, sample.age_seconds)
            for kind, count in (("book", sample.books), ("trade", sample.trades), ("refused", sample.refused)):
                messages.add_metric([*instrument, kind], count)
            reconnects.add_metric(instrument, sample.reconnects)
        yield from (age, messages, reconnects)


@dataclass(frozen=True)
class LiveSample:
    """One live exchange, as the process executing its orders last saw it."""

    exchange: str
    reachable: bool | None  # None: not asked yet
    unknown_open_orders: int


class LiveSnapshot(Collector):
    """The live exchanges, read at scrape time (what the process that sends each one's
    orders saw; the others have not looked)."""

    def __init__(self, samples: Callable[[], Iterable[LiveSample]]) -> None:
        self.samples = samples

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "execution_live_exchange_up",
            "Whether the live exchange answered the last look (1) or not (0)",
            labels=["exchange"],
        )
        unknown = GaugeMetricFamily(
            "execution_live_unknown_open_orders",
            "Open orders at the live exchange that this service does not know (left alone)",
            labels=["exchange"],
        )
        for sample in self.samples():
            if sample.reachable is not None:
                up.add_metric([sample.exchange], 1 if sample.reachable else 0)
                unknown.add_metric([sample.exchange], sample.unknown_open_orders)
        yield from (up, unknown)


class Metrics:
    """The service's counters and the request latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._intents = Counter(
            "execution_order_intents",
            "Order intents by outcome (created, rejected, duplicate); reason is a rejection's code",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self._fills = Counter("execution_fills", "Fills applied to orders", registry=self.registry)
        self._cancels = Counter("execution_cancels", "Orders canceled", registry=self.registry)
        self._latency = Histogram(
            "execution_http_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Children looked up once: a labels() call per request costs a lock and a hash.
        self._created = self._intents.labels("created", "")
        self._duplicate = self._intents.labels("duplicate", "")
        self._rejected: dict[str, Any] = {}
        self._latency_of: dict[tuple[str, str, int], Any] = {}
        self._feeds: FeedSnapshot | None = None
        self._live: LiveSnapshot | None = None

    def watch_feeds(self, samples: Callable[[], Iterable[FeedSample]]) -> None:
        """Show the market data feeds `samples` describes on every scrape."""
        self._feeds = FeedSnapshot(samples)

    def watch_live(self, samples: Callable[[], Iterable[LiveSample]]) -> None:
        """Show the live exchanges `samples` describes on every scrape."""
        self._live = LiveSnapshot(samples)

    def intent_created(self) -> None:
        self._created.inc()

    def intent_duplicate(self) -> None:
        self._duplicate.inc()

    def intent_rejected(self, code: str) -> None:
        child = self._rejected.get(code)
        if child is None:
            child = self._rejected[code] = self._intents.labels("rejected", code)
        child.inc()

    def filled(self, count: int) -> None:
        if count:
            self._fills.inc(count)

    def canceled(self) -> None:
        self._cancels.inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._latency_of.get(key)
        if child is None:
            child = self._latency_of[key] = self._latency.labels(route, method, str(status))
        child.observe(seconds)

    def render(self, store_name: str, by_status: Mapping[str, int]) -> bytes:
        """The exposition text: this process's metrics (every worker's, in multiprocess
        mode), then the store's."""
        registry = self.registry
        directory = multiprocess_dir()
        if directory is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        store = CollectorRegistry()
        store.register(StoreSnapshot(store_name, by_status))
        for snapshot in (self._feeds, self._live):
            if snapshot is not None:
                store.register(snapshot)
        return generate_latest(registry) + generate_latest(store)
