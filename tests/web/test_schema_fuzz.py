"""The service against its own OpenAPI document: schemathesis generates requests from
it, schema-valid and schema-invalid, and runs every check it has: no 5xx, no status
code the document does not list, no response that breaks its schema, every
schema-valid request accepted and every schema-invalid one refused."""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.adapter.parameters import OpenApiParameter
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from app.main import create_app
from tests.conftest import make_settings, open_test_store

TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 40  # per operation and mode
# A quote's ask must not be below its bid, and a book's levels come best first: rules
# between values that JSON Schema cannot state, so a schema-valid crossed quote or
# unordered book is refused (tests/web/test_fills.py and test_books.py check those
# 400s). Every other check still runs on them.
QUOTES = "/execution/market-data/quotes"
BOOKS = "/execution/market-data/books"
# A print is refused as out of order after any later market data (a 409 the schema
# cannot foresee), like a quote or a book.
TRADES = "/execution/market-data/trades"
# The event stream never ends, so a client that reads whole answers (as this one does)
# would wait forever: it is tested against a real server (tests/server/test_event_stream.py).
STREAM = "/execution/events/stream"
# Whether a schema-valid `after` is answered depends on the journal, not the schema: a
# seq beyond its newest is a 410 (tests/web/test_events.py checks it).
STATEFUL = {QUOTES, BOOKS, TRADES, "/execution/events", "/execution/fills"}


@pytest.fixture(params=["memory", "postgresql"])
def api_schema(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenApiSchema]:
    """The document of an app with a token, on the memory store and on PostgreSQL (the
    strictest about what text it stores)."""
    store = open_test_store(request.param, tmp_path, request)
    app = create_app(make_settings(execution_api_token=TOKEN, log_level="ERROR"), store)
    with TestClient(app):  # runs the lifespan
        yield schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)
    store.close()


# schemathesis's own pytest plugin (schema.parametrize) does not run under this pytest;
# each operation's strategy is driven by hypothesis directly instead.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_its_documents_promises(api_schema: OpenApiSchema, mode: GenerationMode) -> None:
    operations = [op for result in api_schema.get_all_operations() if (op := result.ok()).path != STREAM]
    assert len(operations) >= 9
    tried = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def keeps_promises(case: schemathesis.Case) -> None:
            excluded = [positive_data_acceptance] if case.operation.path in STATEFUL else []
            response = case.call(headers=AUTH)
            if mode is GenerationMode.NEGATIVE and _sent_query_is_valid(case, response.request.url):
                excluded.append(negative_data_rejection)
            case.validate_response(response, headers=AUTH, excluded_checks=excluded)

        try:
            keeps_promises()
        except Unsatisfiable:
            # No request breaks this operation's schema (no parameters, or only free text).
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        tried.append(operation.label)
    assert {"POST /execution/order-intents", f"POST {QUOTES}", "GET /execution/orders"} <= set(tried)


def _sent_query_is_valid(case: schemathesis.Case, url: object) -> bool:
    """schemathesis sometimes makes a query "negative" in a way the wire cannot carry: an
    extra parameter with a null value is left out of the URL, and a list where text is
    declared is sent as its text, which may be valid text. For a GET whose only inputs
    are its query: when every parameter sent is declared, sent once and valid as sent,
    the request was a valid one and its 200 is right. Anything else is still checked."""
    if case.method.upper() != "GET" or case.path_parameters:
        return False
    declared = {parameter.name: parameter for parameter in case.operation.query}
    sent = parse_qsl(urlsplit(str(url)).query, keep_blank_values=True)
    names = [name for name, _ in sent]
    if len(names) != len(set(names)) or not set(names) <= set(declared):
        return False
    return all(_valid_as_sent(declared[name], value) for name, value in sent)


def _valid_as_sent(parameter: OpenApiParameter, value: str) -> bool:
    # A query value is text on the wire; an integer parameter reads it as a number.
    return parameter.is_valid(value) or (value.isascii() and value.isdigit() and parameter.is_valid(int(value)))
