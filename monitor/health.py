"""What ``/readyz`` says, defined once: ready, degraded, or not ready, with the reasons.

- **not ready** (HTTP 503): the monitor cannot detect (rules not loaded, the broker
  unreachable, stopping). An orchestrator should route nothing to it and page if it stays.
- **degraded** (HTTP 200): detection goes on, with a fault someone must look at (an alert
  an output refused and parked, an output failing and retried). Still ready, so the
  instance keeps its partitions, but the reasons show.
- **ready** (HTTP 200): no reasons.

Components report into one :class:`Health`: either pushed (``set``/``clear`` a condition
under a key they own) or pulled (``watch`` a callable evaluated at each probe, for
conditions whose text changes with time, such as how long the broker has been silent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

Level = Literal["degraded", "not ready"]
READY: Final = "ready"
DEGRADED: Final = "degraded"
NOT_READY: Final = "not ready"


@dataclass(frozen=True)
class Condition:
    level: Level
    reason: str


@dataclass(frozen=True)
class Report:
    status: str  # "ready" | "degraded" | "not ready"
    reasons: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.status != NOT_READY

    def to_dict(self) -> dict[str, object]:
        # "reason" (one string) is kept for probes and dashboards that read it.
        return {"status": self.status, "reasons": self.reasons, "reason": "; ".join(self.reasons) or "ready"}


Check = Callable[[], Condition | None]


class Health:
    def __init__(self) -> None:
        self._set: dict[str, Condition] = {}
        self._checks: dict[str, Check] = {}

    def set(self, key: str, level: Level, reason: str) -> None:
        self._set[key] = Condition(level, reason)

    def clear(self, key: str) -> None:
        self._set.pop(key, None)

    def watch(self, key: str, check: Check) -> None:
        self._checks[key] = check

    def report(self) -> Report:
        conditions = list(self._set.values())
        conditions.extend(c for c in (check() for check in self._checks.values()) if c is not None)
        worst = [c.reason for c in conditions if c.level == NOT_READY]
        if worst:  # the reasons it cannot detect come first
            return Report(NOT_READY, worst + [c.reason for c in conditions if c.level == DEGRADED])
        if conditions:
            return Report(DEGRADED, [c.reason for c in conditions])
        return Report(READY, [])
