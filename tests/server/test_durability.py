"""What the durable stores promise across restarts, crashes and several workers:
through HTTP, and through real uvicorn processes where processes are the point."""

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import URL, intent, make_settings
from tests.uvicorn_server import FreshKeyLoad, Server, all_orders, running_server, server_get

QUOTES = "/execution/market-data/quotes"
ORDERS = "/execution/orders"


def started(storage_url: str) -> TestClient:
    """An app that opens the store itself from STORAGE_URL, as `uvicorn app.main:app` does."""
    return TestClient(create_app(make_settings(storage_url=storage_url)))


def client_get(client: TestClient) -> Callable[[str], tuple[int, Any]]:
    def get(path: str) -> tuple[int, Any]:
        response = client.get(path)
        return response.status_code, response.json()

    return get


# -- restart ---------------------------------------------------------------------------


def test_orders_fills_positions_quotes_and_keys_survive_a_restart(storage_url: str) -> None:
    quote = {"exchange": "binance", "symbol": "BTC/USDT", "bid": 100.0, "ask": 101.0}
    with started(storage_url) as client:
        filled = client.post(URL, json=intent(idempotency_key="filled", qty=2)).json()["order_id"]
        resting = client.post(
            URL, json=intent(idempotency_key="resting", side="SELL", type="LIMIT", limit_price=500.0)
        ).json()["order_id"]
        canceled = client.post(URL, json=intent(idempotency_key="canceled", type="LIMIT", limit_price=1.0)).json()[
            "order_id"
        ]
        assert client.post(f"{ORDERS}/{canceled}/cancel").status_code == 200
        assert client.post(QUOTES, json=quote).status_code == 200
        before = {
            "orders": all_orders(client_get(client)),
            "fills": client.get(f"{ORDERS}/{filled}/fills").json(),
            "positions": client.get("/execution/positions").json(),
        }
    assert [o["status"] for o in before["orders"]] == ["CANCELED", "NEW", "FILLED"]  # newest first

    with started(storage_url) as client:
        after = {
            "orders": all_orders(client_get(client)),
            "fills": client.get(f"{ORDERS}/{filled}/fills").json(),
            "positions": client.get("/execution/positions").json(),
        }
        assert after == before
        # Every key is still taken, by the same order, whatever the payload now.
        for key, order_id in [("filled", filled), ("resting", resting), ("canceled", canceled)]:
            response = client.post(URL, json=intent(idempotency_key=key, qty=7))
            assert response.status_code == 409
            assert response.json()["order_id"] == order_id
        # The latest quote survived too: a market order fills on it at once, at the ask.
        late_id = client.post(URL, json=intent(idempotency_key="late")).json()["order_id"]
        late = client.get(f"{ORDERS}/{late_id}").json()
        assert late["status"] == "FILLED"
        assert late["avg_fill_price"] == 101.0
        # The resting order still rests, and still fills when the market reaches it.
        fills = client.post(QUOTES, json={**quote, "bid": 600.0, "ask": 601.0}).json()["items"]
        assert [f["order_id"] for f in fills] == [resting]
        assert len(all_orders(client_get(client))) == 4


# -- crash -----------------------------------------------------------------------------


def test_a_sigkilled_server_keeps_every_order_it_acknowledged(tmp_path: Path) -> None:
    """Threads post fresh keys; the server is killed mid-load. Every 201 must be on
    disk after the restart, and no key may name two orders."""
    env = {"STORAGE_URL": f"sqlite:///{tmp_path / 'orders.db'}"}
    with running_server(tmp_path, env) as server:
        load = FreshKeyLoad(server, "crash")
        load.wait_for(300)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        load.join()
    acknowledged, in_flight = load.acknowledged, load.cut_off
    assert set(load.statuses) == {201}
    assert len(acknowledged) >= 300
    assert in_flight, "the kill should cut off requests in flight"

    with running_server(tmp_path, env) as server:
        orders = all_orders(server_get(server))
        by_key = Counter(order["idempotency_key"] for order in orders)
        assert max(by_key.values()) == 1, "a key names two orders"
        stored = {order["idempotency_key"]: order["order_id"] for order in orders}
        missing = {key for key in acknowledged if stored.get(key) != acknowledged[key]}
        assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
        assert set(stored) <= set(acknowledged) | set(in_flight)
        # Retrying a cut-off request is safe: it creates the order or names the stored one.
        for key in in_flight:
            status, body = server.request("POST", URL, intent(idempotency_key=key))
            assert (status, body["order_id"]) == ((409, stored[key]) if key in stored else (201, body["order_id"]))


# -- several workers --------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def worker_pids(server: Server, count: int) -> list[int]:
    """The uvicorn supervisor's worker processes, once all have started."""
    pid = server.process.pid
    deadline = time.monotonic() + 30
    while True:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        # Workers are spawned processes; multiprocessing's resource tracker is not one.
        children = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        started_workers = server.log().count("Application startup complete")
        if len(children) >= count and started_workers >= count:
            return children
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker CPU time from /proc (Linux)")
def test_two_workers_racing_the_same_keys_create_one_order_per_key(storage_url: str, tmp_path: Path) -> None:
    keys, racers = [f"race-{n}" for n in range(40)], 6
    with running_server(tmp_path, {"STORAGE_URL": storage_url}, "--workers", "2") as server:
        workers = worker_pids(server, 2)
        ticks_before = {pid: cpu_ticks(pid) for pid in workers}

        def race(key: str) -> list[tuple[int, Any]]:
            barrier = threading.Barrier(racers)

            def post() -> tuple[int, Any]:
                barrier.wait(timeout=30)
                return server.request("POST", URL, intent(idempotency_key=key))

            with ThreadPoolExecutor(racers) as pool:
                return list(pool.map(lambda _: post(), range(racers)))

        answers = {key: race(key) for key in keys}
        ticks_after = {pid: cpu_ticks(pid) for pid in workers}
        # Both workers took requests, or the race proved nothing about sharing a store.
        assert all(ticks_after[pid] > ticks_before[pid] for pid in workers), (ticks_before, ticks_after)

        for key, results in answers.items():
            statuses = Counter(status for status, _ in results)
            assert statuses == {201: 1, 409: racers - 1}, (key, results)
            assert len({body["order_id"] for _, body in results}) == 1, (key, results)
        orders = all_orders(server_get(server))
        assert sorted(order["idempotency_key"] for order in orders) == sorted(keys)


def test_the_memory_store_with_two_workers_is_two_stores(tmp_path: Path) -> None:
    """Why the README says so: each worker answers from its own memory."""
    with running_server(tmp_path, {"STORAGE_URL": "memory://"}, "--workers", "2") as server:
        worker_pids(server, 2)
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        n = 0
        # Post fresh keys until some worker reports fewer orders than were accepted.
        while not seen and time.monotonic() < deadline:
            assert server.request("POST", URL, intent(idempotency_key=f"m-{n}"))[0] == 201
            n += 1
            with ThreadPoolExecutor(4) as pool:
                counts = list(pool.map(lambda _: len(all_orders(server_get(server))), range(8)))
            seen = {c for c in counts if c < n}
        assert seen, "both workers answered with every order: they do not look like two stores"
