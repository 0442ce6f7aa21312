"""The OpenAPI document tells the truth: the body, 201/400/409, and no 422."""

from fastapi.testclient import TestClient


def test_no_422_anywhere(client: TestClient) -> None:
    assert '"422"' not in client.get("/openapi.json").text


def test_order_intent_operation_is_documented(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/execution/order-intents"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
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
    assert schema["required"] == ["detail"]
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
