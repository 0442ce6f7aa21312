"""Every console session in the README and docs/ runs as written against a real server,
and each answer must be the one shown, but for order and fill ids and times: a stale
example fails here.

A session is a ```console block. It gets its own freshly started service (the example
allowlists, plus what the block says with a `$ # started with NAME=value ...` comment or
an `export`); the service starts at the block's first command that calls it. In an answer
as shown, `...` stands for anything; an id shown once stands for the id the service
gave, and the same id shown later must be that same id (commands that use it are sent
with the real one). A command shown with no answer must succeed. The event stream's
`curl -N` and the Python follower are run by tests/server/test_readme_events.py.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.servers import ROOT, free_port, running_uvicorn
from tests.documents import blocks
from tests.uvicorn_server import APP, EXAMPLE_ENV

SHOWN_HOST = "localhost:8001"
ID = r"(?:paper|fill)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"
# What varies from run to run in a shown answer, and `...`.
VARYING = re.compile(rf"(?P<id>{ID})|(?P<time>{TIME})|(?P<any>\.\.\.)")
STARTED_WITH = "# started with "
# A token for `export EXECUTION_API_TOKEN=...`: the example leaves its value out.
TOKEN = "doc-example-token-0123456789"
GENERATED = "execution_client"


@dataclass
class Step:
    command: str
    shown: str  # the answer as the document shows it ('' when it shows none)


@dataclass
class Session:
    where: str  # file:line, for the test's id
    steps: list[Step] = field(default_factory=list)


def sessions() -> list[Session]:
    found: list[Session] = []
    for block in blocks("console"):
        session = Session(block.where, parse(block.text))
        if any("curl -N" in step.command for step in session.steps):
            continue  # a stream: tests/server/test_readme_events.py
        found.append(session)
    return found


def parse(block: str) -> list[Step]:
    """The block's commands, each with the lines shown after it. A command goes on over
    several lines while it ends with a backslash or a quote is still open."""
    steps: list[Step] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        command = lines[i][2:]
        while command.endswith("\\") or not complete(command):
            i += 1
            command = command + "\n" + lines[i]  # bash reads it as written
        i += 1
        shown: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        steps.append(Step(command, "\n".join(shown).strip("\n")))
    return steps


def python_using(document: str, package: str) -> list[str]:
    """The document's ```python blocks that import `package`."""
    return [block.text for block in blocks("python", [ROOT / document]) if f"from {package}" in block.text]


def complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # no closing quotation
        return False
    return True


def pattern(shown: str, ids: dict[str, str]) -> re.Pattern[str]:
    """`shown` as a pattern: ids seen before are the real ones, a new id is a group."""
    parts: list[str] = []
    groups: dict[str, str] = {}
    end = 0
    for match in VARYING.finditer(shown):
        parts.append(re.escape(shown[end : match.start()]))
        end = match.end()
        if match["any"]:
            parts.append(".*")
        elif match["time"]:
            parts.append(TIME)
        elif match["id"] in ids:
            parts.append(re.escape(ids[match["id"]]))
        elif match["id"] in groups:
            parts.append(f"(?P={groups[match['id']]})")
        else:
            groups[match["id"]] = f"id{len(groups)}"
            parts.append(f"(?P<{groups[match['id']]}>{ID})")
    parts.append(re.escape(shown[end:]))
    return re.compile("".join(parts), re.S)


def learn(shown: str, compiled: re.Pattern[str], answer: str, ids: dict[str, str]) -> None:
    """Record which real id each new id shown in `shown` stands for."""
    match = compiled.fullmatch(answer)
    assert match is not None
    names = iter(match.groupdict().items())
    for shown_id in dict.fromkeys(m["id"] for m in VARYING.finditer(shown) if m["id"] and m["id"] not in ids):
        _, real = next(names)
        ids[shown_id] = real


@pytest.fixture(scope="module")
def curl() -> str:
    found = shutil.which("curl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is needed to run the documented examples")
        pytest.skip("curl is not installed")
    return found


