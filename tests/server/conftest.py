"""Fixtures the real-server tests share."""

from pathlib import Path

import pytest

from tests.conftest import empty_postgres_store


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A durable store's URL, with nothing in it yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}"
    url: str = request.getfixturevalue("postgres_url")
    empty_postgres_store(url).close()
    return url
