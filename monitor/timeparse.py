"""Event time and durations as integer milliseconds.

Every event passes through :func:`parse_ts`, so it avoids building ``datetime`` objects:
the date-and-minute prefix of an RFC 3339 string is validated once and cached, and the
seconds, fraction and offset are read by slicing. Anything it cannot read exactly is
rejected (``None``) rather than guessed, because a misread time would move windows.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "EVENT_TIME_MAX_MS", "EVENT_TIME_MIN_MS", "format_duration", "format_ts", "parse_duration",
    "parse_str", "parse_ts",
]  # fmt: skip

_EPOCH_MS_THRESHOLD = 1e11  # numbers above this are epoch milliseconds, below are seconds
# Years 0001-9999 in ms; anything outside cannot be formatted back to RFC 3339.
_MIN_MS = -62_135_596_800_000
_MAX_MS = 253_402_300_799_999
# The event times the monitor accepts (README "Limits"): 1970-01-01T00:00:00Z inclusive to
# 9000-01-01T00:00:00Z exclusive. The margin up to year 9999 is what keeps everything
# derived from an accepted time (window ends, suppression, formatting) representable.
EVENT_TIME_MIN_MS = 0
EVENT_TIME_MAX_MS = 221_845_392_000_000

# re.ASCII: RFC 3339 digits are ASCII; without it \d also takes fullwidth or Arabic-Indic digits.
_PREFIX = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})\Z", re.ASCII)
_REST = re.compile(r":(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z", re.ASCII)
_MINUTE_CACHE: dict[str, int] = {}
_MINUTE_CACHE_MAX = 8192


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _minute_ms(prefix: str) -> int | None:
    m = _PREFIX.match(prefix)
    if m is None:
        return None
    y, mo, d, hh, mi = (int(g) for g in m.groups())
    if not (y >= 1 and 1 <= mo <= 12 and 1 <= d <= _DAYS_IN_MONTH[mo - 1] and hh < 24 and mi < 60):
        return None
    if mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        return None
    ms = (_days_from_civil(y, mo, d) * 1440 + hh * 60 + mi) * 60_000
    if len(_MINUTE_CACHE) >= _MINUTE_CACHE_MAX:
        _MINUTE_CACHE.clear()
    _MINUTE_CACHE[prefix] = ms
    return ms


_SECOND_CACHE: dict[str, int] = {}


class _Second:
    """The second of the previous text time, and its epoch milliseconds."""

    __slots__ = ("base", "prefix")

    def __init__(self) -> None:
        self.prefix = "\x00"  # matches no time
        self.base = 0


_last_second = _Second()
_MILLIS = {f"{i:03d}": i for i in range(1000)}


def _parse_str(s: str) -> int | None:
    # Fastest path: "YYYY-MM-DDTHH:MM:SS.mmmZ" in the same second as the previous event
    # (a stream in time order sends many events a second), else in a second seen before.
    if len(s) == 24 and s[23] == "Z" and s[19] == ".":
        ms = _MILLIS.get(s[20:23])  # checks the three digits and reads them in one lookup
        if ms is not None:
            last = _last_second
            if s.startswith(last.prefix):
                return last.base + ms
            prefix = s[:19]
            base = _SECOND_CACHE.get(prefix)
            if base is not None:
                last.prefix, last.base = prefix, base
                return base + ms
    return _parse_minute(s)


def _parse_minute(s: str) -> int | None:
    base = _MINUTE_CACHE.get(s[:16])
    # Fast path for "YYYY-MM-DDTHH:MM:SS.mmmZ": "SS" + "mmm" read as one number is
    # exactly the milliseconds into the minute.
    if base is not None and len(s) == 24 and s[16] == ":" and s[19] == "." and s[23] == "Z":
        digits = s[17:19] + s[20:23]
        if digits.isascii() and digits.isdigit():  # isdigit() alone takes non-ASCII digits
            ms = int(digits)
            if ms < 60_000:
                second = base + ms - ms % 1000
                if len(_SECOND_CACHE) >= _MINUTE_CACHE_MAX:
                    _SECOND_CACHE.clear()
                _SECOND_CACHE[s[:19]] = second
                return base + ms
    return _parse_general(s)


def _parse_general(s: str) -> int | None:
    base = _MINUTE_CACHE.get(s[:16])
    if base is None:
        base = _minute_ms(s[:16])
        if base is None:
            return None
    n = len(s)
    sec = s[17:19]
    if n == 20 and s[16] == ":" and s[19] in "Zz" and sec.isdigit() and sec.isascii():
        secs = int(sec)
        if secs < 60:  # 60, a leap second, is read below like in every other shape
            return base + secs * 1000
    m = _REST.match(s, 16)
    if m is None:
        return None
    secs = int(m.group(1))
    if secs > 60:
        return None
    secs = min(secs, 59)  # a leap second reads as the last second of its minute
    frac = m.group(2)
    ms = base + secs * 1000 + (int(frac[:3].ljust(3, "0")) if frac else 0)
    if m.group(4):
        oh, om = int(m.group(5)), int(m.group(6))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 60 + om) * 60_000
        ms = ms - offset if m.group(4) == "+" else ms + offset
    return ms if _MIN_MS <= ms <= _MAX_MS else None


def parse_ts(value: Any) -> int | None:
    """Epoch milliseconds from an RFC 3339 string or an epoch number, or ``None``.

    Numbers are seconds, or milliseconds when larger than 1e11 (year 5138 in seconds,
    1973 in milliseconds, so the two never overlap for real traffic). Booleans are not
    numbers here, whatever Python thinks.
    """
    cls = value.__class__
    if cls is str:
        ms = _parse_str(value)
    elif cls is int or cls is float:
        if value != value or value in (float("inf"), float("-inf")):
            return None
        # Whole milliseconds, truncated like an RFC 3339 fraction; the rounding to
        # microseconds first undoes float error (0.123 s is 122.99999... ms).
        scaled = value if abs(value) > _EPOCH_MS_THRESHOLD else value * 1000
        ms = math.floor(round(scaled, 3))
    else:
        return None
    if ms is None or not (_MIN_MS <= ms <= _MAX_MS):
        return None
    return ms


parse_str = _parse_str
"""``parse_ts`` for text only, without the type dispatch; every accepted year is in range."""


def format_ts(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the form every alert carries.

    Total: an instant outside years 0001-9999 (a window start before year 1 for a window
    of millennia) is shown at the nearest representable instant instead of raising while
    an alert is being built.
    """
    ms = min(max(ms, _MIN_MS), _MAX_MS)
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    # %Y does not pad years before 1000 ("1-01-01"), which parse_ts rightly rejects.
    return f"{dt.year:04d}-{dt:%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


_DURATION = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d)\s*\Z", re.ASCII)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(text: Any) -> int:
    """Milliseconds from ``10m``-style text; raises ``ValueError`` with a message for people.

    Only one number and one unit: ``1h30m`` is rejected rather than half-read, and a bare
    number is rejected because nobody can tell whether it meant seconds or minutes.
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"expected a duration like 30s, 10m, 1h or 2d, got {text!r}")
    if isinstance(text, int):
        if text == 0:
            return 0
        raise ValueError(f"a duration needs a unit (ms, s, m, h, d): {text!r}")
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(
            f"expected a duration like 30s, 10m, 1h or 2d (units ms, s, m, h, d), got {text!r}"
        )
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def format_duration(ms: int) -> str:
    """The shortest exact spelling, so alerts say ``10m`` rather than ``600000ms``."""
    if ms == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
