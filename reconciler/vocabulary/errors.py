"""User-facing errors: one line each, naming the file and line at fault when there is one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class Location(NamedTuple):
    """A file and line. A named tuple, not a dataclass: a large policy makes one per list item (10^5)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, and how to fix it."""

    message: str
    location: Location | None = None
    hint: str = ""

    def __str__(self) -> str:
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return f"{self.location}: {text}" if self.location else text


class ReconcilerError(Exception):
    """An error caused by input or environment, reported without a traceback (exit status 1)."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = sorted(problems, key=lambda p: (p.location or Location("", 0), p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
