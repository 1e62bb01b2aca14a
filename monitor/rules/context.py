"""What every rule-validation step shares: the problem list, the definitions, the syntax.

Validation is split by responsibility (:mod:`monitor.rules.definitions` for lists and
schedules, :mod:`monitor.rules.conditions` for ``match`` and ``when``,
:mod:`monitor.rules.validate` for the rest of a rule), but all of it reports into one
list of problems and reads the same lists and schedules. That shared state, the file
being validated and the small syntax checks they all use live here, so the step
modules depend on this one and not on each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.rules.errors import Pos, Problem
from monitor.rules.schedule import Schedule
from monitor.rules.yamlpos import Doc

if TYPE_CHECKING:
    from monitor.inputs.custom import CustomInput

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")  # a list or schedule name
FIELD = re.compile(r"[^.\s]+(?:\.[^.\s]+)*\Z")  # a dotted field path


def is_scalar(v: Any) -> bool:
    return isinstance(v, str | int | float) and v is not None


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass
class FileDoc:
    """One parsed file: its name, text positions and data."""

    name: str
    doc: Doc


@dataclass
class ValidationContext:
    """The state of validating one rule set; lists and schedules are shared by all files."""

    now_ms: int = 0  # wall time, for warnings about what has expired (exceptions)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    lists: dict[str, list[Any]] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    actors: dict[str, tuple[str, ...]] = field(default_factory=dict)  # actor type -> account patterns
    inputs: dict[str, CustomInput] = field(default_factory=dict)  # custom input formats by name
    _defined_at: dict[tuple[str, str], str] = field(default_factory=dict)
    _broken: set[str] = field(default_factory=set)  # schedules defined with errors
    _list_at: dict[str, tuple[FileDoc, Pos]] = field(default_factory=dict)  # where each list is named
    _used: set[str] = field(default_factory=set)  # lists some rule refers to, valid or not

    def _report(self, f: FileDoc, pos: Pos, message: str, rule: str | None = None, *, code: str) -> None:
        self.problems.append(Problem(f.name, pos.line, pos.col, message, rule, code=code))

    def _warn(self, f: FileDoc, pos: Pos, message: str, rule: str | None = None, *, code: str) -> None:
        """A warning does not make its rule invalid, so it is kept apart from the errors."""
        self.warnings.append(Problem(f.name, pos.line, pos.col, message, rule, code=code))
