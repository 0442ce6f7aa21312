"""Operations, through HTTP: request ids, metrics, the API token, MAX_ORDERS, and the
last-resort 500."""

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.order import Order
from app.main import create_app
from app.ops.logs import JsonFormatter
from app.service.settings import DEFAULT_MEMORY_MAX_ORDERS, Settings
from app.store.base import OrderStore
from app.store.memory import InMemoryStore
from tests.conftest import URL, intent, make_settings, race_keys

ORDERS = "/execution/orders"
QUOTES = "/execution/market-data/quotes"
TOKEN = "s3cret-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def request_records(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == request_id]


# -- request ids -----------------------------------------------------------------------


def test_a_client_request_id_is_returned_and_on_every_line_of_its_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.post(URL, json=intent(), headers={"X-Request-ID": "bot-7:order-42"})
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "bot-7:order-42"
    lines = request_records(caplog, "bot-7:order-42")
    assert [r.getMessage() for r in lines] == ["Received order intent", "Order created successfully", "HTTP request"]
    assert all(r.request_id == "bot-7:order-42" for r in lines)  # type: ignore[attr-defined]
    # Every line of the service's logger during the request carries it: none without.
    assert all("request_id" in r.fields for r in caplog.records if r.name == "execution")  # type: ignore[attr-defined]


def test_a_request_without_an_id_gets_a_fresh_one(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    first, second = client.get("/healthz"), client.get("/healthz")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids[0] != ids[1]
    assert [r.getMessage() for r in request_records(caplog, ids[0])] == ["HTTP request"]


@pytest.mark.parametrize("bad", ["", "x" * 129, "has space", "tab\there", "é-accent"])
def test_an_unusable_request_id_is_replaced_not_echoed(client: TestClient, bad: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": bad.encode()})
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", URL, {"qty": 1}, 400),
        ("GET", f"{ORDERS}/paper-00000000-0000-4000-8000-000000000000", None, 404),
        ("GET", "/no/such/path", None, 404),
    ],
)
def test_error_answers_carry_the_request_id(client: TestClient, method: str, path: str, body: Any, status: int) -> None:
    response = client.request(method, path, json=body, headers={"X-Request-ID": "err-1"})
    assert response.status_code == status
    assert response.headers["x-request-id"] == "err-1"
    assert "detail" in response.json()


def test_a_413_carries_the_request_id(client: TestClient) -> None:
    response = client.post(URL, content=b"x" * (64 * 1024 + 1), headers={"X-Request-ID": "big-1"})
    assert response.status_code == 413
    assert response.headers["x-request-id"] == "big-1"


# -- the last-resort 500 -----------------------------------------------------------------


class BrokenReads(InMemoryStore):
    """An in-memory store whose reads of one order fail as a bug would."""

    def get(self, order_id: str) -> Order | None:
        raise RuntimeError("a bug in the store")


def test_an_unexpected_error_is_a_json_500_with_the_request_id_and_the_process_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with TestClient(create_app(make_settings(), BrokenReads())) as client:
        response = client.get(f"{ORDERS}/paper-00000000-0000-4000-8000-000000000000", headers={"X-Request-ID": "b-1"})
        assert response.status_code == 500
        assert response.headers["x-request-id"] == "b-1"
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "detail": "Internal server error; quote the request_id when reporting it",
            "code": "INTERNAL_ERROR",
            "request_id": "b-1",
        }
        [error] = [r for r in request_records(caplog, "b-1") if r.levelname == "ERROR"]
        assert error.getMessage() == "Unhandled error"
        assert error.exc_info is not None
        assert "a bug in the store" in str(error.exc_info[1])
        [line] = [r for r in request_records(caplog, "b-1") if r.getMessage() == "HTTP request"]
        assert line.status == 500  # type: ignore[attr-defined]
        # The service goes on serving.
        assert client.post(URL, json=intent()).status_code == 201


def test_json_log_lines_are_one_object_each() -> None:
    record = logging.LogRecord("execution", logging.WARNING, "", 0, "Order intent rejected", (), None)
    record.created = 1705314600.25
    record.msecs = 250.0
    record.fields = {"reason": "line\nbreak", "qty": 0.01}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line) == {
        "timestamp": "2024-01-15T10:30:00.250Z",
        "level": "WARNING",
        "logger": "execution",
        "message": "Order intent rejected",
        "fields": {"reason": "line\nbreak", "qty": 0.01},
    }


