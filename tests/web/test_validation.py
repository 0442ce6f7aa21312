"""Every invalid request is a 400 with a JSON `detail` (never 422, never 500) and stores nothing."""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from app.main import create_app
from app.store.base import OrderStore
from app.store.memory import InMemoryStore
from tests.conftest import URL, intent, make_settings


def without(field: str) -> dict[str, Any]:
    body = intent()
    del body[field]
    return body


# (case id, request body as sent, the field the 400 must name or None for body-level errors)
INVALID_BODIES: list[tuple[str, bytes, str | None]] = [
    ("malformed json", b'{"idempotency_key": "k",', None),
    ("empty body", b"", None),
    ("not utf-8", b"\xff\xfe\x00", None),
    ("array body", b"[]", None),
    ("null body", b"null", None),
    ("string body", b'"order"', None),
    ("number body", b"42", None),
    ("form encoded", b"idempotency_key=k&qty=1", None),
    *[
        (f"missing {f}", json.dumps(without(f)).encode(), f)
        for f in ("idempotency_key", "exchange", "symbol", "side", "qty", "type")
    ],
    ("unknown field", json.dumps(intent(leverage=10)).encode(), "leverage"),
    ("key is a number", json.dumps(intent(idempotency_key=123)).encode(), "idempotency_key"),
    ("key is empty", json.dumps(intent(idempotency_key="")).encode(), "idempotency_key"),
    ("key too long", json.dumps(intent(idempotency_key="k" * 256)).encode(), "idempotency_key"),
    ("key with newline", json.dumps(intent(idempotency_key="a\nb")).encode(), "idempotency_key"),
    ("key with NUL", json.dumps(intent(idempotency_key="a\u0000b")).encode(), "idempotency_key"),
    ("key with DEL", json.dumps(intent(idempotency_key="a\u007fb")).encode(), "idempotency_key"),
    ("key with C1 control", json.dumps(intent(idempotency_key="a\u0085b")).encode(), "idempotency_key"),
    ("exchange is null", json.dumps(intent(exchange=None)).encode(), "exchange"),
    ("exchange too long", json.dumps(intent(exchange="x" * 65)).encode(), "exchange"),
    ("exchange with tab", json.dumps(intent(exchange="bin\tance")).encode(), "exchange"),
    ("symbol is empty", json.dumps(intent(symbol="")).encode(), "symbol"),
    ("symbol is a list", json.dumps(intent(symbol=["BTC/USDT"])).encode(), "symbol"),
    ("side lower case", json.dumps(intent(side="buy")).encode(), "side"),
    ("side unknown", json.dumps(intent(side="HOLD")).encode(), "side"),
    ("type unknown", json.dumps(intent(type="STOP")).encode(), "type"),
    ("type lower case", json.dumps(intent(type="market")).encode(), "type"),
    ("qty as string", json.dumps(intent(qty="0.01")).encode(), "qty"),
    ("qty as boolean", json.dumps(intent(qty=True)).encode(), "qty"),
    ("qty is null", json.dumps(intent(qty=None)).encode(), "qty"),
    ("qty zero", json.dumps(intent(qty=0)).encode(), "qty"),
    ("qty negative zero", json.dumps(intent(qty=-0.0)).encode(), "qty"),
    ("qty negative", json.dumps(intent(qty=-1)).encode(), "qty"),
    ("qty NaN", json.dumps(intent(qty=float("nan"))).encode(), "qty"),
    ("qty Infinity", json.dumps(intent(qty=float("inf"))).encode(), "qty"),
    ("qty -Infinity", json.dumps(intent(qty=float("-inf"))).encode(), "qty"),
    ("qty overflows a float", json.dumps(intent(qty=1)).replace('"qty": 1', '"qty": 1e400').encode(), "qty"),
    ("qty huge integer", json.dumps(intent(qty=10**400)).encode(), "qty"),
    ("qty over the maximum", json.dumps(intent(qty=1.0000001e15)).encode(), "qty"),
    ("limit price as string", json.dumps(intent(type="LIMIT", limit_price="100")).encode(), "limit_price"),
    ("limit price zero", json.dumps(intent(type="LIMIT", limit_price=0)).encode(), "limit_price"),
    ("limit price negative", json.dumps(intent(type="LIMIT", limit_price=-5)).encode(), "limit_price"),
    ("limit price NaN", json.dumps(intent(type="LIMIT", limit_price=float("nan"))).encode(), "limit_price"),
    ("LIMIT without limit_price", json.dumps(without("limit_price") | {"type": "LIMIT"}).encode(), "limit_price"),
    ("LIMIT with null limit_price", json.dumps(intent(type="LIMIT", limit_price=None)).encode(), "limit_price"),
    ("MARKET with limit_price", json.dumps(intent(type="MARKET", limit_price=100.0)).encode(), "limit_price"),
    ("client ts not a date", json.dumps(intent(client_ts_utc="yesterday")).encode(), "client_ts_utc"),
    ("client ts date only", json.dumps(intent(client_ts_utc="2024-01-15")).encode(), "client_ts_utc"),
    ("client ts unix number", json.dumps(intent(client_ts_utc=1705314600)).encode(), "client_ts_utc"),
    ("client ts unix string", json.dumps(intent(client_ts_utc="1705314600")).encode(), "client_ts_utc"),
    ("client ts impossible", json.dumps(intent(client_ts_utc="2024-02-30T10:00:00Z")).encode(), "client_ts_utc"),
    ("client ts boolean", json.dumps(intent(client_ts_utc=True)).encode(), "client_ts_utc"),
    (
        "client ts before year 1 in UTC",
        json.dumps(intent(client_ts_utc="0001-01-01T00:00:00+00:01")).encode(),
        "client_ts_utc",
    ),
    (
        "client ts after 9999 in UTC",
        json.dumps(intent(client_ts_utc="9999-12-31T23:59:59-14:00")).encode(),
        "client_ts_utc",
    ),
    ("key with a lone surrogate", json.dumps(intent(idempotency_key="a\ud800b")).encode(), None),
    ("key with line separator", json.dumps(intent(idempotency_key="a\u2028b")).encode(), "idempotency_key"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INVALID_BODIES], ids=[c for c, _, _ in INVALID_BODIES]
)
def test_invalid_intent_is_400_with_detail_and_stores_nothing(
    client: TestClient, store: OrderStore, body: bytes, field: str | None
) -> None:
    response = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    payload = response.json()
    assert isinstance(payload["detail"], str)
    assert payload["detail"].startswith("Invalid order intent: ")
    assert payload["errors"]
    assert all(set(error) == {"loc", "msg"} for error in payload["errors"])
    if field is not None:
        assert [field] in [error["loc"] for error in payload["errors"]]
        assert field in payload["detail"]
    assert store.count() == 0


