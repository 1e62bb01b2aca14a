"""The alert: what on-call reads, and what every output sends.

Every record an output receives has a ``type`` ("alert" here, "resolved" for the end of
an episode, :mod:`monitor.engine.episodes`) and a ``schema_version``, bumped when a key
changes meaning or goes away (adding one is not a change).

The id is a pure function of (rule, group, fired_at), so a replay of the same events,
a restarted daemon re-reading uncommitted events, and a second instance after a
rebalance all name the same alert the same way; outputs can deduplicate on it.

Alerts have a size budget, because their text comes from events an attacker may write:
each value filled into a template, each group value and each sample event id is cut to
:data:`VALUE_MAX_BYTES` of UTF-8, and the whole alert as JSON to about
:data:`ALERT_MAX_BYTES` (the text fields are cut harder until it fits). A cut value ends
with :func:`truncate`'s marker, which gives its full length. The id is computed from the
full group values, so truncation never merges two groups' alerts.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.text import VALUE_MAX_BYTES, truncate
from monitor.timeparse import format_duration, format_ts

SCHEMA_VERSION = 1
_FLOAT_MAX = sys.float_info.max
_OWN_EPISODE = -(2**63)  # episode_start_ms not given: the alert opens its own episode
ALERT_MAX_BYTES = 64 * 1024
_TEXT_STEPS = (4096, 256)  # what summary, description, labels and annotations are cut to when over budget

# What a field under privacy.mask_fields shows as, in a template or a sample (monitor.privacy).
FIELD_MASK = "[masked]"

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


def bounded_value(v: Any, limit: int = VALUE_MAX_BYTES) -> Any:
    """A group value or sample id as the alert's record carries it (cut to ``limit``)."""
    if isinstance(v, str):
        return truncate(v, limit)
    if isinstance(v, (dict, list)):
        try:
            text = orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:  # an integer beyond 64 bits inside
            return truncate(repr(v), limit)
        return v if len(text) <= limit else truncate(text, limit)
    return _number(v)


def _texts(d: dict[str, Any], limit: int) -> None:
    d["summary"] = truncate(d["summary"], limit)
    d["description"] = truncate(d["description"], limit)
    d["labels"] = {k: truncate(v, limit) for k, v in d["labels"].items()}
    d["annotations"] = {k: truncate(v, limit) for k, v in d["annotations"].items()}


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
    # Where the daemon read the window's last events (file:line, topic/partition@offset).
    sample_provenance: list[str] = field(default_factory=list)
    unit: str = "events"  # what value and threshold count (monitor.units), for people's outputs
    # The value is a sum held at +-float max because the true sum is beyond it.
    saturated: bool = False
    # The value includes the evicted-group summary's over-estimate (README "Limits").
    estimated: bool = False
    # fired_at of the alert that opened this alert's episode (its own, for the first);
    # with rule and group it names the incident, the same for every re-alert of it.
    episode_start_ms: int = _OWN_EPISODE

    def __post_init__(self) -> None:
        if self.episode_start_ms == _OWN_EPISODE:
            object.__setattr__(self, "episode_start_ms", self.fired_at_ms)

    def to_dict(self, detected_at_ms: int | None = None) -> dict[str, Any]:
        """The alert as JSON, within its size budget; ``saturated`` and ``estimated``
        appear only when true, so an ordinary alert carries no flags to read past.

        ``detected_at`` is the wall time the daemon raised it, given by the daemon only:
        replay's output must not depend on when it ran."""
        d = self._dict(detected_at_ms)
        for limit in _TEXT_STEPS:  # rare: only templates that name many long values get here
            if len(orjson.dumps(d)) <= ALERT_MAX_BYTES:
                break
            _texts(d, limit)
            d["sample_event_ids"] = d["sample_event_ids"][:10]
        return d

    def _dict(self, detected_at_ms: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "type": "alert",
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity,
            "group": {k: bounded_value(v) for k, v in self.group.items()},
            "value": _number(self.value),
            "threshold": {op: _number(n) for op, n in self.threshold.items()},
            "unit": self.unit,
            "window": self.window,
            "window_start": format_ts(self.window_start_ms),
            "window_end": format_ts(self.window_end_ms),
            "fired_at": format_ts(self.fired_at_ms),
            "episode_start": format_ts(self.episode_start_ms),
            "event_count": self.event_count,
            "summary": self.summary,
            "description": self.description,
            "labels": self.labels,
            "annotations": self.annotations,
            "sample_event_ids": [bounded_value(v) for v in self.sample_event_ids],
        }
        if self.sample_provenance:  # only the daemon knows where it read an event
            out["sample_provenance"] = [truncate(w) for w in self.sample_provenance]
        if detected_at_ms is not None:
            out["detected_at"] = format_ts(detected_at_ms)
        if self.saturated:
            out["saturated"] = True
        if self.estimated:
            out["estimated"] = True
        return out

    def to_json(self, detected_at_ms: int | None = None) -> bytes:
        return orjson.dumps(self.to_dict(detected_at_ms))


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
            return truncate(v)
        try:
            return truncate(orjson.dumps(_number(v)).decode())
        except orjson.JSONEncodeError:  # nested past orjson's depth limit, or a huge integer inside
            return "[value not shown: nested too deep or a number too large]"

    return _PLACEHOLDER.sub(sub, template)


def describe_window(ms: int | None) -> str | None:
    return None if ms is None else format_duration(ms)
