"""The spec's POST /execution/order-intents contract, and the decisions this service made where it is silent."""

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.ops.clock import to_datetime
from app.store.base import OrderStore
from tests.conftest import URL, intent

CREATED_KEYS = {"order_id", "status", "accepted_ts_utc", "exchange", "symbol", "side", "qty", "filled_qty"}


def test_market_intent_is_created_with_exactly_the_spec_body(client: TestClient) -> None:
    before = datetime.now(UTC)
    response = client.post(URL, json=intent())
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == CREATED_KEYS
    assert body["status"] == "NEW"
    assert body["exchange"] == "binance"
    assert body["symbol"] == "BTC/USDT"
    assert body["side"] == "BUY"
    assert body["qty"] == 0.01
    assert body["filled_qty"] == 0.0
    assert re.fullmatch(r"paper-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", body["order_id"])
    assert str(uuid.UUID(body["order_id"].removeprefix("paper-"))) == body["order_id"].removeprefix("paper-")
    assert body["accepted_ts_utc"].endswith("Z")
    accepted = datetime.fromisoformat(body["accepted_ts_utc"])
    assert accepted.tzinfo is not None
    assert before - timedelta(seconds=1) <= accepted <= datetime.now(UTC) + timedelta(seconds=1)


def test_numbers_in_the_201_are_json_numbers(client: TestClient) -> None:
    response = client.post(URL, json=intent(qty=2))
    assert response.status_code == 201
    assert '"qty":2.0' in response.text
    assert '"filled_qty":0.0' in response.text


def test_limit_intent_with_a_price_is_created(client: TestClient, store: OrderStore) -> None:
    response = client.post(URL, json=intent(type="LIMIT", side="SELL", limit_price=42000.5, symbol="ETH/USDT"))
    assert response.status_code == 201
    body = response.json()
    assert (body["side"], body["symbol"]) == ("SELL", "ETH/USDT")
    stored = store.get(body["order_id"])
    assert stored is not None
    assert (stored.type, stored.limit_price) == ("LIMIT", 42000.5)


def test_limit_price_may_be_omitted_for_market(client: TestClient) -> None:
    body = intent()
    del body["limit_price"], body["client_ts_utc"]
    assert client.post(URL, json=body).status_code == 201


def test_client_timestamp_with_offset_is_stored_in_utc(client: TestClient, store: OrderStore) -> None:
    response = client.post(URL, json=intent(client_ts_utc="2024-01-15T12:30:00+02:00"))
    assert response.status_code == 201
    stored = store.get(response.json()["order_id"])
    assert stored is not None
    assert to_datetime(stored.client_ts) == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_naive_client_timestamp_is_taken_as_utc(client: TestClient, store: OrderStore) -> None:
    response = client.post(URL, json=intent(client_ts_utc="2024-01-15T10:30:00"))
    assert response.status_code == 201
    stored = store.get(response.json()["order_id"])
    assert stored is not None
    assert to_datetime(stored.client_ts) == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)


def test_unique_keys_get_distinct_orders(client: TestClient, store: OrderStore) -> None:
    ids = {client.post(URL, json=intent(idempotency_key=f"k-{n}")).json()["order_id"] for n in range(20)}
    assert len(ids) == 20
    assert store.count() == 20


def test_duplicate_key_is_409_naming_the_existing_order(client: TestClient, store: OrderStore) -> None:
    first = client.post(URL, json=intent(idempotency_key="dup")).json()
    response = client.post(URL, json=intent(idempotency_key="dup"))
    assert response.status_code == 409
    body = response.json()
    assert set(body) == {"detail", "code", "order_id", "payload_matches"}
    assert body["code"] == "DUPLICATE_IDEMPOTENCY_KEY"
    assert body["detail"] == (
        f"Duplicate idempotency_key 'dup': already used by order {first['order_id']}, with the same payload"
    )
    assert (body["order_id"], body["payload_matches"]) == (first["order_id"], True)
    assert store.count() == 1


def test_reused_key_with_a_different_payload_is_409_and_changes_nothing(client: TestClient, store: OrderStore) -> None:
    first = client.post(URL, json=intent(idempotency_key="dup", qty=1.5)).json()
    response = client.post(URL, json=intent(idempotency_key="dup", qty=3, side="SELL", symbol="ETH/USDT"))
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Duplicate idempotency_key 'dup': already used by order {first['order_id']}, "
        "with a different payload (symbol, side, qty differ)",
        "code": "DUPLICATE_IDEMPOTENCY_KEY",
        "order_id": first["order_id"],
        "payload_matches": False,
    }
    stored = store.get_by_key("dup")
    assert stored is not None
    assert (stored.order_id, stored.qty, stored.side, stored.symbol) == (first["order_id"], 1.5, "BUY", "BTC/USDT")
    assert store.count() == 1


@pytest.mark.parametrize(
    ("retry", "matches"),
    [
        ({}, True),
        ({"client_ts_utc": "2024-01-15T10:30:00Z"}, True),  # when, not what: a retry may stamp anew
        ({"qty": 1.5}, True),  # 1.5 as written: the same number
        ({"qty": 1.50000001}, False),
        ({"limit_price": 100.25}, False),
        ({"type": "MARKET", "limit_price": None}, False),
        ({"time_in_force": "IOC"}, False),
        ({"exchange": "coinbase"}, False),
    ],
)
def test_a_409_says_whether_the_payload_matched_the_stored_order(
    client: TestClient, retry: dict[str, Any], matches: bool
) -> None:
    original = intent(idempotency_key="k", type="LIMIT", qty=1.5, limit_price=100.0, time_in_force="GTC")
    assert client.post(URL, json=original).status_code == 201
    response = client.post(URL, json=original | retry)
    assert response.status_code == 409
    assert response.json()["payload_matches"] is matches
    assert ("with the same payload" in response.json()["detail"]) is matches