def test_limit_without_price_names_limit_price(client: TestClient) -> None:
    response = client.post(URL, json=intent(type="LIMIT"))
    assert response.status_code == 400
    assert response.json()["errors"] == [{"loc": ["limit_price"], "msg": "limit_price is required for LIMIT orders"}]


def test_control_characters_are_named_in_the_error(client: TestClient) -> None:
    response = client.post(URL, json=intent(symbol="BTC\r\nUSDT"))
    assert response.json()["errors"] == [{"loc": ["symbol"], "msg": "must not contain control characters"}]


def test_every_problem_of_a_body_is_listed(client: TestClient) -> None:
    response = client.post(URL, json={"qty": "1", "side": "buy", "extra": 1})
    locs = [error["loc"] for error in response.json()["errors"]]
    for expected in (["qty"], ["side"], ["extra"], ["idempotency_key"], ["exchange"], ["symbol"], ["type"]):
        assert expected in locs


def test_an_invalid_body_does_not_disturb_stored_orders(client: TestClient, store: OrderStore) -> None:
    created = client.post(URL, json=intent(idempotency_key="keep")).json()
    assert client.post(URL, json=intent(idempotency_key="keep", qty="1")).status_code == 400
    stored = store.get_by_key("keep")
    assert stored is not None
    assert (stored.order_id, stored.qty) == (created["order_id"], 0.01)
    assert store.count() == 1


