"""The day's event stream: budgets the traffic hour by hour and yields it in time order.

:func:`generate` cuts the span into UTC hours, gives the scheduled people and the ETL job
their share first (:mod:`.scheduled`), spreads what is left of the event budget over the
daily curve (:mod:`.background`), adds the injected incidents (:mod:`.incidents`), then
sorts each hour and formats its timestamps. All randomness comes from ``random.Random``
instances seeded from ``seed``, so the same arguments give the same events in any process.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator
from datetime import datetime

from monitor.event import Event

from .background import Background
from .cast import ADMINS, AGENTS, ANALYSTS
from .clock import CURVE, HOUR_MS, TsFormatter, is_business_hour, parse_start, to_local
from .incidents import incident_events
from .scheduled import (
    ADMIN_EVENTS_PER_HOUR,
    ANALYST_EVENTS_PER_HOUR,
    ETL_LOCAL_HOUR,
    TICKETS_PER_AGENT_HOUR,
    Staff,
    nightly_etl,
)

DEFAULT_EVENTS_PER_DAY = 200_000
"""Background events in 24 hours when ``events`` is not given: a mid-size shop."""


def generate(
    *,
    seed: int = 7,
    start: str = "2026-11-27T00:00:00Z",
    hours: float = 24.0,
    events: int | None = None,
    incidents: bool = True,
) -> Iterator[Event]:
    """Yield the shop's data-access events in non-decreasing ``ts`` order.

    ``events`` is the approximate number of background events (default: 200,000 per 24
    hours); the injected incidents come on top when ``incidents`` is true.
    """
    if hours <= 0:
        return
    start_ms = parse_start(start)
    end_ms = start_ms + int(hours * HOUR_MS)
    total = round(DEFAULT_EVENTS_PER_DAY * hours / 24) if events is None else max(0, events)
    rate = total / (DEFAULT_EVENTS_PER_DAY * hours / 24)
    bg = Background(seed)
    people = Staff(rate)
    rng = random.Random(f"exfil-monitor/background/{seed}")

    # Slices on UTC hour boundaries: America/Chicago's offset is whole hours, so each slice
    # has one local hour, one weekday and one date.
    slices: list[tuple[int, int, datetime]] = []
    lo = start_ms
    while lo < end_ms:
        hi = min(end_ms, (lo // HOUR_MS + 1) * HOUR_MS)
        slices.append((lo, hi, to_local(lo)))
        lo = hi

    # People and the ETL job first; the services share whatever is left of the budget.
    quotas: list[tuple[float, float, float]] = []  # tickets, analyst events, admin events
    etl_events = 0
    for lo, hi, local in slices:
        frac = (hi - lo) / HOUR_MS
        open_ = is_business_hour(lo)
        quotas.append(
            (
                TICKETS_PER_AGENT_HOUR * AGENTS * rate * frac if open_ else 0.0,
                ANALYST_EVENTS_PER_HOUR * ANALYSTS * rate * frac if open_ else 0.0,
                ADMIN_EVENTS_PER_HOUR * ADMINS * rate * frac,
            )
        )
        if local.hour == ETL_LOCAL_HOUR and lo == (lo // HOUR_MS) * HOUR_MS and total > 0:
            etl_events += len(nightly_etl(lo, rate))
    people_events = sum(t * 3.3 + a + d for t, a, d in quotas)
    budget = max(0.0, total - people_events - etl_events)
    weights = [CURVE[local.hour] * (hi - lo) / HOUR_MS for lo, hi, local in slices]
    wsum = sum(weights) or 1.0

    by_slice: dict[int, list[Event]] = {}
    starts = [lo for lo, _, _ in slices]
    if incidents:
        for _inc, evs in incident_events(start_ms, hours):
            for ev in evs:
                i = max(0, bisect.bisect_right(starts, ev["ts"]) - 1)
                by_slice.setdefault(i, []).append(ev)

    fmt = TsFormatter()
    n = 0
    carry = [0.0, 0.0, 0.0, 0.0]
    prefix = f"evt-{seed}-"

    def take(i: int, x: float) -> int:
        carry[i] += x
        k = int(carry[i])
        carry[i] -= k
        return k

    for idx, (lo, hi, local) in enumerate(slices):
        tickets, analyst_n, admin_n = quotas[idx]
        batch = bg.services(rng, lo, hi, take(0, budget * weights[idx] / wsum))
        batch += people.support_desk(rng, lo, hi, take(1, tickets))
        batch += people.analysts_at_work(rng, lo, hi, take(2, analyst_n))
        batch += people.admins_on_call(rng, lo, hi, take(3, admin_n))
        if local.hour == ETL_LOCAL_HOUR and lo == (lo // HOUR_MS) * HOUR_MS and total > 0:
            batch += nightly_etl(lo, rate)
        batch += by_slice.get(idx, ())
        batch = [e for e in batch if e["ts"] < hi]
        batch.sort(key=_ts_key)
        for ev in batch:
            ev["ts"] = fmt(ev["ts"])
            ev["id"] = f"{prefix}{n}"
            n += 1
            yield ev


def _ts_key(ev: Event) -> int:
    ts: int = ev["ts"]
    return ts
