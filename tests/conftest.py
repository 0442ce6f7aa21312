"""Each test gets its own settings, store and app: nothing is shared between tests."""

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.ids import new_number
from app.main import create_app
from app.storage import InMemoryStore, Order, OrderKind

URL = "/execution/order-intents"
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


def intent(**overrides: Any) -> dict[str, Any]:
    """A valid MARKET intent; override any field (None values are sent as null)."""
    body: dict[str, Any] = {
        "idempotency_key": "key-1",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "qty": 0.01,
        "type": "MARKET",
        "limit_price": None,
        "client_ts_utc": None,
    }
    body.update(overrides)
    return body


def market_order(idempotency_key: str, number: int | None = None) -> Order:
    """A stored-order object for tests of the store itself (no HTTP, no service)."""
    return Order(
        number=new_number() if number is None else number,
        idempotency_key=idempotency_key,
        kind=OrderKind("binance", "BTC/USDT", "BUY", "MARKET"),
        qty=1.0,
        limit_price=None,
        client_ts=None,
        accepted_at=0,
    )


@pytest.fixture(autouse=True)
def service_log_records(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The service's logger does not propagate to the root, where caplog listens."""
    logger = logging.getLogger("execution")
    logger.addHandler(caplog.handler)
    yield
    logger.removeHandler(caplog.handler)


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def make_client(store: InMemoryStore) -> Iterator[Callable[..., TestClient]]:
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
