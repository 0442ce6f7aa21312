"""Log events: the spec's line shape, fields on the LogRecord, one request line per request."""

import asyncio
import io
import json
import logging
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from app.ops.logs import EventLog, FieldsFormatter, LoopBatchingHandler
from tests.conftest import URL, intent

LINE = re.compile(
    r"(?P<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) - (?P<name>\S+) - (?P<level>[A-Z]+) - (?P<message>[^{]+?)"
    r"(?: (?P<fields>\{.*\}))?"
)


def events(caplog: pytest.LogCaptureFixture, name: str = "execution") -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == name]


def by_message(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [record for record in events(caplog) if record.getMessage() == message]


def test_received_and_created_events_carry_their_fields(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    order_id = client.post(URL, json=intent(idempotency_key="test-1"), headers={"X-Request-ID": "req-1"}).json()[
        "order_id"
    ]
    received, created = by_message(caplog, "Received order intent"), by_message(caplog, "Order created successfully")
    assert len(received) == 1
    assert len(created) == 1
    assert received[0].levelname == created[0].levelname == "INFO"
    assert received[0].fields == {  # type: ignore[attr-defined]
        "idempotency_key": "test-1",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "qty": 0.01,
        "type": "MARKET",
        "request_id": "req-1",  # after the spec's fields: every line of a request carries its id
    }
    assert created[0].fields == {  # type: ignore[attr-defined]
        "idempotency_key": "test-1",
        "order_id": order_id,
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "qty": 0.01,
        "status": "NEW",
        "request_id": "req-1",
    }
    # Each field is also an attribute of the record, for handlers that read fields.
    assert created[0].order_id == order_id  # type: ignore[attr-defined]
    assert created[0].status == "NEW"  # type: ignore[attr-defined]
    assert received[0].idempotency_key == "test-1"  # type: ignore[attr-defined]


def test_lines_have_the_spec_shape(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    client.post(URL, json=intent(idempotency_key="test-1"), headers={"X-Request-ID": "req-1"})
    formatter = FieldsFormatter()
    lines = [formatter.format(record) for record in by_message(caplog, "Received order intent")]
    match = LINE.fullmatch(lines[0])
    assert match is not None, lines[0]
    assert (match["name"], match["level"], match["message"]) == ("execution", "INFO", "Received order intent")
    # The spec's field order and JSON spacing, then the request's id.
    assert match["fields"] == (
        '{"idempotency_key": "test-1", "exchange": "binance", "symbol": "BTC/USDT", "side": "BUY", '
        '"qty": 0.01, "type": "MARKET", "request_id": "req-1"}'
    )


def test_timestamps_are_utc() -> None:
    record = logging.LogRecord("execution", logging.INFO, "", 0, "Received order intent", (), None)
    record.created = 1705314600.75  # 2024-01-15 10:30:00.75 UTC
    assert FieldsFormatter().format(record) == "2024-01-15 10:30:00 - execution - INFO - Received order intent"


def test_a_newline_in_a_field_cannot_forge_a_line() -> None:
    record = logging.LogRecord("execution", logging.INFO, "", 0, "Received order intent", (), None)
    record.fields = {"idempotency_key": 'x"}\n2024-01-15 10:30:00 - execution - INFO - Order created successfully'}
    assert "\n" not in FieldsFormatter().format(record)


def test_allowlist_rejection_is_a_warning_with_reason(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    client.post(URL, json=intent(idempotency_key="k", symbol="DOGE/USDT"))
    [rejected] = by_message(caplog, "Order intent rejected")
    assert rejected.levelname == "WARNING"
    assert rejected.fields["reason"] == "Symbol 'DOGE/USDT' not allowed"  # type: ignore[attr-defined]
    assert rejected.fields["code"] == "SYMBOL_NOT_ALLOWED"  # type: ignore[attr-defined]
    assert rejected.fields["status"] == "REJECTED"  # type: ignore[attr-defined]
    assert rejected.fields["idempotency_key"] == "k"  # type: ignore[attr-defined]
    assert not by_message(caplog, "Order created successfully")


def test_invalid_body_rejection_is_a_warning_with_reason(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    client.post(URL, json=intent(qty=-1))
    [rejected] = by_message(caplog, "Order intent rejected")
    assert rejected.levelname == "WARNING"
    assert rejected.fields["status"] == "REJECTED"  # type: ignore[attr-defined]
    assert rejected.fields["code"] == "VALIDATION_ERROR"  # type: ignore[attr-defined]
    assert "qty" in rejected.fields["reason"]  # type: ignore[attr-defined]


def test_duplicate_is_a_warning_with_the_existing_order(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    order_id = client.post(URL, json=intent(idempotency_key="d")).json()["order_id"]
    client.post(URL, json=intent(idempotency_key="d"), headers={"X-Request-ID": "retry-of-d"})
    [duplicate] = by_message(caplog, "Duplicate order intent")
    assert duplicate.levelname == "WARNING"
    assert duplicate.fields == {  # type: ignore[attr-defined]
        "idempotency_key": "d",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "side": "BUY",
        "qty": 0.01,
        "type": "MARKET",
        "order_id": order_id,
        "status": "NEW",
        "payload_matches": True,
        "request_id": "retry-of-d",
    }


def test_one_request_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    client.post(URL, json=intent())
    client.get("/healthz")
    client.get("/nope")
    lines = by_message(caplog, "HTTP request")
    assert [(r.fields["method"], r.fields["path"], r.fields["status"]) for r in lines] == [  # type: ignore[attr-defined]
        ("POST", URL, 201),
        ("GET", "/healthz", 200),
        ("GET", "/nope", 404),
    ]
    assert all(r.fields["duration_ms"] >= 0 for r in lines)  # type: ignore[attr-defined]


def test_service_name_names_the_logger(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(service_name="exec-eu")
    logging.getLogger("exec-eu").addHandler(caplog.handler)
    client.post(URL, json=intent())
    assert by_message(caplog, "Received order intent") == []
    records = events(caplog, "exec-eu")
    assert "Received order intent" in [r.getMessage() for r in records]
    assert FieldsFormatter().format(records[0]).split(" - ")[1] == "exec-eu"


def test_log_level_warning_silences_info(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(log_level="WARNING")
    client.post(URL, json=intent(idempotency_key="a"))
    client.post(URL, json=intent(idempotency_key="a"))
    assert [r.getMessage() for r in events(caplog)] == ["Duplicate order intent"]


def batching_events(stream: io.StringIO) -> EventLog:
    """Events on a logger of their own whose one handler is a LoopBatchingHandler."""
    handler = LoopBatchingHandler(stream, "batch-test")
    handler.setFormatter(FieldsFormatter())
    logger = logging.Logger("batch-test")
    logger.addHandler(handler)
    return EventLog(logger)


def test_handler_outside_an_event_loop_writes_at_once() -> None:
    stream = io.StringIO()
    batching_events(stream).info("Order created successfully", {"order_id": "paper-1"})
    assert stream.getvalue().endswith(' - batch-test - INFO - Order created successfully {"order_id": "paper-1"}\n')


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_handler_inside_an_event_loop_writes_once_per_iteration() -> None:
    stream = CountingStream()
    events_log = batching_events(stream)

    async def log_two_then_yield() -> None:
        events_log.info("first", {"n": 1})
        events_log.info("second", {"n": 2})
        assert stream.getvalue() == ""  # not yet: the loop has not come round
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(log_two_then_yield())
    assert stream.writes == 1
    lines = stream.getvalue().splitlines()
    assert [line.split(" - ")[3] for line in lines] == ['first {"n": 1}', 'second {"n": 2}']


def test_the_servers_own_lines_are_written_at_once_even_in_a_loop() -> None:
    """uvicorn re-raises SIGTERM after its last line: a batched line would die with it."""
    stream = io.StringIO()
    handler = LoopBatchingHandler(stream, "batch-test")
    handler.setFormatter(FieldsFormatter())
    service, server = logging.Logger("batch-test"), logging.Logger("uvicorn.error")
    service.addHandler(handler)
    server.addHandler(handler)

    async def log_both() -> None:
        EventLog(service).info("batched", {})
        server.info("Finished server process [%d]", 7)
        # The server's line went out at once, after the line queued before it.
        assert [line.split(" - ")[3] for line in stream.getvalue().splitlines()] == [
            "batched",
            "Finished server process [7]",
        ]

    asyncio.run(log_both())


def test_json_fields_round_trip(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    client.post(URL, json=intent(idempotency_key='quote"and\\backslash'))
    [received] = by_message(caplog, "Received order intent")
    match = LINE.fullmatch(FieldsFormatter().format(received))
    assert match is not None
    assert json.loads(match["fields"])["idempotency_key"] == 'quote"and\\backslash'


def test_lines_left_by_a_stopped_loop_are_written_by_the_next_one() -> None:
    stream = CountingStream()
    events_log = batching_events(stream)

    # The stop comes first in the iteration, so the loop ends before the flush that
    # logging queued can run.
    first_loop = asyncio.new_event_loop()
    first_loop.call_soon(first_loop.stop)
    first_loop.call_soon(events_log.info, "from the first loop", {})
    first_loop.run_forever()
    first_loop.close()
    assert stream.getvalue() == ""

    async def log_and_yield() -> None:
        events_log.info("from the second loop", {})
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(log_and_yield())
    messages = [line.split(" - ")[3] for line in stream.getvalue().splitlines()]
    assert messages == ["from the first loop", "from the second loop"]


def test_a_flood_of_lines_is_written_without_waiting_for_the_loop() -> None:
    stream = CountingStream()
    events_log = batching_events(stream)

    async def log_many() -> None:
        for n in range(LoopBatchingHandler.MAX_PENDING):
            events_log.info("line", {"n": n})
        assert len(stream.getvalue().splitlines()) == LoopBatchingHandler.MAX_PENDING

    asyncio.run(log_many())


def test_a_failing_stream_does_not_raise_into_the_loop(capsys: pytest.CaptureFixture[str]) -> None:
    class BrokenStream(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("reader went away")

    events_log = batching_events(BrokenStream())
    loop_errors: list[dict[str, object]] = []

    async def log_and_yield() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: loop_errors.append(context))
        events_log.info("lost", {})
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(log_and_yield())
    assert loop_errors == []
    assert "BrokenPipeError: reader went away" in capsys.readouterr().err


def test_service_lines_do_not_reach_root_handlers(make_client: Callable[..., TestClient]) -> None:
    root_records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            root_records.append(record)

    collector = Collect()
    logging.getLogger().addHandler(collector)
    try:
        make_client().post(URL, json=intent())
    finally:
        logging.getLogger().removeHandler(collector)
    assert [r for r in root_records if r.name == "execution"] == []
