"""Every error answer carries a stable `code` beside its `detail`, and every code is
one the OpenAPI document lists."""

from typing import get_args

from fastapi.testclient import TestClient

import app.web.app  # noqa: F401  (imports every module that defines an error)
from app.core.errors import IntentRefused, MarketDataRefused, ServiceError
from app.service.errors import InstrumentNotAllowed
from app.web.schemas import ErrorCode
from tests.conftest import URL, intent

# Their code is given per refusal (the control, which allowlist, why market data is
# refused), not per class.
CODE_PER_INSTANCE = {IntentRefused, InstrumentNotAllowed, MarketDataRefused}


def every_error_class() -> set[type[ServiceError]]:
    found: set[type[ServiceError]] = set()
    pending = [ServiceError]
    while pending:
        for kind in pending.pop().__subclasses__():
            found.add(kind)
            pending.append(kind)
    return found


def test_every_error_class_has_a_listed_code() -> None:
    listed = set(get_args(ErrorCode))
    classes = every_error_class() - CODE_PER_INSTANCE
    assert len(classes) > 10
    assert {kind.__name__: kind.code for kind in classes if kind.code not in listed} == {}


def test_not_found_and_conflicts_carry_codes(client: TestClient) -> None:
    assert client.get("/no/such/path").json() == {"detail": "Not Found", "code": "NOT_FOUND"}
    missing = client.get("/execution/orders/paper-00000000-0000-0000-0000-000000000000")
    assert (missing.status_code, missing.json()["code"]) == (404, "ORDER_NOT_FOUND")
    created = client.post(URL, json=intent(type="LIMIT", limit_price=1.0)).json()
    duplicate = client.post(URL, json=intent(type="LIMIT", limit_price=1.0))
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "DUPLICATE_IDEMPOTENCY_KEY")
    assert client.post(f"/execution/orders/{created['order_id']}/cancel").status_code == 200
    again = client.post(f"/execution/orders/{created['order_id']}/cancel")
    assert (again.status_code, again.json()["code"], again.json()["status"]) == (
        409,
        "ORDER_NOT_CANCELABLE",
        "CANCELED",
    )
