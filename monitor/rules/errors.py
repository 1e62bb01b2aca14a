"""Problems found while loading rules, each pointing at a file, line and column.

Loading collects every problem of every file before giving up, so a security engineer
fixing a rule pack sees the whole list at once instead of one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Pos:
    """A 1-based line and column, as editors show them."""

    line: int
    col: int


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    col: int
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}: "
        if self.rule is not None:
            where += f"rule {self.rule}: "
        return where + self.message


class RuleLoadError(Exception):
    """Raised with every problem found; the rule set in force stays as it was."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))