def test_allowlist_is_checked_before_the_duplicate_key(client: TestClient) -> None:
    assert client.post(URL, json=intent(idempotency_key="k")).status_code == 201
    response = client.post(URL, json=intent(idempotency_key="k", symbol="DOGE/USDT"))
    assert response.status_code == 400
    assert response.json()["detail"] == "Symbol 'DOGE/USDT' not allowed"


def test_shape_is_checked_before_the_duplicate_key(client: TestClient) -> None:
    assert client.post(URL, json=intent(idempotency_key="k")).status_code == 201
    assert client.post(URL, json=intent(idempotency_key="k", qty=-1)).status_code == 400


def test_unknown_symbol_is_400(client: TestClient, store: OrderStore) -> None:
    response = client.post(URL, json=intent(symbol="DOGE/USDT"))
    assert response.status_code == 400
    assert response.json() == {"detail": "Symbol 'DOGE/USDT' not allowed", "code": "SYMBOL_NOT_ALLOWED"}
    assert store.count() == 0


def test_unknown_exchange_is_400(client: TestClient, store: OrderStore) -> None:
    response = client.post(URL, json=intent(exchange="kraken"))
    assert response.status_code == 400
    assert response.json() == {"detail": "Exchange 'kraken' not allowed", "code": "EXCHANGE_NOT_ALLOWED"}
    assert store.count() == 0


def test_allowlist_matching_is_exact_and_case_sensitive(client: TestClient) -> None:
    assert client.post(URL, json=intent(symbol="btc/usdt")).status_code == 400
    assert client.post(URL, json=intent(exchange="Binance")).status_code == 400
    assert client.post(URL, json=intent(symbol="BTC/USDT ")).status_code == 400


def test_allowlist_entries_are_stripped_and_empty_ones_dropped(make_client: Callable[..., TestClient]) -> None:
    client = make_client(allowed_symbols=" BTC/USDT , ,ETH/USDT,", allowed_exchanges=" binance ,")
    assert client.post(URL, json=intent(symbol="BTC/USDT")).status_code == 201
    assert client.post(URL, json=intent(idempotency_key="k2", symbol="ETH/USDT")).status_code == 201
    assert client.post(URL, json=intent(idempotency_key="k3", symbol=" BTC/USDT ")).status_code == 400
    # No empty entry survived: the service is not degraded by a stray comma.
    assert client.get("/capabilities").json()["status"] == "ok"


def test_empty_symbol_allowlist_rejects_everything_and_says_so(make_client: Callable[..., TestClient]) -> None:
    client = make_client(allowed_symbols="")
    response = client.post(URL, json=intent())
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Symbol 'BTC/USDT' not allowed; ALLOWED_SYMBOLS is empty: every order intent is rejected"
    )


def test_empty_exchange_allowlist_rejects_everything_and_says_so(make_client: Callable[..., TestClient]) -> None:
    client = make_client(allowed_exchanges=" , ")
    response = client.post(URL, json=intent())
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Exchange 'binance' not allowed; ALLOWED_EXCHANGES is empty: every order intent is rejected"
    )


def test_an_empty_list_is_named_whichever_check_refuses(make_client: Callable[..., TestClient]) -> None:
    client = make_client(allowed_symbols="")
    detail = client.post(URL, json=intent(exchange="kraken")).json()["detail"]
    assert detail == "Exchange 'kraken' not allowed; ALLOWED_SYMBOLS is empty: every order intent is rejected"
    client = make_client(allowed_symbols="", allowed_exchanges="")
    detail = client.post(URL, json=intent()).json()["detail"]
    assert detail == (
        "Exchange 'binance' not allowed; "
        "ALLOWED_EXCHANGES and ALLOWED_SYMBOLS are empty: every order intent is rejected"
    )


def test_a_rejected_intent_does_not_take_its_key(client: TestClient) -> None:
    assert client.post(URL, json=intent(idempotency_key="k", symbol="DOGE/USDT")).status_code == 400
    assert client.post(URL, json=intent(idempotency_key="k", qty=0)).status_code == 400
    assert client.post(URL, json=intent(idempotency_key="k")).status_code == 201


def test_longest_allowed_values_are_accepted(make_client: Callable[..., TestClient]) -> None:
    name = "x" * 64
    client = make_client(allowed_symbols=name, allowed_exchanges=name)
    response = client.post(URL, json=intent(idempotency_key="k" * 255, exchange=name, symbol=name, qty=1e15))
    assert response.status_code == 201
    assert response.json()["qty"] == 1e15


def test_content_type_is_not_needed_for_a_json_body(client: TestClient) -> None:
    response = client.post(
        URL,
        content=b'{"idempotency_key":"k","exchange":"binance","symbol":"BTC/USDT",'
        b'"side":"BUY","qty":1,"type":"MARKET"}',
    )
    assert response.status_code == 201
