"""Problems found while loading rules, each pointing at a file, line and column.

Loading collects every problem of every file before giving up, so a security engineer
fixing a rule pack sees the whole list at once instead of one error per run. The
:class:`Problem` shape and its codes are shared with config loading, in
:mod:`monitor.problems`.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.problems import Problem, sort_key

__all__ = ["Pos", "Problem", "RuleLoadError"]


@dataclass(frozen=True, order=True)
class Pos:
    """A 1-based line and column, as editors show them."""

    line: int
    col: int


class RuleLoadError(Exception):
    """Raised with every error found; the rule set in force stays as it was."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))
