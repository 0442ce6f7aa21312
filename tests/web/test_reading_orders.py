"""GET /execution/orders/{order_id} and GET /execution/orders: what was accepted, read back."""

import base64
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import URL, intent

ORDERS = "/execution/orders"
FULL_KEYS = {
    "order_id", "status", "accepted_ts_utc", "exchange", "symbol", "side", "qty", "filled_qty",
    "idempotency_key", "type", "limit_price", "time_in_force", "client_ts_utc", "updated_ts_utc",
    "avg_fill_price", "fees",
}  # fmt: skip


def post(client: TestClient, **fields: object) -> dict[str, object]:
    response = client.post(URL, json=intent(**fields))
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_an_order_reads_back_as_a_superset_of_its_201(client: TestClient) -> None:
    created = post(
        client, idempotency_key="read-1", type="LIMIT", side="SELL", limit_price=42000.5, qty=1.5,
        client_ts_utc="2024-01-15T12:30:00+02:00",
    )  # fmt: skip
    response = client.get(f"{ORDERS}/{created['order_id']}")
    assert response.status_code == 200
    order = response.json()
    assert set(order) == FULL_KEYS
    assert {key: order[key] for key in created} == created
    assert order["idempotency_key"] == "read-1"
    assert (order["type"], order["limit_price"]) == ("LIMIT", 42000.5)
    assert order["client_ts_utc"] == "2024-01-15T10:30:00.000000Z"
    assert order["updated_ts_utc"] == order["accepted_ts_utc"]
    assert (order["avg_fill_price"], order["fees"]) == (None, 0.0)


def test_a_market_order_reads_back_with_nulls(client: TestClient) -> None:
    created = post(client)
    order = client.get(f"{ORDERS}/{created['order_id']}").json()
    assert (order["type"], order["limit_price"], order["client_ts_utc"]) == ("MARKET", None, None)


@pytest.mark.parametrize(
    "order_id",
    [
        "paper-a1b2c3d4-e5f6-4890-abcd-ef1234567890",
        "paper-A1B2C3D4-E5F6-4890-ABCD-EF1234567890",
        "nope",
        "paper-",
        "%00",
    ],
)
def test_an_unknown_order_is_a_json_404(client: TestClient, order_id: str) -> None:
    post(client)
    response = client.get(f"{ORDERS}/{order_id}")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_orders_list_newest_first(client: TestClient) -> None:
    ids = [post(client, idempotency_key=f"k-{n}")["order_id"] for n in range(5)]
    page = client.get(ORDERS).json()
    assert [order["order_id"] for order in page["items"]] == ids[::-1]
    assert page["next_cursor"] is None
    assert all(set(order) == FULL_KEYS for order in page["items"])


def test_an_empty_store_lists_nothing(client: TestClient) -> None:
    assert client.get(ORDERS).json() == {"items": [], "next_cursor": None}


def test_a_client_whose_post_timed_out_finds_its_order_by_key(client: TestClient) -> None:
    for n in range(3):
        post(client, idempotency_key=f"other-{n}")
    mine = post(client, idempotency_key="mine")
    page = client.get(ORDERS, params={"idempotency_key": "mine"}).json()
    assert [order["order_id"] for order in page["items"]] == [mine["order_id"]]
    assert page["next_cursor"] is None
    assert client.get(ORDERS, params={"idempotency_key": "never-sent"}).json() == {"items": [], "next_cursor": None}


def test_filters_keep_only_matching_orders(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    post(client, idempotency_key="a", exchange="binance", symbol="BTC/USDT", side="BUY")
    post(client, idempotency_key="b", exchange="coinbase", symbol="BTC/USDT", side="SELL")
    post(client, idempotency_key="c", exchange="coinbase", symbol="ETH/USDT", side="BUY")

    def keys(**params: str) -> list[str]:
        response = client.get(ORDERS, params=params)
        assert response.status_code == 200
        return [order["idempotency_key"] for order in response.json()["items"]]

    assert keys(exchange="coinbase") == ["c", "b"]
    assert keys(symbol="BTC/USDT") == ["b", "a"]
    assert keys(side="BUY") == ["c", "a"]
    assert keys(exchange="coinbase", side="BUY") == ["c"]
    assert keys(status="NEW") == ["c", "b", "a"]
    assert keys(status="FILLED") == []
    assert keys(idempotency_key="b", side="BUY") == []


def test_status_takes_several_values(client: TestClient) -> None:
    """Comma-separated statuses keep orders of any of them: here the open ones, a
    filled order and an expired one left out; the last page says so."""
    post(client, idempotency_key="filled", qty=1.0)
    post(client, idempotency_key="partial", qty=3.0)
    quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 99, "ask": 100, "ask_size": 2}
    assert client.post("/execution/market-data/quotes", json=quote).status_code == 200
    post(client, idempotency_key="new", type="LIMIT", limit_price=90.0)
    post(client, idempotency_key="expired", type="LIMIT", limit_price=90.0, time_in_force="IOC")

    def keys(status: str, **params: object) -> tuple[list[str], object]:
        response = client.get(ORDERS, params={"status": status, **params})
        assert response.status_code == 200, response.text
        page = response.json()
        return [order["idempotency_key"] for order in page["items"]], page["next_cursor"]

    assert keys("NEW,PARTIALLY_FILLED") == (["new", "partial"], None)
    assert keys("PARTIALLY_FILLED,NEW") == (["new", "partial"], None)
    assert keys("EXPIRED,FILLED,EXPIRED") == (["expired", "filled"], None)
    first, cursor = keys("NEW,PARTIALLY_FILLED,FILLED", limit=2)
    assert first == ["new", "partial"]
    assert keys("NEW,PARTIALLY_FILLED,FILLED", limit=2, cursor=cursor) == (["filled"], None)


