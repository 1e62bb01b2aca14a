"""Stage three of loading: conditions become plain closures, chosen once per operator.

Nothing here looks an operator name up per event and nothing uses ``eval``: each
condition is turned into one small function that reads its field and tests it, made by
its operator's entry in ``operators.py`` from the operand prepared at validation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.event import Event, Tally, getter
from monitor.rules.model import Condition, RuleSpec
from monitor.rules.operators import OPERATORS, Check


def compile_condition(cond: Condition, mismatch: Tally) -> Check:
    def miss() -> bool:
        mismatch.value += 1
        return False

    return OPERATORS[cond.op].closure(getter(cond.path), cond.arg, miss)


def threshold_check(op: str, n: float) -> Callable[[float], bool]:
    if op == "gt":
        return lambda v: v > n
    if op == "gte":
        return lambda v: v >= n
    if op == "lt":
        return lambda v: v < n
    if op == "lte":
        return lambda v: v <= n
    return lambda v: v == n


def index_choice(spec: RuleSpec, preferred: list[str]) -> Condition | None:
    """The condition the rule is indexed by: an ``eq``/``in`` on text, on the most shared field."""
    usable = [
        c
        for c in spec.conditions
        if (c.op == "eq" and isinstance(c.value, str))
        or (c.op == "in" and c.value and all(isinstance(v, str) for v in c.value))
    ]
    if not usable:
        return None
    return min(usable, key=lambda c: preferred.index(c.path) if c.path in preferred else len(preferred))


def compile_test(
    conditions: list[Condition], when: Any, mismatch: Tally,
    excepted: Callable[[Event, int], bool] | None = None,
) -> Callable[[Event, int], bool]:
    """All conditions (AND) plus the schedule and no live exception, as one callable of
    (event, event time)."""
    checks = tuple(compile_condition(c, mismatch) for c in conditions)
    sched = None
    if when is not None:
        kind, schedule = when
        inside = kind == "inside"
        contains = schedule.contains

        def sched(ts: int) -> bool:
            return contains(ts) is inside

    # Off the hot path: the generated dispatch loop inlines most conditions itself.
    def test(e: Event, ts: int) -> bool:
        for c in checks:
            if not c(e):
                return False
        if sched is not None and not sched(ts):
            return False
        return excepted is None or not excepted(e, ts)

    return test