@pytest.mark.parametrize("session", sessions(), ids=lambda session: session.where)
def test_the_documented_session_answers_as_shown(session: Session, curl: str, tmp_path: Path) -> None:
    port = free_port()
    host = f"127.0.0.1:{port}"
    env = {**EXAMPLE_ENV}
    shell_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    ids: dict[str, str] = {}

    def local(text: str) -> str:
        """A command as run here: this server, these files, the real ids."""
        text = text.replace(SHOWN_HOST, host).replace("/tmp/", f"{tmp_path}/")
        for shown_id, real in ids.items():
            text = text.replace(shown_id, real)
        return text

    with ExitStack() as running:
        started = False
        for step in session.steps:
            command = step.command.strip()
            if command.startswith(STARTED_WITH) or command.startswith("export "):
                words = shlex.split(local(command.removeprefix("export ").removeprefix(STARTED_WITH)), comments=True)
                for name, _, value in (word.partition("=") for word in words):
                    env[name] = shell_env[name] = TOKEN if value == "..." else value
                continue
            if command.startswith("#"):
                continue
            if SHOWN_HOST in command and not started:
                running.enter_context(running_uvicorn(APP, port, log=tmp_path / "server.log", env=env))
                started = True
            done = subprocess.run(
                ["bash", "-c", local(command)],
                cwd=tmp_path,
                env=shell_env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, (step.command, done.stdout, done.stderr)
            if not step.shown:
                continue
            answer = done.stdout.replace("\r\n", "\n").strip("\n")  # headers (`curl -D -`) end in CRLF
            compiled = pattern(step.shown, ids)
            assert compiled.fullmatch(answer), (
                f"{session.where}: {step.command}\nshown:  {step.shown}\nanswer: {answer}"
            )
            learn(step.shown, compiled, answer, ids)
        # A client generated by the session: the document's Python that uses it runs too.
        if (tmp_path / GENERATED).is_dir():
            for code in python_using(session.where.split(":")[0], GENERATED):
                done = subprocess.run(
                    [sys.executable, "-c", code.replace(f"http://{SHOWN_HOST}", f"http://{host}")],
                    cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
                )  # fmt: skip
                assert done.returncode == 0, (code, done.stdout, done.stderr)
    assert started, f"{session.where} never calls the service"


def test_the_parser_reads_quoted_lines_and_answers() -> None:
    steps = parse('$ # a comment\n$ curl -d \'{"a": 1,\n   "b": 2}\' x \\\n    -s\n{"ok": true} 200\n\n$ true\n')
    assert [(step.command, step.shown) for step in steps] == [
        ("# a comment", ""),
        ('curl -d \'{"a": 1,\n   "b": 2}\' x \\\n    -s', '{"ok": true} 200'),
        ("true", ""),
    ]


def test_an_answer_differing_in_more_than_ids_and_times_does_not_match() -> None:
    ids: dict[str, str] = {}
    shown = '{"order_id":"paper-00000000-0000-0000-0000-000000000001","ts":"2026-01-01T00:00:00Z","qty":1.0}'
    real = '{"order_id":"paper-11111111-2222-3333-4444-555555555555","ts":"2026-12-01T10:00:00.5Z","qty":1.0}'
    compiled = pattern(shown, ids)
    assert compiled.fullmatch(real)
    assert not compiled.fullmatch(real.replace("1.0", "2.0"))
    learn(shown, compiled, real, ids)
    assert ids == {"paper-00000000-0000-0000-0000-000000000001": "paper-11111111-2222-3333-4444-555555555555"}
    # Once learned, the shown id stands for that real id only.
    assert not pattern(shown, ids).fullmatch(real.replace("555555555555", "666666666666"))


def test_every_document_with_a_session_is_found() -> None:
    where = {session.where.split(":")[0] for session in sessions()}
    assert {"README.md", "docs/api.md", "docs/trading-controls.md", "docs/operations.md"} <= where
