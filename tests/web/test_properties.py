"""Property-based: no JSON body, however odd, makes the intent endpoint answer 5xx."""

import json
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.main import create_app
from app.store.memory import InMemoryStore
from tests.conftest import URL, make_settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)
# Bodies close to valid ones reach the deeper checks: each field valid, odd, or absent.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "idempotency_key": st.text(max_size=300) | json_values,
    "exchange": st.sampled_from(["binance", "coinbase", "kraken", ""]) | st.text(max_size=70) | json_values,
    "symbol": st.sampled_from(["BTC/USDT", "ETH/USDT", "DOGE/USDT"]) | st.text(max_size=70) | json_values,
    "side": st.sampled_from(["BUY", "SELL", "buy"]) | json_values,
    "qty": st.floats(allow_nan=True, allow_infinity=True) | st.integers() | json_values,
    "type": st.sampled_from(["MARKET", "LIMIT", "STOP"]) | json_values,
    "limit_price": st.none() | st.floats() | st.integers() | json_values,
    "client_ts_utc": st.none() | st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=40) | json_values,
}
near_intents = st.fixed_dictionaries({}, optional=FIELDS)


def client() -> TestClient:
    return TestClient(create_app(make_settings(log_level="ERROR"), InMemoryStore()))


def check(test_client: TestClient, body: bytes) -> None:
    response = test_client.post(URL, content=body, headers={"content-type": "application/json"})
    assert response.status_code in (201, 400, 409), response.text
    payload = response.json()
    if response.status_code != 201:
        assert isinstance(payload["detail"], str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values)
def test_arbitrary_json_never_gives_5xx(body: Any) -> None:
    check(client(), json.dumps(body).encode())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=near_intents)
def test_near_valid_intents_never_give_5xx(body: dict[str, Any]) -> None:
    check(client(), json.dumps(body).encode())


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_never_give_5xx(body: bytes) -> None:
    check(client(), body)


@settings(max_examples=100, deadline=None)
@given(body=near_intents)
def test_a_201_is_always_a_valid_order_and_a_400_stores_nothing(body: dict[str, Any]) -> None:
    store = InMemoryStore()
    test_client = TestClient(create_app(make_settings(log_level="ERROR"), store))
    response = test_client.post(URL, content=json.dumps(body).encode())
    if response.status_code == 201:
        created = response.json()
        assert created["qty"] == body["qty"] > 0
        assert store.count() == 1
    else:
        assert store.count() == 0


query_values = st.text(max_size=30) | st.integers().map(str) | st.sampled_from(["NEW", "BUY", "binance", "0", "1000"])


@settings(max_examples=200, deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from(["status", "exchange", "symbol", "side", "idempotency_key", "limit", "cursor", "other"]),
        query_values,
        max_size=4,
    )
)
def test_arbitrary_listing_queries_never_give_5xx(params: dict[str, str]) -> None:
    response = client().get("/execution/orders", params=params)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert isinstance(response.json()["detail"], str)


@settings(max_examples=100, deadline=None)
@given(order_id=st.text(max_size=60))
def test_arbitrary_order_ids_never_give_5xx(order_id: str) -> None:
    response = client().get(f"/execution/orders/{quote(order_id, safe='')}")
    assert response.status_code in (200, 404, 405), response.text