def test_unknown_path_is_a_json_404(client: TestClient) -> None:
    response = client.get("/execution/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found", "code": "NOT_FOUND"}


NOT_ALLOWED = {"detail": "Method Not Allowed", "code": "METHOD_NOT_ALLOWED"}


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.get(URL)
    assert response.status_code == 405
    assert response.json() == NOT_ALLOWED
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/execution/trading-state", "GET, PUT"),
        ("DELETE", "/healthz", "GET, HEAD"),
        ("HEAD", "/capabilities", "GET"),  # HEAD is answered only where a route says so
    ],
)
def test_a_405_names_every_method_of_its_path(client: TestClient, method: str, path: str, allow: str) -> None:
    response = client.request(method, path)
    assert (response.status_code, response.headers["allow"]) == (405, allow)
    if method != "HEAD":
        assert response.json() == NOT_ALLOWED


def test_every_405_allows_exactly_what_its_path_answers() -> None:
    """Each path of the app asked with every method: the methods it did not refuse with
    a 405 are exactly what each of its 405s names in Allow."""
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    stream = "/execution/events/stream"  # a GET there never ends; it is answered (tests/server)
    with TestClient(create_app(make_settings(), InMemoryStore())) as client:
        paths = {route.path for route in client.app.routes if isinstance(route, Route)}
        for path in sorted(paths):
            url = path.replace("{order_id}", "paper-x")
            answered = {"GET"} if path == stream else set()
            refusals = []
            for method in methods:
                if path == stream and method == "GET":
                    continue
                response = client.request(method, url)
                if response.status_code == 405:
                    refusals.append(response)
                else:
                    answered.add(method)
            assert refusals, path
            for refusal in refusals:
                assert set(refusal.headers["allow"].split(", ")) == answered, (path, refusal.request.method)
                if refusal.request.method != "HEAD":
                    assert refusal.json() == NOT_ALLOWED


def test_a_flood_of_problems_gets_a_short_answer(client: TestClient) -> None:
    body = intent() | {f"field_{n}_" + "x" * 100: n for n in range(500)}
    response = client.post(URL, json=body)
    assert response.status_code == 400
    payload = response.json()
    assert len(payload["errors"]) == 10
    assert payload["detail"].endswith("; and 490 more")
    assert all(len(part) <= 67 for error in payload["errors"] for part in error["loc"])
    assert len(response.content) < 4000


TOO_LARGE = {"detail": "Request body is larger than 65536 bytes", "code": "BODY_TOO_LARGE"}
STATE = "/execution/trading-state"
QUOTES = "/execution/market-data/quotes"
# Every route that takes a JSON body, with a body it accepts.
JSON_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", URL, intent()),
    ("POST", QUOTES, {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99.0, "ask": 100.0}),
    ("PUT", STATE, {"state": "HALTED"}),
]
JSON_ROUTE_IDS = [f"{method} {path}" for method, path, _ in JSON_ROUTES]


def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON, padded with JSON whitespace to exactly `size` bytes."""
    text = json.dumps(body).encode()
    return text + b" " * (size - len(text))


def padded_intent(size: int) -> bytes:
    return padded(intent(), size)


def in_chunks(body: bytes, size: int = 1024) -> Iterator[bytes]:
    """`body` sent without a Content-Length (chunked): its size is found by counting."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_body_of_64_kib_is_accepted(client: TestClient) -> None:
    assert client.post(URL, content=padded_intent(64 * 1024)).status_code == 201


