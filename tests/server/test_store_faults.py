"""A database that stops answering without closing its connections (every PostgreSQL
process frozen with SIGSTOP): requests that need it get a 503 within STORE_TIMEOUT_MS,
the rest are served meanwhile, and the service recovers by itself when the database
answers again, with nothing acknowledged lost and no intent stored twice."""

import time
import uuid
from pathlib import Path

from harness.postgres import frozen
from tests.payloads import URL, intent
from tests.uvicorn_server import EXAMPLE_ENV, running_server

ORDERS = "/execution/orders"
RECOVERY_SECONDS = 60  # the longest the test waits for the service to take intents again


def test_a_frozen_database_is_answered_503_and_the_service_recovers_by_itself(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {**EXAMPLE_ENV, "STORAGE_URL": postgres_url, "STORE_TIMEOUT_MS": "1000"}
    before, during = f"before-{uuid.uuid4()}", f"during-{uuid.uuid4()}"
    with running_server(tmp_path, env) as server:
        status, kept = server.request("POST", URL, intent(idempotency_key=before))
        assert status == 201

        with frozen(postgres_url):
            # Each of these would wait for the database for good without the deadline
            # (the client gives up after 10 s and the test fails).
            status, body = server.request("POST", URL, intent(idempotency_key=during))
            assert (status, body["code"]) == (503, "STORE_UNAVAILABLE"), body
            assert "same idempotency_key" in body["detail"]
            status, body = server.request("GET", f"{ORDERS}/{kept['order_id']}")
            assert (status, body["code"]) == (503, "STORE_UNAVAILABLE"), body
            # What needs no database is served meanwhile.
            status, body = server.request("GET", "/healthz")
            assert (status, body["status"]) == (200, "ok")
            status, body = server.request("GET", "/capabilities")
            assert status == 200
            assert body["status"] == "degraded"
            assert "did not answer" in body["degraded_reason"]

        # The client retries the unanswered intent with the same key until the service
        # answers it: stored then (409, naming its order) or now (201), never twice.
        deadline = time.monotonic() + RECOVERY_SECONDS
        while True:
            status, body = server.request("POST", URL, intent(idempotency_key=during))
            if status != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status in (201, 409), body
        status, found = server.request("GET", f"{ORDERS}?idempotency_key={during}")
        assert status == 200
        assert len(found["items"]) == 1
        status, again = server.request("GET", f"{ORDERS}/{kept['order_id']}")
        assert status == 200
        assert again["idempotency_key"] == before
        status, after = server.request("POST", URL, intent(idempotency_key=f"after-{uuid.uuid4()}"))
        assert status == 201, after
