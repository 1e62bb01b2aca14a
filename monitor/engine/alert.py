"""The alert: what on-call reads, and what every output sends.

The id is a pure function of (rule, group, fired_at), so a replay of the same events,
a restarted daemon re-reading uncommitted events, and a second instance after a
rebalance all name the same alert the same way; outputs can deduplicate on it.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.timeparse import format_duration, format_ts

_FLOAT_MAX = sys.float_info.max
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_@][A-Za-z0-9_.@-]*)\}")


def alert_id(rule: str, group_values: list[Any], fired_at_ms: int) -> str:
    """First 16 hex digits of SHA-256 over the rule id, each group value as JSON, and
    ``fired_at`` in epoch milliseconds, joined by the unit separator (0x1F)."""
    parts = [rule.encode()]
    parts.extend(orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in group_values)
    parts.append(str(fired_at_ms).encode())
    return hashlib.sha256(b"\x1f".join(parts)).hexdigest()[:16]


def _number(v: Any) -> Any:
    """A number as JSON can carry it: whole floats as integers, and integers beyond 64 bits
    (a sum of attacker-sized fields) as floats, since no JSON encoder here takes them."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool) and not (-(2**63) <= v < 2**64):
        return float(v) if abs(v) <= _FLOAT_MAX else math.copysign(_FLOAT_MAX, v)
    return v


@dataclass(frozen=True)
class Alert:
    id: str
    rule: str
    severity: str
    description: str
    group: dict[str, Any]
    value: int | float
    threshold: dict[str, int | float]
    window: str | None
    window_start_ms: int
    window_end_ms: int
    fired_at_ms: int
    event_count: int
    summary: str
    labels: dict[str, str]
    annotations: dict[str, str]
    sample_event_ids: list[Any] = field(default_factory=list)
    # The value is a sum held at +-float max because the true sum is beyond it.
    saturated: bool = False
    # The value includes the evicted-group summary's over-estimate (README "Limits").
    estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON; ``saturated`` and ``estimated`` appear only when true, so
        an ordinary alert carries no flags to read past."""
        out = {
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity,
            "group": self.group,
            "value": _number(self.value),
            "threshold": {op: _number(n) for op, n in self.threshold.items()},
            "window": self.window,
            "window_start": format_ts(self.window_start_ms),
            "window_end": format_ts(self.window_end_ms),
            "fired_at": format_ts(self.fired_at_ms),
            "event_count": self.event_count,
            "summary": self.summary,
            "description": self.description,
            "labels": self.labels,
            "annotations": self.annotations,
            "sample_event_ids": self.sample_event_ids,
        }
        if self.saturated:
            out["saturated"] = True
        if self.estimated:
            out["estimated"] = True
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def render(template: str, values: dict[str, Any], lookup: Any) -> str:
    """Fill ``{name}`` placeholders from ``values``, then from the firing event.

    A placeholder with nothing to fill it stays as written, so a typo shows in the alert
    instead of silently vanishing.
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in values:
            v = values[name]
        else:
            v = lookup(name)
            if v is None:
                return m.group(0)
        if isinstance(v, str):
            return v
        return orjson.dumps(_number(v)).decode()

    return _PLACEHOLDER.sub(sub, template)


def describe_window(ms: int | None) -> str | None:
    return None if ms is None else format_duration(ms)
