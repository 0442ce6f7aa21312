"""The server raises its own soft limit on open files to the hard one."""

import resource
from collections.abc import Iterator

import pytest

from app.ops.limits import raise_open_files_limit


@pytest.fixture
def restored_limit() -> Iterator[tuple[int, int]]:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield before
    resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(restored_limit: tuple[int, int]) -> None:
    _, hard = restored_limit
    if hard != resource.RLIM_INFINITY and hard < 300:
        pytest.skip("a hard limit this low leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    raised = raise_open_files_limit()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == raised
    assert soft > 256
    assert hard in (resource.RLIM_INFINITY, soft)
