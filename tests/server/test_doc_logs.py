"""The log lines docs/operations.md shows are the ones a real server writes: the same
requests are sent to a uvicorn process, and each shown line must match one of its log
lines, in order, but for times, order ids, durations and what the document elides
(`...`)."""

import re
from pathlib import Path

import pytest

from tests.documents import blocks
from tests.payloads import URL, intent
from tests.server.test_doc_examples import learn, pattern
from tests.uvicorn_server import ROOT, Server, running_server

# The plain format's time (the spec's `%Y-%m-%d %H:%M:%S`) starts each plain line;
# `pattern` knows only ISO times.
LOG_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
DURATION = re.compile(r'("duration_ms": )[0-9.]+')
REQUEST_ID = "3f6c2a0e9b1d4c5e8f7a6b5c4d3e2f10"


def shown_blocks() -> list[list[str]]:
    return [block.text.splitlines() for block in blocks("text", [ROOT / "docs" / "operations.md"])]


def line_pattern(shown: str, ids: dict[str, str]) -> re.Pattern[str]:
    """A shown line as a pattern: `pattern`'s ids, times and `...`, with any plain log
    time and any duration."""
    shown = DURATION.sub(r"\1...", shown)
    time = LOG_TIME.match(shown)
    if time is None:
        return pattern(shown, ids)
    return re.compile(LOG_TIME.pattern + pattern(shown[time.end() :], ids).pattern, re.S)


def assert_shown_in_order(shown: list[str], log: str) -> None:
    """Each shown line matches a log line after the one the line before it matched; an
    id shown twice is the same id both times."""
    lines = log.splitlines()
    ids: dict[str, str] = {}
    at = 0
    for line in shown:
        compiled = line_pattern(line, ids)
        for index in range(at, len(lines)):
            if compiled.fullmatch(lines[index]):
                learn(line, compiled, lines[index], ids)
                at = index + 1
                break
        else:
            raise AssertionError(f"not logged (in this order):\n{line}\nlog:\n" + "\n".join(lines[at:]))


def send_the_documented_requests(server: Server, *, all_of_them: bool) -> None:
    """The intent the lines show; with `all_of_them`, its duplicate and a refused one."""
    created = intent(idempotency_key="unique-key-123")
    assert server.request("POST", URL, created, {"X-Request-ID": REQUEST_ID})[0] == 201
    if all_of_them:
        assert server.request("POST", URL, created, {"X-Request-ID": "bot-7:retry-1"})[0] == 409
        refused = intent(idempotency_key="k-2", symbol="DOGE/USDT")
        assert server.request("POST", URL, refused, {"X-Request-ID": "9a0b7c6d"})[0] == 400


def test_the_plain_log_lines_are_the_ones_shown(tmp_path: Path) -> None:
    plain, _ = shown_blocks()
    with running_server(tmp_path) as server:
        send_the_documented_requests(server, all_of_them=True)
    assert_shown_in_order(plain, server.log())


def test_the_json_log_lines_are_the_ones_shown(tmp_path: Path) -> None:
    _, as_json = shown_blocks()
    with running_server(tmp_path, {"LOG_FORMAT": "json"}) as server:
        send_the_documented_requests(server, all_of_them=False)
    assert_shown_in_order(as_json, server.log())


def test_a_line_logged_differently_is_not_found() -> None:
    plain, _ = shown_blocks()
    created = next(line for line in plain if "Order created successfully" in line)
    real = created.replace("paper-50796ce9-a684-467e-9c82-301e43b2a540", "paper-11111111-2222-3333-4444-555555555555")
    assert_shown_in_order([created], real)
    with pytest.raises(AssertionError, match="not logged"):
        assert_shown_in_order([created], real.replace('"status": "NEW"', '"status": "FILLED"'))
