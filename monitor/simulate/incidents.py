"""Where the injected incidents land in a span, and what is said about each of them.

:func:`incidents_for` is the answer key: for a start and a length it lists the incidents
:func:`~monitor.simulate.generate` injects, with their first and last timestamps and the
bundled rules that should fire. Both use :func:`incident_events`, so the key and the
traffic cannot disagree. The incidents themselves are written in :mod:`.scenarios`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from monitor.event import Event

from .cast import CUSTOMER_TABLES
from .clock import HOUR_MS, MINUTE_MS, format_ts, is_business_hour, to_local
from .scenarios import PLANS, Plan

_OFF_HOURS_RULE = "off-hours-customer-access"


@dataclass(frozen=True)
class Incident:
    """One injected incident: who, when, what happened, and which rules exist to catch it."""

    name: str
    actor: str
    start: str  # RFC 3339 UTC, the time of its first event
    description: str
    end: str = ""  # RFC 3339 UTC, the time of its last event
    rules: tuple[str, ...] = ()  # bundled rules that should fire on it


def _placed(start_ms: int, hours: float) -> list[tuple[Plan, int]]:
    span_ms = int(hours * HOUR_MS)
    scale = 1.0 if hours >= 24 else hours / 24
    out = []
    for plan in PLANS:
        t0 = start_ms + int(plan.offset_min * scale * MINUTE_MS)
        if t0 + plan.duration_min * MINUTE_MS <= start_ms + span_ms:
            out.append((plan, t0))
    return out


def incident_events(start_ms: int, hours: float) -> list[tuple[Incident, list[Event]]]:
    """The incidents that fit in the span, each with its events (``ts`` in integer ms)."""
    out = []
    for plan, t0 in _placed(start_ms, hours):
        # Seeded by the incident alone, so that incidents_for() is exact for every seed.
        rng = random.Random(f"exfil-monitor/incident/{plan.name}")
        events = plan.build(rng, t0)
        first, last = min(e["ts"] for e in events), max(e["ts"] for e in events)
        local = to_local(first)
        where = "inside" if is_business_hour(first) else "outside"
        description = (
            f"{plan.what}. Starts {local:%a %H:%M} America/Chicago ({where} business hours); "
            f"{len(events)} events."
        )
        inc = Incident(
            plan.name,
            plan.actor,
            format_ts(first),
            description,
            format_ts(last),
            _rules(plan, events),
        )
        out.append((inc, events))
    return out


def _rules(plan: Plan, events: list[Event]) -> tuple[str, ...]:
    """The plan's rules, with off-hours-customer-access only when the clock says so."""
    off_hours_rows = sum(
        e["rows"]
        for e in events
        if e["actor"]["type"] == "employee"
        and e["resource"]["name"] in CUSTOMER_TABLES
        and e["action"] in ("select", "export", "download")
        and not is_business_hour(e["ts"])
    )
    rules = [r for r in plan.rules if r != _OFF_HOURS_RULE]
    return (*rules, _OFF_HOURS_RULE) if off_hours_rows >= 10 else tuple(rules)


def incidents_for(start_ms: int, hours: float) -> list[Incident]:
    """The incidents :func:`generate` injects into a span starting at ``start_ms`` (epoch ms).

    In a span of 24 hours or more they sit at fixed offsets in its first day; in a shorter
    span the offsets shrink in proportion and an incident that no longer fits is left out.
    """
    return [inc for inc, _ in incident_events(start_ms, hours)]
