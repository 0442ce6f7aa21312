"""Feed leases: among processes sharing a store, exactly one runs each instrument's
market data feed, renews it while it runs, and another takes it once it lapses or is
given up. A memory store is one process's alone: its feeds are always its own."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.store.memory import InMemoryStore
from app.store.sql import SqlStore
from tests.conftest import open_test_store

BTC = ("binance", "BTC/USDT")
ETH = ("binance", "ETH/USDT")
TTL = 1_000


@pytest.fixture(params=["sqlite", "postgresql"])
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two store objects on one database, as two processes have."""
    ours = open_test_store(request.param, tmp_path, request)
    assert isinstance(ours, SqlStore)
    theirs = SqlStore(ours.engine.url.render_as_string(hide_password=False))
    yield ours, theirs
    ours.close()
    theirs.close()


def test_one_holder_per_instrument_until_its_lease_lapses(two_workers: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_workers
    assert a.claim_feeds("a", [BTC, ETH], now=0, ttl=TTL) == {BTC, ETH}
    assert b.claim_feeds("b", [BTC, ETH], now=500, ttl=TTL) == set()
    # Renewed before it lapses: still a's.
    assert a.claim_feeds("a", [BTC], now=900, ttl=TTL) == {BTC}
    assert b.claim_feeds("b", [BTC, ETH], now=1_500, ttl=TTL) == {ETH}  # ETH lapsed at 1,000; BTC runs to 1,900
    assert a.claim_feeds("a", [BTC, ETH], now=1_600, ttl=TTL) == {BTC}
    # a dies: nothing renews BTC, and b takes it once it lapses.
    assert b.claim_feeds("b", [BTC, ETH], now=2_600, ttl=TTL) == {BTC, ETH}


def test_a_lease_given_up_is_taken_at_once(two_workers: tuple[SqlStore, SqlStore]) -> None:
    a, b = two_workers
    assert a.claim_feeds("a", [BTC, ETH], now=0, ttl=TTL) == {BTC, ETH}
    a.release_feeds("a", [BTC])
    b.release_feeds("b", [ETH])  # not b's to give up: changes nothing
    assert b.claim_feeds("b", [BTC, ETH], now=1, ttl=TTL) == {BTC}


def test_a_memory_store_s_feeds_are_its_process_s() -> None:
    store = InMemoryStore()
    assert store.claim_feeds("a", [BTC, ETH], now=0, ttl=TTL) == {BTC, ETH}
    assert store.claim_feeds("b", [BTC], now=0, ttl=TTL) == {BTC}