@pytest.mark.parametrize(("method", "path", "body"), JSON_ROUTES, ids=JSON_ROUTE_IDS)
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_every_json_route_takes_a_body_of_64_kib(
    client: TestClient, method: str, path: str, body: dict[str, Any], chunked: bool
) -> None:
    content = padded(body, 64 * 1024)
    sent = in_chunks(content) if chunked else content
    response = client.request(method, path, content=sent, headers={"content-type": "application/json"})
    assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize(("method", "path", "body"), JSON_ROUTES, ids=JSON_ROUTE_IDS)
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_every_json_route_refuses_a_body_over_64_kib_with_413(
    client: TestClient, store: OrderStore, *, method: str, path: str, body: dict[str, Any], chunked: bool
) -> None:
    content = padded(body, 64 * 1024 + 1)
    sent = in_chunks(content) if chunked else content
    response = client.request(method, path, content=sent, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json() == TOO_LARGE
    assert store.count() == 0
    assert client.get(STATE).json()["state"] == "ACTIVE"


def test_a_declared_body_over_64_kib_is_413_at_once(client: TestClient, store: OrderStore) -> None:
    response = client.post(URL, content=padded_intent(64 * 1024 + 1))
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert store.count() == 0


def test_a_streamed_body_over_64_kib_is_413(client: TestClient, store: OrderStore) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is found by counting
        yield json.dumps(intent()).encode()
        for _ in range(100):
            yield b" " * 1024

    response = client.post(URL, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert store.count() == 0


def test_only_an_answer_given_before_the_body_is_read_closes_the_connection(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_intents_per_second=0.01, max_intents_burst=2)
    read = [
        client.post(URL, json=intent()),  # 201
        client.post(URL, json=intent(qty=-1)),  # 400 from the body
        client.get("/execution/orders"),  # no body at all
        client.post("/execution/orders/paper-x/cancel"),  # Content-Length: 0
    ]
    assert [response.headers.get("connection") for response in read] == [None] * 4
    limited = client.post(URL, json=intent(idempotency_key="k-2"))  # refused before its body is read
    assert (limited.status_code, limited.headers.get("connection")) == (429, "close")
    too_large = client.put(STATE, content=in_chunks(padded({"state": "HALTED"}, 64 * 1024 + 1)))
    assert (too_large.status_code, too_large.headers.get("connection")) == (413, "close")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json"]
)
def test_a_non_json_content_type_is_400(client: TestClient, store: OrderStore, content_type: str) -> None:
    response = client.post(URL, content=json.dumps(intent()).encode(), headers={"content-type": content_type})
    assert response.status_code == 400
    assert response.json()["detail"] == f"Content-Type must be application/json, not {content_type!r}"
    assert store.count() == 0


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/vnd.x+json"]
)
def test_json_content_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(URL, content=json.dumps(intent()).encode(), headers={"content-type": content_type})
    assert response.status_code == 201


@pytest.mark.parametrize(("method", "path", "body"), JSON_ROUTES, ids=JSON_ROUTE_IDS)
@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/vnd.x+json"])
def test_every_json_route_takes_json_or_no_content_type(
    client: TestClient, *, method: str, path: str, body: dict[str, Any], content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.request(method, path, content=json.dumps(body).encode(), headers=headers)
    assert response.status_code in (200, 201), response.text


@pytest.mark.parametrize(("method", "path", "body"), JSON_ROUTES, ids=JSON_ROUTE_IDS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_every_json_route_refuses_another_content_type_as_intents_do(
    client: TestClient, store: OrderStore, *, method: str, path: str, body: dict[str, Any], content_type: str
) -> None:
    response = client.request(method, path, content=json.dumps(body).encode(), headers={"content-type": content_type})
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Content-Type must be application/json, not {content_type!r}",
        "code": "VALIDATION_ERROR",
    }
    assert store.count() == 0
    assert client.get(STATE).json()["state"] == "ACTIVE"


def test_a_trailing_slash_is_a_404_not_a_redirect(client: TestClient) -> None:
    response = client.post(URL + "/", json=intent(), follow_redirects=False)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found", "code": "NOT_FOUND"}


def test_a_key_given_twice_takes_its_last_value(client: TestClient) -> None:
    body = (
        b'{"idempotency_key": "twice", "exchange": "binance", "symbol": "BTC/USDT", "side": "BUY",'
        b' "qty": 5, "type": "MARKET", "qty": 0.25}'
    )
    response = client.post(URL, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201
    assert response.json()["qty"] == 0.25
