"""What a rule reload does to the engine's state, decided from the two rule sets alone.

A rule's window state is only meaningful to a rule that would have built the same state
from the same events: same aggregate (count, sum, max or distinct, and of which field),
same ``group_by``, same window and resolution. That is its **shape**. A reloaded rule of
the same shape keeps its groups, and everything else it changed (threshold, match
conditions, lists, schedule, suppression, resolve_after, labels, severity, annotations)
judges from the next event on, over the windows it has already filled; open episodes keep
the alert they opened with, so their re-sends and resolutions still name the old labels.
A rule whose shape changed starts empty, like a new one; a rule removed or disabled loses
its state, and the open episodes of both end (:meth:`monitor.engine.episodes.Episodes.end_rules`).

:func:`plan` is that decision and the audit of the reload (files, rules added, changed
and removed) in one place, pure, so it is tested without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitor.rules.loader import RuleSet
from monitor.rules.model import Condition, RuleSpec


def shape(spec: RuleSpec) -> tuple[Any, ...]:
    """What the rule's state is made of; equal shapes can share a state."""
    return (spec.aggregate, spec.aggregate_field, spec.group_by, spec.window_ms, spec.resolution_ms)


def _conditions(conds: tuple[Condition, ...]) -> tuple[Any, ...]:
    return tuple((c.path, c.op, c.value) for c in conds)  # not where they are written


def meaning(spec: RuleSpec) -> tuple[Any, ...]:
    """Everything that makes the rule judge or alert differently, and nothing of where it
    is written: a rule moved down a file, or to another file, is unchanged."""
    when = None
    if spec.when is not None:
        kind, s = spec.when
        when = (kind, s.name, s.timezone, s.days, s.ranges, s.holidays)
    exceptions = tuple((_conditions(x.conditions), x.until_ms, x.reason) for x in spec.exceptions)
    return (
        spec.description, spec.severity, spec.enabled, _conditions(spec.conditions), when, shape(spec),
        spec.threshold_op, spec.threshold, spec.suppress_ms, spec.resolve_after_ms,
        sorted(spec.labels.items()), sorted(spec.annotations.items()), exceptions, spec.unit,
    )  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """A reload, from the rule set in force to ``new``."""

    files: tuple[str, ...]  # rule files added, removed or edited
    added: tuple[str, ...]  # rule ids
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    keep: frozenset[str]  # enabled before and after, same shape: the state carries over
    drop: frozenset[str]  # enabled before, and removed, disabled or reshaped: state and episodes end
    fresh: tuple[str, ...] = ()  # changed rules that now run from an empty state (reshaped, enabled again)

    def audit(self) -> dict[str, Any]:
        """The audit line's fields."""
        return {"files_changed": list(self.files), "added": list(self.added), "changed": list(self.changed),
                "removed": list(self.removed), "fresh": list(self.fresh)}  # fmt: skip


def plan(old: RuleSet, new: RuleSet) -> Plan:
    before = {r.id: r.spec for r in old.rules}
    after = {r.id: r.spec for r in new.rules}
    old_files, new_files = dict(old.sources), dict(new.sources)
    files = sorted(n for n in old_files.keys() | new_files.keys() if old_files.get(n) != new_files.get(n))
    live = {r.id: r.spec for r in old.enabled}
    keep = frozenset(r.id for r in new.enabled if r.id in live and shape(live[r.id]) == shape(r.spec))
    changed = tuple(i for i in after if i in before and meaning(before[i]) != meaning(after[i]))
    running = {r.id for r in new.enabled}
    return Plan(
        files=tuple(files),
        added=tuple(i for i in after if i not in before),
        changed=changed,
        removed=tuple(i for i in before if i not in after),
        keep=keep,
        drop=frozenset(live) - keep,
        fresh=tuple(i for i in changed if i in running and i not in keep),
    )
