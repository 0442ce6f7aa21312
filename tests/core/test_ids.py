"""Order ids are `paper-` and a canonical UUID4; only that exact form maps back."""

import uuid

import pytest

from app.core.ids import format_order_id, parse_order_id
from app.store.ids import new_number


def test_new_ids_are_canonical_uuid4() -> None:
    for _ in range(200):
        number = new_number()
        order_id = format_order_id(number)
        parsed = uuid.UUID(order_id.removeprefix("paper-"))
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == order_id.removeprefix("paper-")
        assert parse_order_id(order_id) == number


@pytest.mark.parametrize(
    "text",
    [
        "",
        "paper-",
        "a1b2c3d4-e5f6-4890-abcd-ef1234567890",
        "paper-A1B2C3D4-E5F6-4890-ABCD-EF1234567890",
        "paper-a1b2c3d4e5f64890abcdef1234567890",
        "paper-{a1b2c3d4-e5f6-4890-abcd-ef1234567890}",
        "paper-a1b2c3d4-e5f6-1890-abcd-ef1234567890",
        "paper-a1b2c3d4-e5f6-4890-abcd-ef1234567890\n",
        "live-a1b2c3d4-e5f6-4890-abcd-ef1234567890",
    ],
)
def test_other_forms_are_not_order_ids(text: str) -> None:
    assert parse_order_id(text) is None
