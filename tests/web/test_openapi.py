"""The OpenAPI document tells the truth: the body, 201/400/409, and no 422; and it is
exact enough for a generated client: named operations and bodies, every reference
resolving (tests/server/test_generated_client.py drives such a client)."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.store.memory import InMemoryStore
from tests.conftest import intent, make_settings

COMPONENTS = "#/components/schemas/"


def document_of(**overrides: Any) -> dict[str, Any]:
    """The document of an app with these settings (the store makes no difference to it)."""
    document: dict[str, Any] = create_app(make_settings(**overrides), InMemoryStore()).openapi()
    return document


def resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    assert ref.startswith(COMPONENTS), ref
    found: dict[str, Any] = document["components"]["schemas"][ref.removeprefix(COMPONENTS)]
    return found


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [ref for key, value in node.items() for ref in ([value] if key == "$ref" else refs_in(value))]
    if isinstance(node, list):
        return [ref for item in node for ref in refs_in(item)]
    return []


def test_no_422_anywhere(client: TestClient) -> None:
    assert '"422"' not in client.get("/openapi.json").text


def test_order_intent_operation_is_documented(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/execution/order-intents"]["post"]
    schema = resolved(document, operation["requestBody"]["content"]["application/json"]["schema"])
    assert operation["requestBody"]["required"] is True
    assert set(schema["required"]) == {"idempotency_key", "exchange", "symbol", "side", "qty", "type"}
    assert schema["additionalProperties"] is False
    assert set(operation["responses"]) == {"201", "400", "409", "413", "503"}


def test_docs_page_is_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200


def test_the_400_schema_fits_allowlist_refusals_too(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/execution/order-intents"]["post"]
    ref = operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert schema["required"] == ["detail", "code"]
    assert "errors" in schema["properties"]


def test_reading_operations_are_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/execution/orders/{order_id}"]["get"]["responses"]) == {"200", "404", "503"}
    listing = paths["/execution/orders"]["get"]
    assert set(listing["responses"]) == {"200", "400", "503"}
    assert {p["name"] for p in listing["parameters"]} == {
        "status", "exchange", "symbol", "side", "idempotency_key", "limit", "cursor",
    }  # fmt: skip


def test_the_409_documents_whether_the_payload_matched(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/execution/order-intents"]["post"]
    ref = operation["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"detail", "order_id", "payload_matches"} <= set(schema["required"])
    assert schema["properties"]["payload_matches"]["type"] == "boolean"
    assert "retry" in schema["properties"]["payload_matches"]["description"]


# What a generated client names each call (openapi-python-client: `orders.submit_order_intent`).
OPERATIONS = {
    ("get", "/healthz"): "get_health",
    ("get", "/capabilities"): "get_capabilities",
    ("get", "/metrics"): "get_metrics",
    ("post", "/execution/order-intents"): "submit_order_intent",
    ("get", "/execution/orders/{order_id}"): "get_order",
    ("get", "/execution/orders"): "list_orders",
    ("get", "/execution/orders/{order_id}/fills"): "list_order_fills",
    ("post", "/execution/orders/{order_id}/cancel"): "cancel_order",
    ("post", "/execution/market-data/quotes"): "post_quote",
    ("post", "/execution/market-data/books"): "post_book",
    ("post", "/execution/market-data/trades"): "post_trade",
    ("get", "/execution/trading-state"): "get_trading_state",
    ("put", "/execution/trading-state"): "set_trading_state",
    ("get", "/execution/balances"): "list_balances",
    ("get", "/execution/positions"): "list_positions",
    ("get", "/execution/events"): "list_events",
    ("get", "/execution/events/stream"): "stream_events",
    ("get", "/execution/fills"): "list_fills",
}


def test_every_operation_has_a_name_a_description_and_a_tag() -> None:
    document = document_of()
    operations = [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert {(method, path): op["operationId"] for method, path, op in operations} == OPERATIONS
    for method, path, operation in operations:
        assert len(operation["description"]) > 40, (method, path)
        assert len(operation["tags"]) == 1, (method, path)


def test_every_reference_resolves_and_each_body_is_a_named_schema() -> None:
    document = document_of(execution_api_token="openapi-token-0123456789")
    schemas = document["components"]["schemas"]
    assert {ref.removeprefix(COMPONENTS) for ref in refs_in(document)} <= set(schemas)
    bodies = {
        path: operation["requestBody"]["content"]["application/json"]["schema"]
        for path, operations in document["paths"].items()
        for operation in operations.values()
        if "requestBody" in operation
    }
    assert bodies == {
        "/execution/order-intents": {"$ref": COMPONENTS + "OrderIntent"},
        "/execution/market-data/quotes": {"$ref": COMPONENTS + "QuoteIn"},
        "/execution/market-data/books": {"$ref": COMPONENTS + "BookIn"},
        "/execution/market-data/trades": {"$ref": COMPONENTS + "TradeIn"},
        "/execution/trading-state": {"$ref": COMPONENTS + "TradingStateIn"},
    }
    # The 401 each guarded operation lists is the one ErrorBody, not a copy per operation.
    unauthorized = document["paths"]["/execution/orders"]["get"]["responses"]["401"]
    assert unauthorized["content"]["application/json"]["schema"] == {"$ref": COMPONENTS + "ErrorBody"}


def test_the_intent_states_the_price_rule_where_generators_leave_it_alone() -> None:
    """A oneOf beside the properties made client generators build the body from the
    oneOf's branches alone (`type` and `limit_price`); if/then/else they leave to
    validators (schemathesis reads it: tests/web/test_schema_fuzz.py)."""
    intent = document_of()["components"]["schemas"]["OrderIntent"]
    assert not {"oneOf", "anyOf", "allOf"} & set(intent)
    assert intent["if"] == {"properties": {"type": {"const": "LIMIT"}}}
    assert intent["then"]["required"] == ["limit_price"]
    assert intent["else"] == {"properties": {"limit_price": {"type": "null"}}}
    assert set(intent["properties"]) == {
        "idempotency_key", "exchange", "symbol", "side", "qty", "type", "limit_price", "client_ts_utc", "time_in_force",
    }  # fmt: skip
    assert intent["properties"]["exchange"]["enum"] == ["binance", "coinbase"]


def test_the_quote_states_that_bid_is_at_most_ask() -> None:
    quote = document_of()["components"]["schemas"]["QuoteIn"]
    assert "`bid` must not be above `ask`" in quote["description"]
    assert "at most `ask`" in quote["properties"]["bid"]["description"]
    assert "at least `bid`" in quote["properties"]["ask"]["description"]


@pytest.mark.parametrize("limit", [None, 5.0])
def test_429_is_listed_where_it_can_be_answered(limit: float | None) -> None:
    document = document_of(max_intents_per_second=limit)
    listing = {
        operation["operationId"] for operations in document["paths"].values() for operation in operations.values()
        if "429" in operation["responses"]
    }  # fmt: skip
    assert listing == (set() if limit is None else {"submit_order_intent"})
    if limit is not None:
        answer = document["paths"]["/execution/order-intents"]["post"]["responses"]["429"]
        assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
        assert resolved(document, answer["content"]["application/json"]["schema"])["title"] == "ErrorBody"
        # (tests/web/test_instrument_rules.py checks the 429 itself and its Retry-After.)


def test_a_cancel_conflict_names_the_status_as_documented(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    conflict = document["paths"]["/execution/orders/{order_id}/cancel"]["post"]["responses"]["409"]
    schema = resolved(document, conflict["content"]["application/json"]["schema"])
    assert schema["required"] == ["detail", "code", "status"]
    order_id = client.post("/execution/order-intents", json=intent(type="LIMIT", limit_price=1.0)).json()["order_id"]
    assert client.post(f"/execution/orders/{order_id}/cancel").status_code == 200
    answer = client.post(f"/execution/orders/{order_id}/cancel")
    assert (answer.status_code, answer.json()["status"]) == (409, "CANCELED")
