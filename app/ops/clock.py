"""Time as integer microseconds since the epoch (exact, and small to store), and its
wire format: UTC ISO 8601 ending in `Z`."""

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_micros() -> int:
    return time.time_ns() // 1000


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact: integer arithmetic)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def to_datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def iso_z(micros: int) -> str:
    """`2024-01-15T10:30:00.123456Z`: always microseconds, always UTC."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_whole_second(seconds)}.{fraction:06d}Z"


# Most times formatted fall in a few recent seconds (every event and answer carries
# some): the date and time of a second is worked out once, not for every time.
@lru_cache(maxsize=4096)
def _whole_second(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()[:19]  # drop "+00:00"
