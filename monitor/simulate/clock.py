"""The simulator's clock: epoch milliseconds in, RFC 3339 text out, and the shop's day.

Events carry integer milliseconds until they are written, so time arithmetic stays cheap;
this module turns a start time into milliseconds, formats milliseconds back (one
``strftime`` per second, not per event, which is what makes a million events take
seconds), and knows the shop's local day: the load curve by hour, business hours in
``America/Chicago`` and the holidays the support desk is closed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("America/Chicago")
# Days the support desk is closed. Keep in step with `business_hours` in rules/common.yaml.
US_HOLIDAYS = frozenset(
    {
        "2026-01-01", "2026-01-19", "2026-02-16", "2026-05-25", "2026-06-19", "2026-07-03",
        "2026-09-07", "2026-10-12", "2026-11-11", "2026-11-26", "2026-12-25", "2027-01-01",
    }
)  # fmt: skip
BUSINESS_HOURS = (8, 18)  # local, start inclusive, end exclusive; Monday to Friday

HOUR_MS = 3_600_000
MINUTE_MS = 60_000

# Relative load by local hour of day (shoppers peak in the evening).
CURVE = (
    0.35, 0.26, 0.20, 0.18, 0.20, 0.30, 0.50, 0.80, 1.10, 1.30, 1.40, 1.50,
    1.60, 1.50, 1.45, 1.40, 1.45, 1.55, 1.70, 1.80, 1.70, 1.40, 1.00, 0.60,
)  # fmt: skip


def parse_start(start: str) -> int:
    """An RFC 3339 time (``Z`` or an offset) as epoch milliseconds."""
    dt = datetime.fromisoformat(start.replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt.toordinal() - 719163) * 86_400_000 + _ms_of_day(dt) - _offset_ms(dt)


def _ms_of_day(dt: datetime) -> int:
    return ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1000 + dt.microsecond // 1000


def _offset_ms(dt: datetime) -> int:
    off = dt.utcoffset()
    return 0 if off is None else int(off.total_seconds() * 1000)


class TsFormatter:
    """RFC 3339 UTC with milliseconds from epoch ms; the second's text is computed once."""

    __slots__ = ("_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def __call__(self, ms: int) -> str:
        sec, frac = divmod(ms, 1000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        return f"{self._prefix}{frac:03d}Z"


def format_ts(ms: int) -> str:
    """One timestamp as the simulator writes it (``2026-11-27T14:03:05.123Z``)."""
    return TsFormatter()(ms)


def to_local(ms: int) -> datetime:
    """Epoch milliseconds as a datetime in the shop's time zone."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(LOCAL_TZ)


def is_business_hour(ms: int) -> bool:
    """Whether the support desk is open at ``ms``: a weekday, not a holiday, 08:00-18:00."""
    local = to_local(ms)
    return (
        local.weekday() < 5
        and local.date().isoformat() not in US_HOLIDAYS
        and BUSINESS_HOURS[0] <= local.hour < BUSINESS_HOURS[1]
    )
