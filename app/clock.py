"""UTC timestamps in the wire format: ISO 8601 ending in `Z`."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_z(moment: datetime) -> str:
    """`2024-01-15T10:30:00.123456Z` for an aware datetime (always microseconds)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return f"{moment.isoformat(timespec='microseconds')[:-6]}Z"  # drop "+00:00"
