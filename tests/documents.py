"""The README and docs/, and the fenced blocks in them: what the tests that run the
documented examples read."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.servers import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    where: str  # file:line of its opening fence
    text: str


def blocks(kind: str, documents: Sequence[Path] = DOCS) -> list[Block]:
    """Every ```kind block of `documents`, in order."""
    found: list[Block] = []
    for path in documents:
        text = path.read_text()
        for match in re.finditer(rf"^```{kind}\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return found
