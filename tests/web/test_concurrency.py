"""Racing requests: one key yields exactly one order; unique keys are all created.

The clients here are not entered as context managers, so every request runs on its
own event loop in its own thread: the store really is called from many threads at once.
"""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from app.core.order import Order
from app.main import create_app
from app.store.memory import InMemoryStore
from tests.conftest import PLAIN, URL, intent, make_settings, market_order, race_one_key


class SlowLookups(dict[str, Order]):
    """A key map whose lookups take a millisecond: it holds the window between the
    duplicate check and the insert open, so any other thread that could slip in, does."""

    def get(self, key: str, default: Order | None = None) -> Order | None:  # type: ignore[override]
        found = super().get(key, default)
        time.sleep(0.001)  # after the lookup: what was seen may be stale by the insert
        return found


def test_many_threads_racing_one_key_create_exactly_one_order() -> None:
    store = InMemoryStore()
    store._by_key = SlowLookups()  # holds the check-to-insert window open (see below)
    client = TestClient(create_app(make_settings(), store))
    results = race_one_key(client, 32)
    assert sorted(status for status, _ in results) == [201] + [409] * 31
    assert len({order_id for _, order_id in results}) == 1
    assert store.count() == 1


def test_many_unique_keys_in_parallel_are_all_created() -> None:
    store = InMemoryStore()
    client = TestClient(create_app(make_settings(), store))

    def post(n: int) -> tuple[int, str]:
        response = client.post(URL, json=intent(idempotency_key=f"unique-{n}"))
        return response.status_code, response.json()["order_id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, range(400)))
    assert {status for status, _ in results} == {201}
    assert len({order_id for _, order_id in results}) == 400
    assert store.count() == 400
    assert all(store.get_by_key(f"unique-{n}") is not None for n in range(400))


def test_store_check_and_insert_is_atomic_even_when_slow() -> None:
    for round_no in range(5):
        store = InMemoryStore()
        store._by_key = SlowLookups()  # only the timing changes; without the lock this test fails
        barrier = threading.Barrier(8)

        def add(
            n: int, round_no: int = round_no, store: InMemoryStore = store, barrier: threading.Barrier = barrier
        ) -> bool:
            order = market_order("k", number=round_no * 100 + n)
            barrier.wait()
            return asyncio.run(store.admit(order, PLAIN, 0)).created

        with ThreadPoolExecutor(max_workers=8) as pool:
            created = list(pool.map(add, range(8)))
        assert created.count(True) == 1
        assert store.count() == 1
