"""The README's first session runs as written: each command's answer matches the one
shown, where `...` stands for what differs from run to run (ids, times)."""

import json
import re
import shlex
from pathlib import Path

from fastapi.testclient import TestClient

README = Path(__file__).resolve().parents[2] / "README.md"


def session() -> list[tuple[list[str], str]]:
    """The console block's commands (as argument lists) and the answers shown."""
    block = README.read_text().split("```console\n", 1)[1].split("```", 1)[0]
    steps: list[tuple[list[str], str]] = []
    for command, answer in re.findall(r"\$ (curl .*?)\n(\{.*?\})\n", block.replace("\\\n", ""), re.S):
        steps.append((shlex.split(command), answer))
    return steps


def matches(shown: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(piece) for piece in shown.split("..."))
    return re.fullmatch(pattern, actual) is not None


def test_the_readme_session_answers_as_shown(client: TestClient) -> None:
    steps = session()
    assert len(steps) == 3
    for args, shown in steps:
        url = next(arg for arg in args if arg.startswith("localhost:8001"))
        path = url.removeprefix("localhost:8001")
        body = json.loads(args[args.index("-d") + 1]) if "-d" in args else None
        response = client.get(path) if body is None else client.post(path, json=body)
        assert matches(shown, response.text), (shown, response.text)