@pytest.mark.parametrize("status", ["NEW,DONE", "NEW,", ",NEW", "NEW, FILLED", "new,FILLED", "NEW;FILLED"])
def test_an_unknown_status_among_several_is_a_400_naming_it(client: TestClient, status: str) -> None:
    response = client.get(ORDERS, params={"status": status})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["detail"].startswith("status must be order statuses, comma-separated (NEW, PARTIALLY_FILLED, ")


def test_the_last_page_of_a_filter_has_no_cursor(client: TestClient) -> None:
    post(client, idempotency_key="sell-0", side="SELL")
    post(client, idempotency_key="sell-1", side="SELL")
    post(client, idempotency_key="buy-0", side="BUY")
    post(client, idempotency_key="buy-1", side="BUY")
    page = client.get(ORDERS, params={"side": "BUY", "limit": 2}).json()
    assert [order["idempotency_key"] for order in page["items"]] == ["buy-1", "buy-0"]
    assert page["next_cursor"] is None


def test_pages_cover_every_order_once_even_while_orders_arrive(client: TestClient) -> None:
    ids = [post(client, idempotency_key=f"k-{n}")["order_id"] for n in range(25)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get(ORDERS, params=params).json()
        seen += [order["order_id"] for order in page["items"]]
        pages += 1
        post(client, idempotency_key=f"late-{pages}")  # arrives between pages
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 3


def test_a_filtered_listing_pages_too(client: TestClient) -> None:
    for n in range(12):
        post(client, idempotency_key=f"k-{n}", side="BUY" if n % 2 else "SELL")
    first = client.get(ORDERS, params={"side": "BUY", "limit": 4}).json()
    second = client.get(ORDERS, params={"side": "BUY", "limit": 4, "cursor": first["next_cursor"]}).json()
    keys = [order["idempotency_key"] for order in first["items"] + second["items"]]
    assert keys == ["k-11", "k-9", "k-7", "k-5", "k-3", "k-1"]


def test_limit_defaults_to_100_and_goes_up_to_1000(client: TestClient) -> None:
    for n in range(101):
        post(client, idempotency_key=f"k-{n}")
    assert len(client.get(ORDERS).json()["items"]) == 100
    assert len(client.get(ORDERS, params={"limit": 1000}).json()["items"]) == 101


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"status": "DONE"},
        {"status": "new"},
        {"side": "HOLD"},
        {"cursor": "not-a-cursor"},
        {"cursor": base64.urlsafe_b64encode(b"before:-1").decode()},
        {"cursor": base64.urlsafe_b64encode(b"after:5").decode()},
        {"cursor": "\u00e9t\u00e9"},
        {"cursor": "-1"},
        {"cursor": "1" * 19},
        {"cursor": "\u0663"},  # a digit, but not an ASCII one
        {"exchange": ""},
        {"symbol": "x" * 65},
        {"symbol": "a\x00b"},
        {"exchange": "line\nbreak"},
        {"idempotency_key": "k" * 256},
        {"idempotency_key": "nul\x00"},
        {"stauts": "NEW"},  # a misspelt filter must not list every order
        [("status", "NEW"), ("status", "FILLED")],
    ],
)
def test_bad_query_parameters_are_400_not_422(
    client: TestClient, params: dict[str, str] | list[tuple[str, str]]
) -> None:
    response = client.get(ORDERS, params=params)
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(
    "path", [ORDERS, "/execution/events", "/execution/fills", "/execution/orders/{order_id}/fills"]
)
@pytest.mark.parametrize("value", ["0.0", "5.0", "-0", " 5", "5 ", "+5", "1e2", "\u0665"])
def test_a_number_not_written_in_digits_is_400(client: TestClient, path: str, value: str) -> None:
    """`after=0.0` read as 0 would answer a page the client may not have meant; every
    integer query parameter takes ASCII digits only."""
    order_id = client.post(URL, json=intent(idempotency_key="k")).json()["order_id"]
    path = path.format(order_id=order_id)
    names = ["limit"] if path == ORDERS else ["after", "limit"]
    for name in names:
        response = client.get(path, params={name: value})
        assert response.status_code == 400, (name, response.text)
        assert response.json()["code"] == "VALIDATION_ERROR"
        assert client.get(path, params={name: "01"}).status_code == 200  # digits, a leading zero too
