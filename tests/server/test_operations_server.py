"""Operations through real uvicorn processes: JSON logs (uvicorn's lines included), the
token kept out of the log, metrics added up across two workers, graceful SIGTERM."""

import json
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import URL, intent
from tests.uvicorn_server import FreshKeyLoad, Server, all_orders, running_server, server_get

TOKEN = "server-token-abcdefghijklmnop"


def test_json_logs_are_one_object_per_line_uvicorn_lines_included(tmp_path: Path) -> None:
    with running_server(tmp_path, {"LOG_FORMAT": "json"}) as server:
        status, _, _ = server.fetch("POST", URL, intent(idempotency_key="j-1"), {"X-Request-ID": "json-req"})
        assert status == 201
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert all(set(line) >= {"timestamp", "level", "logger", "message", "fields"} for line in lines)
    assert all(line["timestamp"].endswith("Z") for line in lines)
    messages = {(line["logger"], line["message"]) for line in lines}
    assert ("uvicorn.error", "Application startup complete.") in messages
    assert ("uvicorn.error", "Application shutdown complete.") in messages
    mine = [line for line in lines if line["fields"].get("request_id") == "json-req"]
    assert [line["message"] for line in mine] == ["Received order intent", "Order created successfully", "HTTP request"]
    assert mine[0]["fields"]["idempotency_key"] == "j-1"


def test_with_workers_the_supervisors_lines_are_json_too(tmp_path: Path) -> None:
    """The supervisor never loads the app; app/uvicorn_logging.json gives it the format."""
    extra = ("--workers", "2", "--log-config", "app/uvicorn_logging.json")
    with running_server(tmp_path, {"LOG_FORMAT": "json"}, *extra) as server:
        assert server.request("POST", URL, intent())[0] == 201
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    messages = [line["message"] for line in lines if line["logger"] == "uvicorn.error"]
    assert any(message.startswith("Started parent process") for message in messages), messages
    assert any(message.startswith("Started server process") for message in messages), messages
    assert any(line["message"] == "Order created successfully" for line in lines)


def test_the_token_stays_out_of_the_servers_log(tmp_path: Path) -> None:
    with running_server(tmp_path, {"EXECUTION_API_TOKEN": TOKEN}) as server:
        status, _, _ = server.fetch("POST", URL, intent(), {"Authorization": f"Bearer {TOKEN}"})
        assert status == 201
        status, _, body = server.fetch("POST", URL, intent(), {"Authorization": f"Bearer {TOKEN}-wrong"})
        assert status == 401
        assert TOKEN not in body.decode()
    assert "HTTP request" in server.log()
    assert TOKEN[:10] not in server.log()


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, _, body = server.fetch("GET", "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_metrics_add_up_every_workers_counts(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"STORAGE_URL": f"sqlite:///{tmp_path / 'orders.db'}", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with running_server(tmp_path, env, "--workers", "2") as server:
        # Concurrent posts until both workers have counted some (which worker accepts a
        # connection is the kernel's choice): each keeps its counts in its own file.
        created = 0
        with ThreadPoolExecutor(max_workers=8) as pool:
            for batch in range(50):
                keys = [f"m-{batch}-{n}" for n in range(8)]
                statuses = list(pool.map(lambda key: server.request("POST", URL, intent(idempotency_key=key))[0], keys))
                created += statuses.count(201)
                if len([p for p in metrics_dir.iterdir() if p.name.startswith("counter_")]) == 2:
                    break
        assert len([p for p in metrics_dir.iterdir() if p.name.startswith("counter_")]) == 2
        server.request("POST", URL, intent(idempotency_key="m-0-0"))
        # Whichever worker answers the scrape adds up both.
        for _ in range(6):
            metrics = scrape(server)
            assert metrics[("execution_order_intents_total", (("outcome", "created"), ("reason", "")))] == created
            assert metrics[("execution_order_intents_total", (("outcome", "duplicate"), ("reason", "")))] == 1
            assert metrics[("execution_store_orders", ())] == created
            assert metrics[("execution_orders", (("status", "NEW"),))] == created


def test_sigterm_finishes_in_flight_requests_and_loses_no_acknowledged_order(tmp_path: Path) -> None:
    env = {"STORAGE_URL": f"sqlite:///{tmp_path / 'orders.db'}"}
    with running_server(tmp_path, env) as server:
        load = FreshKeyLoad(server, "term")
        load.wait_for(200)
        server.process.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then raises the signal again: the parent sees a SIGTERM death.
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        load.join()
    acknowledged, unanswered, answers = load.acknowledged, load.cut_off, load.statuses
    log = server.log()
    assert "Application shutdown complete" in log
    assert "Finished server process" in log  # the last line, written before the process ended
    assert "Traceback" not in log
    assert set(answers) == {201}, answers  # every answered request was answered in full, no 5xx
    assert len(acknowledged) >= 200

    with running_server(tmp_path, env) as server:
        orders = all_orders(server_get(server))
        assert max(Counter(order["idempotency_key"] for order in orders).values()) == 1
        stored = {order["idempotency_key"]: order["order_id"] for order in orders}
        assert all(stored.get(key) == order_id for key, order_id in acknowledged.items())
        assert set(stored) <= set(acknowledged) | set(unanswered)
