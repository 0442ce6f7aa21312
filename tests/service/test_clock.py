"""The wire format of times: microseconds since the epoch as UTC ISO 8601 with `Z`."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from app.ops.clock import iso_z, to_micros

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Year 1 to 9999: what a datetime can hold.
MICROS = st.integers(
    min_value=to_micros(datetime(1, 1, 1, tzinfo=UTC)),
    max_value=to_micros(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
)


@given(MICROS)
def test_iso_z_is_the_isoformat_of_the_moment_in_utc(micros: int) -> None:
    moment = EPOCH + timedelta(microseconds=micros)
    assert iso_z(micros) == moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_iso_z_shows_examples_as_written() -> None:
    assert iso_z(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_z(-1) == "1969-12-31T23:59:59.999999Z"
    assert iso_z(1_705_314_600_123_456) == "2024-01-15T10:30:00.123456Z"
    assert iso_z(to_micros(datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC))) == "0999-01-02T03:04:05.000006Z"
