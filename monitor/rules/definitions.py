"""Validation of a rule set's named definitions: the ``lists`` and ``schedules`` sections.

Definitions are shared by every file of a rule set and read before any rule, so a rule
may use a list or schedule defined in another file. They are checked here, apart from
the rules that use them; a schedule defined with errors is remembered as broken, so a
rule using it is told the schedule has errors rather than that it is undefined.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.problems import did_you_mean
from monitor.rules.context import NAME, FileDoc, ValidationContext, is_scalar
from monitor.rules.schedule import DAY_NAMES, Schedule
from monitor.rules.yamlpos import Path

_HOURS = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})\Z", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SCHEDULE_KEYS = ("timezone", "days", "hours", "holidays")
_DAYS = {name: i for names in (DAY_NAMES, _FULL_DAYS) for i, name in enumerate(names)}


class DefinitionChecks(ValidationContext):
    """Checks ``lists`` and ``schedules``, filling :attr:`lists` and :attr:`schedules`."""

    def _definitions(self, f: FileDoc) -> None:
        data = f.doc.data if isinstance(f.doc.data, dict) else {}
        for kind in ("lists", "schedules"):
            section = data.get(kind)
            if section is None:
                continue
            if not isinstance(section, dict):
                self._report(f, f.doc.where((kind,)), f"'{kind}' must be a mapping of names", code="E-BAD-TYPE")
                continue
            for name, value in section.items():
                path: Path = (kind, name)
                if not NAME.match(name):
                    self._report(f, f.doc.key_at(path), f"invalid name {name!r}", code="E-BAD-NAME")
                    continue
                where = f"{f.name}:{f.doc.key_at(path).line}"
                first = self._defined_at.setdefault((kind, name), where)
                if first != where:
                    self._report(
                        f, f.doc.key_at(path), f"{kind[:-1]} {name!r} is already defined at {first}",
                        code="E-DUPLICATE-NAME",
                    )
                    continue
                if kind == "lists":
                    self._list_at[name] = (f, f.doc.key_at(path))
                    self._list(f, path, name, value)
                else:
                    self._schedule(f, path, name, value)

    def _list(self, f: FileDoc, path: Path, name: str, value: Any) -> None:
        if not isinstance(value, list):
            self._report(f, f.doc.where(path), f"list {name!r} must be a YAML list", code="E-BAD-TYPE")
            return
        for i, item in enumerate(value):
            if not is_scalar(item):
                self._report(f, f.doc.where((*path, i)), f"list {name!r}: items must be text, numbers or booleans", code="E-BAD-TYPE")
        self.lists[name] = [v for v in value if is_scalar(v)]

    def _schedule(self, f: FileDoc, path: Path, name: str, value: Any) -> None:
        if not isinstance(value, dict):
            self._report(f, f.doc.where(path), f"schedule {name!r} must be a mapping", code="E-BAD-TYPE")
            return
        ok = True
        for key in value:
            if key not in _SCHEDULE_KEYS:
                self._report(
                    f, f.doc.key_at((*path, key)),
                    f"schedule {name!r}: unknown key {key!r} (expected timezone, days, hours, holidays)"
                    + did_you_mean(key, _SCHEDULE_KEYS),
                    code="E-UNKNOWN-KEY",
                )  # fmt: skip
                ok = False
        tz = value.get("timezone", "UTC")
        try:
            if not isinstance(tz, str):
                raise ValueError
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            self._report(f, f.doc.where((*path, "timezone")), f"schedule {name!r}: unknown time zone {tz!r}", code="E-BAD-TIMEZONE")
            ok = False
        days: set[int] = set()
        for i, day in enumerate(self._as_list(f, (*path, "days"), value.get("days", list(DAY_NAMES[:5])))):
            if isinstance(day, str) and day.lower() in _DAYS:  # not "sunshine" as sun
                days.add(_DAYS[day.lower()])
            else:
                self._report(f, f.doc.where((*path, "days", i)), f"schedule {name!r}: unknown day {day!r} (mon..sun)", code="E-BAD-DAY")
                ok = False
        ranges: list[tuple[int, int]] = []
        for i, text in enumerate(self._as_list(f, (*path, "hours"), value.get("hours", ["00:00-24:00"]))):
            m = _HOURS.match(text) if isinstance(text, str) else None
            start = end = -1
            if m:
                h1, m1, h2, m2 = (int(g) for g in m.groups())
                start, end = h1 * 60 + m1, h2 * 60 + m2
                if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or end > 1440:
                    start = end = -1
            if start < 0:
                self._report(
                    f, f.doc.where((*path, "hours", i)),
                    f"schedule {name!r}: hours must look like \"08:00-18:00\", got {text!r}",
                    code="E-BAD-HOURS",
                )  # fmt: skip
                ok = False
            elif start >= end:
                self._report(
                    f, f.doc.where((*path, "hours", i)),
                    f"schedule {name!r}: range {text!r} ends before it starts; "
                    "split an overnight range in two (\"22:00-24:00\", \"00:00-06:00\")",
                    code="E-BAD-HOURS",
                )  # fmt: skip
                ok = False
            else:
                ranges.append((start, end))
        holidays: set[str] = set()
        for i, day in enumerate(self._as_list(f, (*path, "holidays"), value.get("holidays", []))):
            if isinstance(day, str) and _DATE.match(day) and _valid_date(day):
                holidays.add(day)
            else:
                self._report(
                    f, f.doc.where((*path, "holidays", i)),
                    f"schedule {name!r}: holidays are dates like \"2026-11-26\", got {day!r}",
                    code="E-BAD-DATE",
                )  # fmt: skip
                ok = False
        if not ok:
            self._broken.add(name)
        else:
            self.schedules[name] = Schedule(name, tz, frozenset(days), tuple(ranges), frozenset(holidays))

    def _as_list(self, f: FileDoc, path: Path, value: Any) -> list[Any]:
        if isinstance(value, list):
            return value
        self._report(f, f.doc.where(path), f"'{path[-1]}' must be a list", code="E-BAD-TYPE")
        return []


def _valid_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
