"""One shape for everything wrong with a rule pack or a config: :class:`Problem`, with a code.

A person reads ``FILE:LINE:COL: message``; a machine (an editor, a CI annotation, a
dashboard of rule-pack health) needs something that does not change when a message is
reworded, so every problem also carries a stable code from :data:`CODES`. A code says
its severity by its first letter: ``E-`` errors stop a rule set or config from loading,
``W-`` warnings load but mean a rule probably does not do what its author wants.
Every code is documented in ``docs/problems.md``; a test keeps the two lists equal.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

CODES: dict[str, str] = {
    # reading files
    "E-CANNOT-READ": "a file or folder cannot be read, or does not exist",
    "E-NOT-UTF8": "a file is not UTF-8 text",
    "E-YAML-SYNTAX": "a file is not valid YAML",
    "E-DUPLICATE-KEY": "a mapping has the same key twice",
    "E-NO-RULE-FILES": "a rule folder holds no *.yaml or *.yml rule file",
    # shape, shared by rules and config
    "E-UNKNOWN-KEY": "a key that is not known at its place (a typo, usually: the closest known key is suggested)",
    "E-MISSING-KEY": "a required key is not given",
    "E-BAD-TYPE": "a value of the wrong kind (text where a list belongs, a list where a mapping does)",
    "E-BAD-VALUE": "a value of the right kind that is not allowed (a bad host:port, mutually exclusive keys)",
    "E-BAD-DURATION": "a duration that cannot be read (no unit, not text) or is not longer than zero",
    # config only
    "E-UNKNOWN-TYPE": "an output whose type is not one the monitor has",
    "E-BAD-ENV": "an EXFIL_MONITOR_ override variable with a malformed name or naming a list item that does not exist",
    # rules
    "E-BAD-ID": "a rule without an id, or with one that is not letters, digits and - _ . :",
    "E-DUPLICATE-RULE": "two rules with the same id",
    "E-DUPLICATE-NAME": "a list, schedule or actor type defined twice",
    "E-BAD-NAME": "a list or schedule name that is not a letter or _ followed by letters, digits, _ and -",
    "E-BAD-SEVERITY": "a rule's severity is missing or not one of info, low, medium, high, critical",
    "E-BAD-FIELD": "an invalid field path, or one given twice in group_by",
    "E-NO-OPERATOR": "a match entry without an operator",
    "E-UNKNOWN-OPERATOR": "a match operator the monitor does not have",
    "E-BAD-OPERAND": "an operator given a value it cannot use (a list to eq, a number to startswith)",
    "E-BAD-LIST-REF": "a $list used with an operator that takes no list",
    "E-UNDEFINED-LIST": "a $list that no file of the rule set defines",
    "E-BAD-REGEX": "a regular expression RE2 does not accept",
    "E-BAD-NETWORK": "a cidr value that is not an IP network",
    "E-BAD-RESOLUTION": "a resolution without a window, not dividing it, or making too many buckets",
    "E-BAD-UNIT": "a unit that is not rows, bytes, customers or events",
    "E-BAD-AGGREGATE": "an aggregate that is not count, sum, distinct or max of a field",
    "E-BAD-THRESHOLD": "a threshold that is not one known operator and a number",
    "E-BAD-RESOLVE-AFTER": "a resolve_after shorter than the rule's suppress",
    "E-BAD-WHEN": "a when that is not {inside: SCHEDULE} or {outside: SCHEDULE}",
    "E-UNDEFINED-SCHEDULE": "a when naming a schedule that no file of the rule set defines",
    "E-BROKEN-SCHEDULE": "a when naming a schedule that is defined with errors",
    "E-BAD-TIMEZONE": "a schedule time zone the tz database does not know",
    "E-BAD-DAY": "a schedule day that is not mon..sun",
    "E-BAD-HOURS": "a schedule hour range that is malformed or ends before it starts",
    "E-BAD-DATE": "a schedule holiday that is not a date like 2026-11-26",
    "E-BAD-PATTERN": "an actors: account pattern that is empty, has an unclosed [ or a reversed range",
    "E-UNKNOWN-FORMAT": "an inputs: mapping whose from: names no built-in input format",
    "E-DUPLICATE-INPUT": "a custom input defined twice",
    "E-BUILTIN-FORMAT": "a custom input with the name of a built-in input format",
    "E-BAD-EXCEPTION": "an exception without a match, until or reason, or with an until that is no date or time",
    # warnings: the set loads, but something in it is probably not what its author meant
    "W-UNUSED-LIST": "a list that no rule uses",
    "W-EMPTY-LIST": "a rule that can never match because a list it needs a value from (in, cidr) is empty",
    "W-EMPTY-SCHEDULE": "a when on a schedule with no hours or no days: inside never holds, outside always does",
    "W-EXPIRED-EXCEPTION": "an exception whose until has passed: it no longer applies and can be removed",
    "W-UNROUTED-SEVERITY": "a severity that no output's match: takes: its alerts are counted as unrouted and go nowhere",
}

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong, where it is, and its code. ``line`` 0 means no position: the
    problem is about an environment variable, named in ``file`` as ``$NAME``."""

    file: str
    line: int
    col: int
    message: str
    rule: str | None = None
    code: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"problem code {self.code!r} is not in monitor.problems.CODES")

    @property
    def severity(self) -> Severity:
        return "warning" if self.code.startswith("W-") else "error"

    def format(self, *, codes: bool = False) -> str:
        """``FILE:LINE:COL: [CODE: ][warning: ][rule ID: ]message``, as compilers print them."""
        where = f"{self.file}:{self.line}:{self.col}: " if self.line else f"{self.file}: "
        if codes:
            where += f"{self.code}: "
        if self.severity == "warning":
            where += "warning: "
        if self.rule is not None:
            where += f"rule {self.rule}: "
        return where + self.message

    def __str__(self) -> str:
        return self.format()

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "file": self.file,
            "line": self.line or None,
            "col": self.col or None,
            "rule": self.rule,
            "message": self.message,
        }


def sort_key(p: Problem) -> tuple[str, int, int, str]:
    return (p.file, p.line, p.col, p.message)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "warning"]


def did_you_mean(word: str, known: Sequence[str], *, show: str = "{!r}") -> str:
    """`` (did you mean 'suppress'?)`` for the known name closest to a mistyped one, or "".

    ``show`` formats the suggestion, so a list reference can be offered as ``$name``.
    """
    hint = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {show.format(hint[0])}?)" if hint else ""
