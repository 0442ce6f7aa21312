"""GET /healthz and GET /capabilities, in ok and degraded states."""

from collections.abc import Callable
from datetime import datetime

from fastapi.testclient import TestClient

from app.store.base import OrderStore


def test_healthz(client: TestClient, store: OrderStore) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "timestamp", "store"}
    assert body["status"] == "ok"
    assert body["store"] == store.name
    assert body["timestamp"].endswith("Z")
    datetime.fromisoformat(body["timestamp"])


def test_healthz_answers_head(client: TestClient) -> None:
    response = client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""


def test_capabilities_ok(client: TestClient, store: OrderStore) -> None:
    response = client.get("/capabilities")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "service", "version", "status", "features", "degraded_reason", "generated_at", "store", "stale_market_data",
        "market_data_feeds", "exchanges", "live_exchanges",
    }  # fmt: skip
    assert body["store"] == store.name
    assert body["service"] == "execution"
    assert body["version"] == "0.1.0"
    assert body["status"] == "ok"
    durable = ["durable_store"] if store.name != "memory" else []
    assert body["features"] == [
        "paper_execution", "order_tracking", "cancel", "market_data_quotes", "market_data_books",
        "market_data_trades", "market_data_ordering", "fill_simulation", "positions", "time_in_force",
        "trading_state", *durable,
    ]  # fmt: skip
    assert body["degraded_reason"] is None
    assert body["generated_at"].endswith("Z")
    assert body["stale_market_data"] == []  # without MAX_QUOTE_AGE_MS nothing is stale
    assert body["market_data_feeds"] == []  # without MARKET_DATA_FEEDS
    assert body["exchanges"] == {"binance": "paper", "coinbase": "paper"}  # without LIVE_EXCHANGES
    assert body["live_exchanges"] == []


def test_capabilities_degraded_without_symbols(make_client: Callable[..., TestClient]) -> None:
    body = make_client(allowed_symbols="").get("/capabilities").json()
    assert body["status"] == "degraded"
    assert body["degraded_reason"] == "ALLOWED_SYMBOLS is empty: every order intent is rejected"
    assert "paper_execution" in body["features"]


def test_capabilities_degraded_without_exchanges(make_client: Callable[..., TestClient]) -> None:
    body = make_client(allowed_exchanges=",").get("/capabilities").json()
    assert body["status"] == "degraded"
    assert body["degraded_reason"] == "ALLOWED_EXCHANGES is empty: every order intent is rejected"


def test_capabilities_degraded_without_either(make_client: Callable[..., TestClient]) -> None:
    body = make_client(allowed_exchanges="", allowed_symbols="").get("/capabilities").json()
    assert body["status"] == "degraded"
    assert body["degraded_reason"] == "ALLOWED_EXCHANGES and ALLOWED_SYMBOLS are empty: every order intent is rejected"


def test_service_name_and_version_overrides(make_client: Callable[..., TestClient]) -> None:
    body = make_client(service_name="paper-exec-eu", service_version="2.3.4").get("/capabilities").json()
    assert (body["service"], body["version"]) == ("paper-exec-eu", "2.3.4")


def test_version_is_in_the_openapi_document(make_client: Callable[..., TestClient]) -> None:
    assert make_client(service_version="2.3.4").get("/openapi.json").json()["info"]["version"] == "2.3.4"
