"""Named calendars (``business_hours``) that rules test event time against.

A schedule answers "is this instant inside?" in its own time zone, so a rule written for
Chicago office hours stays right across daylight-saving changes. Answers are cached per
UTC minute: every time zone in use today changes offset on a whole minute, so all events
of one minute share the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CACHE_MAX = 4096


@dataclass(eq=False)
class Schedule:
    name: str
    timezone: str
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    ranges: tuple[tuple[int, int], ...]  # minutes of the day, start inclusive, end exclusive
    holidays: frozenset[str]  # ISO dates, local to the schedule's time zone
    _zone: ZoneInfo = field(init=False, repr=False)
    _cache: dict[int, bool] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._zone = ZoneInfo(self.timezone)

    def contains(self, ms: int) -> bool:
        minute = ms // 60_000
        hit = self._cache.get(minute)
        if hit is None:
            hit = self._compute(minute)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[minute] = hit
        return hit

    def _compute(self, minute: int) -> bool:
        try:
            local = datetime.fromtimestamp(minute * 60, UTC).astimezone(self._zone)
        except (OverflowError, ValueError, OSError):
            # Outside what datetime can hold in this zone (the decoder rejects such event
            # times; this keeps the engine's own API total): no calendar, so not inside.
            return False
        if local.weekday() not in self.days:
            return False
        if local.date().isoformat() in self.holidays:
            return False
        m = local.hour * 60 + local.minute
        return any(start <= m < end for start, end in self.ranges)

    def describe(self) -> dict[str, object]:
        return {
            "timezone": self.timezone,
            "days": [DAY_NAMES[d] for d in sorted(self.days)],
            "hours": [f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in self.ranges],
            "holidays": sorted(self.holidays),
        }