def test_json_log_lines_carry_a_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError as error:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, "", 0, "failed", (), (ValueError, error, error.__traceback__)
        )
    parsed = json.loads(JsonFormatter().format(record))
    assert parsed["fields"] == {}
    assert parsed["traceback"].startswith("Traceback")
    assert "ValueError: boom" in parsed["traceback"]


# -- the API token -------------------------------------------------------------------------


@pytest.fixture
def guarded(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(execution_api_token=TOKEN)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
    ],
)
def test_without_the_token_every_guarded_endpoint_is_401(
    guarded: TestClient, store: OrderStore, headers: dict[str, str]
) -> None:
    for method, path, body in [
        ("POST", URL, intent()),
        ("GET", ORDERS, None),
        ("GET", f"{ORDERS}/paper-00000000-0000-4000-8000-000000000000", None),
        ("POST", QUOTES, {"exchange": "binance", "symbol": "BTC/USDT", "bid": 1.0, "ask": 2.0}),
        ("GET", "/execution/positions", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("GET", "/no/such/path", None),  # not even whether a path exists
    ]:
        response = guarded.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "bearer token" in response.json()["detail"]
    assert store.count() == 0


def test_with_the_token_requests_go_through(guarded: TestClient) -> None:
    assert guarded.post(URL, json=intent(), headers=AUTH).status_code == 201
    assert guarded.get(ORDERS, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200  # scheme: any case


def test_probes_capabilities_and_metrics_need_no_token(guarded: TestClient) -> None:
    for path in ("/healthz", "/capabilities", "/metrics"):
        assert guarded.get(path).status_code == 200, path


def test_the_token_never_reaches_the_log(guarded: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    guarded.post(URL, json=intent(), headers=AUTH)
    guarded.post(URL, json=intent(idempotency_key="k2"), headers={"Authorization": f"Bearer {TOKEN[:-1]}"})
    formatted = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert TOKEN[:12] not in formatted


def test_the_openapi_document_declares_the_scheme(guarded: TestClient) -> None:
    document = guarded.get("/openapi.json", headers=AUTH).json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "EXECUTION_API_TOKEN",
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path in ("/healthz", "/capabilities", "/metrics"):
                assert "security" not in operation
                assert "401" not in operation["responses"]
            else:
                assert operation["security"] == [{"bearerAuth": []}]
                assert "401" in operation["responses"]


def test_without_a_token_the_document_declares_none(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert "securitySchemes" not in document["components"]
    assert all("401" not in op["responses"] for ops in document["paths"].values() for op in ops.values())


@pytest.mark.parametrize("value", ["short", "has a space in it 123", "ünïcode-token-0123456789"])
def test_an_unusable_token_stops_start_up_without_repeating_it(value: str) -> None:
    with pytest.raises(ValueError, match="value not shown") as raised:
        Settings(execution_api_token=value)
    assert value not in str(raised.value).split("input_value")[0]


def test_an_empty_token_means_no_access_control() -> None:
    assert Settings(execution_api_token="").api_token is None


# -- MAX_ORDERS ----------------------------------------------------------------------------


def test_the_memory_store_caps_a_million_orders_by_default() -> None:
    assert DEFAULT_MEMORY_MAX_ORDERS == 1_000_000
    assert make_settings().order_cap("memory") == 1_000_000
    assert make_settings().order_cap("sqlite") is None
    assert make_settings(max_orders=5).order_cap("postgresql") == 5


def test_a_full_store_refuses_new_intents_and_keeps_every_order(
    make_client: Callable[..., TestClient], store: OrderStore
) -> None:
    client = make_client(max_orders=3)
    ids = [
        client.post(URL, json=intent(idempotency_key=f"k{n}", type="LIMIT", limit_price=1.0)).json() for n in range(2)
    ]
    assert client.get("/capabilities").json()["status"] == "ok"
    ids.append(client.post(URL, json=intent(idempotency_key="k2", type="LIMIT", limit_price=1.0)).json())
    assert client.get("/capabilities").json()["status"] == "degraded"  # full: the next intent is refused

    refused = client.post(URL, json=intent(idempotency_key="k3"))
    assert refused.status_code == 503
    assert "MAX_ORDERS=3" in refused.json()["detail"]
    # A retry of an order that was taken still names it; the refused key stays free.
    duplicate = client.post(URL, json=intent(idempotency_key="k0"))
    assert (duplicate.status_code, duplicate.json()["order_id"]) == (409, ids[0]["order_id"])
    assert client.get(ORDERS, params={"idempotency_key": "k3"}).json()["items"] == []
    # Nothing evicted: every order is still there, and can still be canceled.
    assert store.count() == 3
    assert client.post(f"{ORDERS}/{ids[1]['order_id']}/cancel").json()["status"] == "CANCELED"
    assert store.count() == 3
    capabilities = client.get("/capabilities").json()
    assert capabilities["status"] == "degraded"
    assert "MAX_ORDERS=3" in capabilities["degraded_reason"]


def test_the_memory_store_counts_fills_against_max_orders() -> None:
    """With MAX_ORDERS=10, an order and its 9 fills fill the memory store: intents are
    refused (503 STORE_FULL) and the service says it is degraded; fills go on into the
    reserve (a tenth: 1 more), then a quote that could fill is refused with the same
    503 and nothing changes; the order can still be read, its fills listed, canceled."""
    with TestClient(create_app(make_settings(max_orders=10), InMemoryStore())) as client:
        big = client.post(URL, json=intent(idempotency_key="big", qty=100)).json()["order_id"]
        quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99, "ask": 100, "ask_size": 1}
        for _ in range(9):
            assert client.post("/execution/market-data/quotes", json=quote).status_code == 200
        refused = client.post(URL, json=intent(idempotency_key="next"))
        assert (refused.status_code, refused.json()["code"]) == (503, "STORE_FULL")
        assert "a fill counts as an order" in refused.json()["detail"]
        assert "MAX_ORDERS=10" in client.get("/capabilities").json()["degraded_reason"]
        assert len(client.post("/execution/market-data/quotes", json=quote).json()["items"]) == 1  # the reserve
        full = client.post("/execution/market-data/quotes", json=quote)
        assert (full.status_code, full.json()["code"]) == (503, "STORE_FULL")
        assert "reserve for fills (1)" in full.json()["detail"]
        assert client.get(f"{ORDERS}/{big}").json()["filled_qty"] == 10
        assert len(client.get(f"{ORDERS}/{big}/fills").json()["items"]) == 10
        assert client.post(f"{ORDERS}/{big}/cancel").json()["status"] == "CANCELED"


def test_a_batch_that_overflows_the_cap_admits_exactly_up_to_it(
    make_client: Callable[..., TestClient], store: OrderStore
) -> None:
    client = make_client(max_orders=10)
    statuses = race_keys(client, [f"r{n}" for n in range(30)])
    assert sorted(statuses) == [201] * 10 + [503] * 20
    assert store.count() == 10


# -- codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (intent(qty=-1), "VALIDATION_ERROR"),
        ({"not": "an intent"}, "VALIDATION_ERROR"),
        (intent(exchange="kraken"), "EXCHANGE_NOT_ALLOWED"),
        (intent(symbol="DOGE/USDT"), "SYMBOL_NOT_ALLOWED"),
    ],
)
def test_every_refused_intent_names_its_code(client: TestClient, body: dict[str, Any], code: str) -> None:
    response = client.post(URL, json=body)
    assert response.status_code == 400
    assert response.json()["code"] == code


def test_a_malformed_body_and_a_wrong_media_type_are_validation_errors(client: TestClient) -> None:
    assert client.post(URL, content=b"{", headers={"Content-Type": "application/json"}).json()["code"] == (
        "VALIDATION_ERROR"
    )
    assert client.post(URL, content=b"{}", headers={"Content-Type": "text/plain"}).json()["code"] == (
        "VALIDATION_ERROR"
    )


def test_store_full_and_unauthorized_name_their_codes(make_client: Callable[..., TestClient]) -> None:
    full = make_client(max_orders=1, execution_api_token=TOKEN)
    assert full.post(URL, json=intent()).json()["code"] == "UNAUTHORIZED"
    assert full.post(URL, json=intent(idempotency_key="a"), headers=AUTH).status_code == 201
    assert full.post(URL, json=intent(idempotency_key="b"), headers=AUTH).json()["code"] == "STORE_FULL"
    # A duplicate stays a 409 with the order it names, and no code: there is one kind.
    duplicate = full.post(URL, json=intent(idempotency_key="a"), headers=AUTH).json()
    assert set(duplicate) == {"detail", "code", "order_id", "payload_matches"}


def test_the_document_lists_the_codes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    code = document["components"]["schemas"]["BadRequestBody"]["properties"]["code"]
    assert {"VALIDATION_ERROR", "EXCHANGE_NOT_ALLOWED", "SYMBOL_NOT_ALLOWED", "STORE_FULL"} <= set(code["enum"])


# -- metrics ---------------------------------------------------------------------------------


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_intents_fills_cancels_and_orders_by_status(client: TestClient, store: OrderStore) -> None:
    client.post(URL, json=intent(idempotency_key="a", qty=1))
    client.post(URL, json=intent(idempotency_key="a", qty=1))
    client.post(URL, json=intent(idempotency_key="b", type="LIMIT", limit_price=1.0))
    client.post(URL, json=intent(idempotency_key="c", symbol="DOGE/USDT"))
    client.post(URL, json=intent(idempotency_key="d", exchange="kraken"))
    client.post(URL, json={"qty": -1})
    resting = client.post(URL, json=intent(idempotency_key="e", type="LIMIT", limit_price=2.0)).json()["order_id"]
    client.post(f"{ORDERS}/{resting}/cancel")
    client.post(QUOTES, json={"exchange": "binance", "symbol": "BTC/USDT", "bid": 100.0, "ask": 101.0})
    metrics = scrape(client)

    def intents(outcome: str, reason: str = "") -> float:
        return metrics[("execution_order_intents_total", (("outcome", outcome), ("reason", reason)))]

    assert intents("created") == 3
    assert intents("duplicate") == 1
    assert intents("rejected", "SYMBOL_NOT_ALLOWED") == 1
    assert intents("rejected", "EXCHANGE_NOT_ALLOWED") == 1
    assert intents("rejected", "VALIDATION_ERROR") == 1
    assert metrics[("execution_fills_total", ())] == 1
    assert metrics[("execution_cancels_total", ())] == 1
    statuses = ("NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED")
    by_status = {s: metrics[("execution_orders", (("status", s),))] for s in statuses}
    assert by_status == {"NEW": 1, "PARTIALLY_FILLED": 0, "FILLED": 1, "CANCELED": 1}
    assert metrics[("execution_store_orders", ())] == 3
    assert metrics[("execution_store_info", (("store", store.name),))] == 1


def test_request_latency_is_by_route_template_and_status(client: TestClient) -> None:
    for n in range(3):
        client.get(f"{ORDERS}/paper-00000000-0000-4000-8000-00000000000{n}")
    client.post(URL, json=intent())
    client.get("/nowhere")
    metrics = scrape(client)

    def count(route: str, method: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return metrics[("execution_http_request_duration_seconds_count", labels)]

    assert count("/execution/orders/{order_id}", "GET", "404") == 3
    assert count(URL, "POST", "201") == 1
    assert count("<unmatched>", "GET", "404") == 1
    assert not any("paper-" in str(labels) for _, labels in metrics)


def test_made_up_methods_share_one_label(client: TestClient) -> None:
    for n in range(5):
        assert client.request(f"PROPFIND{n}", "/healthz").status_code == 405
    labels = {dict(labels).get("method") for name, labels in scrape(client) if name.startswith("execution_http")}
    assert labels == {"OTHER"}  # (the scrape itself is counted after it is answered)


def test_open_paths_stay_open_behind_a_root_path(store: OrderStore) -> None:
    app = create_app(make_settings(execution_api_token=TOKEN), store)
    with TestClient(app, root_path="/api") as client:
        assert client.get("/api/healthz").status_code == 200
        assert client.get("/api/metrics").status_code == 200
        assert client.get("/api/execution/orders").status_code == 401
        assert client.get("/api/execution/orders", headers=AUTH).status_code == 200


def test_metrics_of_two_apps_do_not_mix(make_client: Callable[..., TestClient]) -> None:
    first, second = make_client(), make_client()
    first.post(URL, json=intent(symbol="DOGE/USDT"))
    assert ("execution_order_intents_total", (("outcome", "rejected"), ("reason", "SYMBOL_NOT_ALLOWED"))) not in scrape(
        second
    )
