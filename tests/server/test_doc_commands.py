"""Every command in a ```bash block of the README and docs/ that starts the service
starts it: run by bash as written, but on a free loopback port, with files under the
test's directory and the documented PostgreSQL address replaced by the test cluster's.
The block's other commands (making directories) run before it. The test command itself
is what CI runs, and installing the requirements is CI's fresh environment's job, so
`pip install ... &&` is left out here."""

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.servers import ROOT, ServerFailed, free_port, wait_until_answering
from tests.documents import blocks

SHOWN_POSTGRES = re.compile(r"postgresql://\S+@db\.internal:5432/\w+")
PIP = re.compile(r"^pip install -r \S+ && ")


@dataclass
class Start:
    where: str
    setup: list[str]  # the block's commands before it, but other starts
    command: str


def starts() -> list[Start]:
    found: list[Start] = []
    for block in blocks("bash"):
        commands = [
            command.strip()
            for command in block.text.replace("\\\n", " ").splitlines()
            if command.strip() and not command.strip().startswith("#")
        ]
        for index, command in enumerate(commands):
            if "uvicorn app.main:app" in command:
                setup = [before for before in commands[:index] if "uvicorn" not in before]
                found.append(Start(block.where, setup, command))
    return found


def local(command: str, port: int, tmp_path: Path, postgres: str | None) -> str:
    command = PIP.sub("", command)
    command = command.replace("--port 8001", f"--port {port}").replace("--host 0.0.0.0", "--host 127.0.0.1")
    command = command.replace("/tmp/", f"{tmp_path}/").replace("/var/lib/execution", f"{tmp_path}/var")
    if postgres is not None:
        command = SHOWN_POSTGRES.sub(postgres, command)
    return command


@pytest.mark.parametrize("start", starts(), ids=lambda start: start.where)
def test_the_documented_command_starts_the_service(
    start: Start, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    postgres = request.getfixturevalue("postgres_url") if SHOWN_POSTGRES.search(start.command) else None
    port = free_port()
    # Only what a shell needs: no setting of the runner's (STORAGE_URL, say) reaches it.
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    for setup in start.setup:
        subprocess.run(
            ["bash", "-c", local(setup, port, tmp_path, postgres)], cwd=ROOT, env=env, check=True, timeout=30
        )
    command = local(start.command, port, tmp_path, postgres)
    assert f"--port {port}" in command, command
    log = tmp_path / "server.log"
    with log.open("ab") as out:
        # Its own session: SIGINT reaches uvicorn (and its workers) through bash.
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}" if command.startswith("uvicorn") else command],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_answering(process, f"http://127.0.0.1:{port}/healthz", log=log, timeout=60)
    except ServerFailed as failed:
        pytest.fail(f"{start.where}: {command}\n{failed}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert "Application startup complete" in log.read_text()


def test_every_documented_start_is_found() -> None:
    where = {start.where.split(":")[0] for start in starts()}
    assert {"README.md", "docs/operations.md", "docs/storage.md"} <= where
    assert len(starts()) == 5
