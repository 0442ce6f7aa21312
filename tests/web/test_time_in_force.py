"""Time in force: GTC rests, IOC fills what the latest quote allows and expires the rest,
FOK fills whole or expires with nothing, on every store."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import URL, intent
from tests.web.test_fills import ORDERS, fills, order, quote, read


def test_gtc_is_the_default_and_rests(client: TestClient) -> None:
    order_id = order(client, "plain", type="LIMIT", limit_price=90.0)
    quote(client, 99, 100)
    assert read(client, order_id)["time_in_force"] == "GTC"
    assert read(client, order_id)["status"] == "NEW"
    quote(client, 89, 90)
    assert read(client, order_id)["status"] == "FILLED"


@pytest.mark.parametrize("tif", ["IOC", "FOK"])
def test_with_no_quote_it_expires_with_nothing_filled(client: TestClient, tif: str) -> None:
    response = client.post(URL, json=intent(idempotency_key="early", time_in_force=tif))
    assert response.status_code == 201
    assert response.json()["status"] == "NEW"  # the 201 shows the order as accepted
    order_id = response.json()["order_id"]
    assert read(client, order_id)["status"] == "EXPIRED"
    quote(client, 99, 100)  # a later quote does not revive it
    body = read(client, order_id)
    assert (body["status"], body["filled_qty"], body["time_in_force"]) == ("EXPIRED", 0, tif)
    assert fills(client, order_id) == []


def test_ioc_keeps_its_filled_part_and_expires_the_rest(client: TestClient) -> None:
    quote(client, 99, 100, ask_size=0.3)
    order_id = order(client, "ioc", qty=0.5, time_in_force="IOC")
    body = read(client, order_id)
    assert (body["status"], body["filled_qty"]) == ("EXPIRED", 0.3)
    assert [(f["qty"], f["price"]) for f in fills(client, order_id)] == [(0.3, 100.0)]
    quote(client, 99, 100, ask_size=5)
    assert read(client, order_id)["filled_qty"] == 0.3
    assert client.get("/execution/positions").json()["items"][0]["qty"] == 0.3


def test_ioc_filled_whole_is_filled(client: TestClient) -> None:
    quote(client, 99, 100)
    order_id = order(client, "ioc", qty=0.5, time_in_force="IOC")
    assert read(client, order_id)["status"] == "FILLED"


def test_an_ioc_limit_the_quote_does_not_reach_expires(client: TestClient) -> None:
    quote(client, 99, 100)
    order_id = order(client, "ioc", type="LIMIT", limit_price=99.5, time_in_force="IOC")
    assert read(client, order_id)["status"] == "EXPIRED"
    quote(client, 98, 99)  # would have filled a GTC order
    assert read(client, order_id)["filled_qty"] == 0


def test_fok_short_of_size_fills_nothing_and_leaves_the_size_to_others(client: TestClient) -> None:
    quote(client, 99, 100, ask_size=0.3)
    fok = order(client, "fok", qty=0.5, time_in_force="FOK")
    assert (read(client, fok)["status"], read(client, fok)["filled_qty"]) == ("EXPIRED", 0)
    assert fills(client, fok) == []
    assert client.get("/execution/positions").json()["items"] == []
    after = order(client, "after", qty=0.3)
    assert read(client, after)["status"] == "FILLED"  # the size the FOK did not take


def test_fok_with_enough_size_fills_whole(client: TestClient) -> None:
    quote(client, 99, 100, ask_size=0.5)
    fok = order(client, "fok", qty=0.5, time_in_force="FOK", side="BUY")
    assert read(client, fok)["status"] == "FILLED"
    second = order(client, "second", qty=0.1, time_in_force="FOK")
    assert read(client, second)["status"] == "EXPIRED"  # the first took the whole size


def test_a_fok_limit_out_of_reach_expires(client: TestClient) -> None:
    quote(client, 99, 100)
    fok = order(client, "fok", side="SELL", type="LIMIT", limit_price=99.5, time_in_force="FOK")
    assert read(client, fok)["status"] == "EXPIRED"


@pytest.mark.parametrize("value", ["DAY", "ioc", "", None, 1])
def test_an_unknown_time_in_force_is_400(client: TestClient, value: Any) -> None:
    response = client.post(URL, json=intent(time_in_force=value))
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["errors"][0]["loc"] == ["time_in_force"]


def test_expired_orders_are_listed_by_status_and_cannot_be_canceled(client: TestClient) -> None:
    expired = order(client, "ioc", time_in_force="IOC")
    order(client, "gtc")
    listed = client.get(ORDERS, params={"status": "EXPIRED"}).json()["items"]
    assert [item["order_id"] for item in listed] == [expired]
    response = client.post(f"{ORDERS}/{expired}/cancel")
    assert response.status_code == 409
    assert "EXPIRED" in response.json()["detail"]


def test_expiry_is_logged_with_its_transition(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    quote(client, 99, 100, ask_size=0.2)
    order_id = order(client, "ioc", qty=0.5, time_in_force="IOC")
    [line] = [r for r in caplog.records if r.getMessage() == "Order expired"]
    assert line.fields["order_id"] == order_id  # type: ignore[attr-defined]
    assert line.fields["previous_status"] == "PARTIALLY_FILLED"  # type: ignore[attr-defined]
    assert line.fields["status"] == "EXPIRED"  # type: ignore[attr-defined]
    assert line.fields["filled_qty"] == 0.2  # type: ignore[attr-defined]


def test_expired_orders_are_counted_by_status(client: TestClient) -> None:
    order(client, "ioc", time_in_force="IOC")
    assert 'execution_orders{status="EXPIRED"} 1.0' in client.get("/metrics").text
