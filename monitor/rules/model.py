"""The validated form of a rule: plain, frozen data, before compilation into matchers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.rules.errors import Pos
from monitor.rules.operators import OPERATORS
from monitor.rules.schedule import Schedule

if TYPE_CHECKING:
    from monitor.rules.exceptions import RuleException

SEVERITIES = ("info", "low", "medium", "high", "critical")
THRESHOLD_OPS = ("gt", "gte", "lt", "lte", "eq")
MATCH_OPS = tuple(OPERATORS)


@dataclass(frozen=True)
class Condition:
    path: str
    op: str
    value: Any  # lists already expanded, regex text, networks as text
    pos: Pos
    arg: Any = field(default=None, compare=False, repr=False)  # the operand prepared once (operators.py)


@dataclass(frozen=True)
class RuleSpec:
    id: str
    file: str
    pos: Pos
    description: str
    severity: str
    enabled: bool
    conditions: tuple[Condition, ...]
    when: tuple[str, Schedule] | None  # ("inside" | "outside", schedule)
    group_by: tuple[str, ...]
    window_ms: int | None
    resolution_ms: int | None
    aggregate: str
    aggregate_field: str | None
    threshold_op: str
    threshold: int | float
    suppress_ms: int
    resolve_after_ms: int  # an episode is over this long after its last hold (at least suppress_ms)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # as written, for /rules and docs
    # Matches the rule does not count while their event time is before the end (rules/exceptions.py).
    exceptions: tuple[RuleException, ...] = ()
    unit: str = "events"  # what the aggregate counts (monitor.units): `unit:`, else from the aggregate
