"""Each test gets its own settings, store and app: nothing is shared between tests."""

import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.core.engine import Policy
from app.core.order import Order, OrderKind, OrderTerms
from app.core.vocabulary import OrderType, Side
from app.main import create_app
from app.service.settings import Settings
from app.store.base import OrderStore
from app.store.ids import new_number
from app.store.memory import InMemoryStore
from app.store.sql import SqlStore
from tests.payloads import URL, intent
from tests.postgres import PostgresMissing, postgres_cluster

__all__ = ["URL", "intent"]  # re-exported: the tests import them from here

EXAMPLE_ALLOWLISTS = {"allowed_symbols": "BTC/USDT,ETH/USDT,SOL/USDT", "allowed_exchanges": "binance,coinbase"}


def make_settings(**overrides: Any) -> Settings:
    """Settings with every field given, so the test runner's environment cannot leak in."""
    values: dict[str, Any] = {
        **EXAMPLE_ALLOWLISTS,
        "service_name": "execution",
        "service_version": "0.1.0",
        "log_level": "INFO",
        **overrides,
    }
    return Settings(**values)


def race_one_key(client: TestClient, racers: int) -> list[tuple[int, str]]:
    """`racers` threads post intents with one key at once (different quantities);
    each answer's status and order id."""
    barrier = threading.Barrier(racers)

    def post(n: int) -> tuple[int, str]:
        barrier.wait()
        response = client.post(URL, json=intent(idempotency_key="same", qty=n + 1))
        return response.status_code, response.json()["order_id"]

    with ThreadPoolExecutor(max_workers=racers) as pool:
        return list(pool.map(post, range(racers)))


def race_keys(client: TestClient, keys: list[str]) -> list[int]:
    """One thread per key posts its intent at once; each answer's status."""
    barrier = threading.Barrier(len(keys))

    def post(key: str) -> int:
        barrier.wait()
        return client.post(URL, json=intent(idempotency_key=key)).status_code

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return list(pool.map(post, keys))


def market_order(idempotency_key: str, number: int | None = None, qty: float = 1.0) -> Order:
    """A stored-order object for tests of the store itself (no HTTP, no service)."""
    return Order(
        number=new_number() if number is None else number,
        idempotency_key=idempotency_key,
        kind=OrderKind("binance", "BTC/USDT", Side.BUY, OrderType.MARKET),
        terms=OrderTerms.of(qty, None, 0, None),
    )


# What store-level tests admit under: no costs, no rules.
PLAIN = Policy()


@pytest.fixture(autouse=True)
def service_log_records(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The service's logger does not propagate to the root, where caplog listens."""
    logger = logging.getLogger("execution")
    logger.addHandler(caplog.handler)
    yield
    logger.removeHandler(caplog.handler)


STORES = ["memory", "sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the session. Without PostgreSQL on the
    machine its tests skip, except in CI (CI=true), where they must run."""
    try:
        with postgres_cluster() as url:
            yield url
    except PostgresMissing as missing:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests must run in CI: {missing}")
        pytest.skip(f"PostgreSQL tests skipped: {missing}")


def empty_postgres_store(url: str) -> SqlStore:
    """A store on the session's cluster, its tables emptied of earlier tests' rows."""
    store = SqlStore(url)
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE events, fills, orders, quotes, queues, positions, balances, feed_leases, live_orders, "
                "exchange_fills, exchange_balances, live_status RESTART IDENTITY"
            )
        )
        conn.execute(text("UPDATE journal_head SET seq = 0"))
        conn.execute(text("UPDATE trading_state SET state = 'ACTIVE', reason = NULL"))
    return store


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A durable store's URL, with nothing in it yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}"
    url: str = request.getfixturevalue("postgres_url")
    empty_postgres_store(url).close()
    return url


def open_test_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> OrderStore:
    if kind == "memory":
        return InMemoryStore()
    if kind == "sqlite":
        return SqlStore(f"sqlite:///{tmp_path / 'orders.db'}")
    return empty_postgres_store(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OrderStore]:
    """Every API test runs against each store."""
    opened = open_test_store(request.param, tmp_path, request)
    yield opened
    opened.close()


@pytest.fixture
def make_client(store: OrderStore) -> Iterator[Callable[..., TestClient]]:
    """Build a client around a fresh app; keyword arguments override settings."""
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides), store))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
