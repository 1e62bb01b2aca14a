"""Which outputs an alert goes to: each output's ``match:``.

``match`` maps a name to a value or a list of values; an alert matches when, for every
name, its value is one of those given (names AND, list values OR). The names are
``severity``, ``rule`` (the rule id) and the rule's label names. An output without
``match`` takes every alert; an alert no output matches is counted as unrouted, never
dropped without a trace.

This runs once per alert, not per event, so clarity wins over speed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from monitor.rules.model import SEVERITIES as _RULE_SEVERITIES

__all__ = ["SEVERITIES", "UNROUTED_DETAIL", "Match", "MatchSpec", "matches", "route", "unrouted_severities"]

# Most severe first: the order warnings name them in.
SEVERITIES: tuple[str, ...] = tuple(reversed(_RULE_SEVERITIES))
# What the daemon's start warning and ``check --config`` add about unrouted severities.
UNROUTED_DETAIL = (
    "alerts of a severity no output's match: takes are counted in exfil_monitor_alerts_unrouted_total "
    "and go nowhere"
)


def _as_tuple(v: Any) -> Any:
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list | tuple) and v:
        return tuple(v)
    if isinstance(v, list | tuple):
        raise ValueError("an empty list matches nothing: leave the key out to match everything")
    return v


def _nonempty(v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    for name in v:
        if not name:
            raise ValueError("a match key cannot be empty")
    return v


Values = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]
# The config type: `match: {severity: [critical, high], team: security}`.
MatchSpec = Annotated[dict[str, Values], AfterValidator(_nonempty)]
Match = Mapping[str, Sequence[str]]


def _value(alert: Mapping[str, Any], name: str) -> Any:
    if name == "severity":
        return alert.get("severity")
    if name == "rule":
        return alert.get("rule")
    labels = alert.get("labels") or {}
    return labels.get(name)


def matches(match: Match | None, alert: Mapping[str, Any]) -> bool:
    """Does ``alert`` (an alert record, as ``Alert.to_dict`` gives it) pass ``match``?"""
    if not match:
        return True
    return all(_value(alert, name) in values for name, values in match.items())


def route(matches_by_output: Mapping[str, Match | None], alert: Mapping[str, Any]) -> list[str]:
    """The names of the outputs ``alert`` goes to, in the order they are declared."""
    return [name for name, m in matches_by_output.items() if matches(m, alert)]


def unrouted_severities(
    matches_by_output: Mapping[str, Match | None], severities: Sequence[str] = SEVERITIES
) -> list[str]:
    """Severities that no output takes whatever the labels: the one test behind the
    daemon's warning at start and ``check --config``'s (an output matching on a label may
    still miss some alerts; that is not said)."""
    out = []
    for sev in severities:
        if not any(not m or sev in m.get("severity", (sev,)) for m in matches_by_output.values()):
            out.append(sev)
    return out
