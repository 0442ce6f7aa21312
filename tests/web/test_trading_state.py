"""The kill switch: ACTIVE, REDUCING and HALTED, set at start-up and at run time, shared
by every worker of a shared store, kept across restarts."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import URL, intent, make_settings
from tests.server.test_durability import cpu_ticks, started, worker_pids
from tests.uvicorn_server import all_orders, running_server, server_get
from tests.web.test_fills import ORDERS, order, quote, read

STATE = "/execution/trading-state"


def set_state(client: TestClient, state: str, **extra: Any) -> dict[str, Any]:
    response = client.put(STATE, json={"state": state, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refusal(client: TestClient, **fields: Any) -> tuple[int, str | None]:
    response = client.post(URL, json=intent(**fields))
    return response.status_code, response.json().get("code")


def test_active_by_default(client: TestClient) -> None:
    body = client.get(STATE).json()
    assert (body["state"], body["reason"]) == ("ACTIVE", None)
    assert body["updated_ts_utc"].endswith("Z")


def test_halted_refuses_every_intent_but_a_retry_still_finds_its_order(client: TestClient) -> None:
    accepted = order(client, "before")
    body = set_state(client, "HALTED", reason="runaway bot")
    assert (body["state"], body["reason"]) == ("HALTED", "runaway bot")
    assert client.get(STATE).json() == body
    response = client.post(URL, json=intent(idempotency_key="after"))
    assert response.status_code == 400
    assert response.json()["code"] == "TRADING_HALTED"
    assert "runaway bot" in response.json()["detail"]
    retry = client.post(URL, json=intent(idempotency_key="before"))  # duplicate check comes first
    assert (retry.status_code, retry.json()["order_id"]) == (409, accepted)
    assert client.get(ORDERS, params={"idempotency_key": "after"}).json()["items"] == []  # key not taken
    set_state(client, "ACTIVE", reason="fixed")
    assert client.post(URL, json=intent(idempotency_key="after")).status_code == 201


def test_halt_does_not_stop_resting_orders_filling(client: TestClient) -> None:
    resting = order(client, "resting", type="LIMIT", limit_price=90.0)
    set_state(client, "HALTED")
    quote(client, 89, 90)
    assert read(client, resting)["status"] == "FILLED"


def test_capabilities_are_degraded_while_not_active(client: TestClient) -> None:
    set_state(client, "HALTED", reason="desk says stop")
    body = client.get("/capabilities").json()
    assert body["status"] == "degraded"
    assert body["degraded_reason"] == "trading is HALTED (desk says stop): every new order intent is refused"
    set_state(client, "REDUCING", reason="end of day")
    assert client.get("/capabilities").json()["degraded_reason"] == (
        "trading is REDUCING (end of day): only reducing intents are accepted"
    )
    set_state(client, "ACTIVE")
    assert client.get("/capabilities").json()["status"] == "ok"


def test_reducing_accepts_only_what_shrinks_the_position(client: TestClient) -> None:
    quote(client, 99, 100)
    order(client, "long", qty=1.0)  # filled: long 1
    set_state(client, "REDUCING")
    assert refusal(client, idempotency_key="grow", qty=0.1) == (400, "REDUCE_ONLY")
    assert refusal(client, idempotency_key="flip", side="SELL", qty=1.5) == (400, "REDUCE_ONLY")
    # A resting SELL counts as filled: 1 - 0.4 leaves 0.6 to reduce.
    order(client, "rest", side="SELL", type="LIMIT", limit_price=105.0, qty=0.4)
    assert refusal(client, idempotency_key="past", side="SELL", qty=0.7) == (400, "REDUCE_ONLY")
    order(client, "exact", side="SELL", qty=0.6)
    assert client.get("/execution/positions").json()["items"][0]["qty"] == pytest.approx(0.4)
    # Flat with the open SELL: nothing more reduces.
    assert refusal(client, idempotency_key="more", side="SELL", qty=0.1) == (400, "REDUCE_ONLY")


def test_reducing_with_no_position_refuses_everything(client: TestClient) -> None:
    set_state(client, "REDUCING")
    assert refusal(client, idempotency_key="a") == (400, "REDUCE_ONLY")
    assert refusal(client, idempotency_key="b", side="SELL") == (400, "REDUCE_ONLY")


def test_cancel_open_orders_cancels_every_resting_order(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    quote(client, 99, 100)
    filled = order(client, "filled")
    resting = [
        order(client, "r1", type="LIMIT", limit_price=90.0),
        order(client, "r2", side="SELL", type="LIMIT", limit_price=110.0, symbol="ETH/USDT"),
    ]
    set_state(client, "HALTED", reason="stop", cancel_open_orders=True)
    assert [read(client, order_id)["status"] for order_id in resting] == ["CANCELED", "CANCELED"]
    assert read(client, filled)["status"] == "FILLED"
    lines = [r for r in caplog.records if r.getMessage() == "Order canceled"]
    assert sorted(line.fields["order_id"] for line in lines) == sorted(resting)  # type: ignore[attr-defined]
    assert {line.fields["reason"] for line in lines} == {"cancel_open_orders with trading state HALTED"}  # type: ignore[attr-defined]
    [change] = [r for r in caplog.records if r.getMessage() == "Trading state changed"]
    assert change.fields["canceled_orders"] == 2  # type: ignore[attr-defined]
    assert change.levelname == "WARNING"


@pytest.mark.parametrize(
    "body",
    [
        {"state": "PAUSED"},
        {"state": "halted"},
        {},
        {"state": "HALTED", "extra": 1},
        {"state": "HALTED", "cancel_open_orders": "yes"},
        {"state": "HALTED", "reason": "line\nbreak"},
        {"state": "HALTED", "reason": ""},
        [],
    ],
)
def test_a_bad_change_is_400_and_changes_nothing(client: TestClient, body: Any) -> None:
    response = client.put(STATE, json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert client.get(STATE).json()["state"] == "ACTIVE"


def test_trading_state_is_behind_the_token(make_client: Callable[..., TestClient]) -> None:
    client = make_client(execution_api_token="a-long-enough-token")
    assert client.put(STATE, json={"state": "HALTED"}).status_code == 401
    assert client.get(STATE).status_code == 401
    auth = {"Authorization": "Bearer a-long-enough-token"}
    assert client.put(STATE, json={"state": "HALTED"}, headers=auth).status_code == 200


def test_trading_state_at_start_up(make_client: Callable[..., TestClient]) -> None:
    client = make_client(trading_state="halted")
    body = client.get(STATE).json()
    assert (body["state"], body["reason"]) == ("HALTED", "TRADING_STATE at start-up")
    assert refusal(client) == (400, "TRADING_HALTED")
    assert "trading_state" in client.get("/capabilities").json()["features"]


def test_a_stored_halt_survives_restart_and_start_up_cannot_lift_it(storage_url: str) -> None:
    with started(storage_url) as client:
        set_state(client, "HALTED", reason="operator")
    with started(storage_url) as client:
        assert client.get(STATE).json()["reason"] == "operator"
    with TestClient(create_app(make_settings(storage_url=storage_url, trading_state="ACTIVE"))) as client:
        assert client.get(STATE).json()["state"] == "HALTED"
        assert refusal(client) == (400, "TRADING_HALTED")
        set_state(client, "ACTIVE")  # only an explicit change resumes trading
    with TestClient(create_app(make_settings(storage_url=storage_url, trading_state="REDUCING"))) as client:
        assert client.get(STATE).json()["state"] == "REDUCING"


def test_a_halt_racing_intents_leaves_no_order_open(client: TestClient) -> None:
    """Intents racing a halt with cancel_open_orders: each is either refused, or
    admitted before the halt and then canceled by it; none stays open."""
    barrier = threading.Barrier(9)

    def post(n: int) -> int:
        barrier.wait()
        body = intent(idempotency_key=f"k{n}", type="LIMIT", limit_price=90.0)
        return client.post(URL, json=body).status_code

    def halt() -> int:
        barrier.wait()
        return client.put(STATE, json={"state": "HALTED", "cancel_open_orders": True}).status_code

    with ThreadPoolExecutor(9) as pool:
        posted = [pool.submit(post, n) for n in range(8)]
        halted = pool.submit(halt)
        statuses = [future.result() for future in posted]
    assert halted.result() == 200
    assert set(statuses) <= {201, 400}
    orders = client.get(ORDERS).json()["items"]
    assert len(orders) == statuses.count(201)
    assert all(item["status"] == "CANCELED" for item in orders)


def test_a_halt_set_through_one_worker_is_obeyed_by_the_other(
    storage_url: str,
    tmp_path: Path,
) -> None:
    with running_server(tmp_path, {"STORAGE_URL": storage_url}, "--workers", "2") as server:
        workers = worker_pids(server, 2)
        assert server.request("PUT", STATE, {"state": "HALTED", "reason": "one worker"})[0] == 200
        ticks = {pid: cpu_ticks(pid) for pid in workers}
        answers = []
        # Fresh connections, until both workers have answered some (the kernel picks).
        while len(answers) < 400 and not all(cpu_ticks(pid) > ticks[pid] + 2 for pid in workers):
            answers += [server.request("POST", URL, intent(idempotency_key=f"w{len(answers)}")) for _ in range(10)]
        assert all(cpu_ticks(pid) > ticks[pid] for pid in workers), "one worker took every request"
        assert {(status, body["code"]) for status, body in answers} == {(400, "TRADING_HALTED")}
        assert all_orders(server_get(server)) == []


def test_reducing_counts_orders_that_rested_before_it(client: TestClient) -> None:
    """The first check that needs open orders counts the ones already resting."""
    quote(client, 99, 100)
    order(client, "long", qty=1.0)
    order(client, "rest", side="SELL", type="LIMIT", limit_price=105.0, qty=0.4)
    set_state(client, "REDUCING")
    assert refusal(client, idempotency_key="past", side="SELL", qty=0.7) == (400, "REDUCE_ONLY")
    order(client, "exact", side="SELL", qty=0.6)
    assert refusal(client, idempotency_key="more", side="SELL", qty=0.1) == (400, "REDUCE_ONLY")
