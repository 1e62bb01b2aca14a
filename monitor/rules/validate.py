"""Stage two of loading: plain YAML data to :class:`RuleSpec`, collecting every problem.

The validator never stops at the first mistake: each check appends a :class:`Problem`
with the position of the offending key or value and moves on, so ``exfil-monitor check``
can list everything wrong with a rule pack in one run.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.rules.compile import compile_regex
from monitor.rules.errors import Pos, Problem
from monitor.rules.model import (
    MATCH_OPS,
    SEVERITIES,
    THRESHOLD_OPS,
    Condition,
    RuleSpec,
)
from monitor.rules.schedule import DAY_NAMES, Schedule
from monitor.rules.yamlpos import Doc, Path
from monitor.timeparse import parse_duration

MAX_BUCKETS = 10_000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_FIELD = re.compile(r"[^.\s]+(?:\.[^.\s]+)*\Z")
_HOURS = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})\Z", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_RULE_KEYS = (
    "id", "description", "severity", "enabled", "match", "when", "group_by", "window",
    "resolution", "aggregate", "threshold", "suppress", "labels", "annotations",
)  # fmt: skip
_LIST_OPS = ("in", "not_in", "cidr")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS = {name: i for names in (DAY_NAMES, _FULL_DAYS) for i, name in enumerate(names)}


def _is_scalar(v: Any) -> bool:
    return isinstance(v, str | int | float) and v is not None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass
class FileDoc:
    """One parsed file: its name, text positions and data."""

    name: str
    doc: Doc


@dataclass
class Validator:
    """Validates a set of files as one rule set; lists and schedules are shared by all."""

    problems: list[Problem] = field(default_factory=list)
    lists: dict[str, list[Any]] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    _defined_at: dict[tuple[str, str], str] = field(default_factory=dict)
    _broken: set[str] = field(default_factory=set)  # schedules defined with errors

    # -- reporting -------------------------------------------------------------------

    def _report(self, f: FileDoc, pos: Pos, message: str, rule: str | None = None) -> None:
        self.problems.append(Problem(f.name, pos.line, pos.col, message, rule))

    # -- top level -------------------------------------------------------------------

    def validate(self, files: list[FileDoc]) -> list[RuleSpec]:
        for f in files:
            self._top_level(f)
        for f in files:
            self._definitions(f)
        specs: list[RuleSpec] = []
        seen: dict[str, str] = {}
        for f in files:
            rules = f.doc.data.get("rules") if isinstance(f.doc.data, dict) else None
            if rules is None:
                continue
            if not isinstance(rules, list):
                self._report(f, f.doc.where(("rules",)), "'rules' must be a list of rules")
                continue
            for i, raw in enumerate(rules):
                rid = raw.get("id") if isinstance(raw, dict) else None
                if isinstance(rid, str) and rid in seen:
                    self._report(
                        f, f.doc.where(("rules", i, "id")),
                        f"duplicate rule id (first defined at {seen[rid]})", rid,
                    )  # fmt: skip
                elif isinstance(rid, str):
                    seen[rid] = f"{f.name}:{f.doc.where(('rules', i)).line}"
                spec = self._rule(f, ("rules", i), raw)
                if spec is not None and not any(s.id == spec.id for s in specs):
                    specs.append(spec)
        return specs

    def _top_level(self, f: FileDoc) -> None:
        data = f.doc.data
        if data is None:
            return
        if not isinstance(data, dict):
            self._report(f, f.doc.where(()), "a rule file must be a mapping with lists, schedules and rules")
            f.doc.data = {}
            return
        for key in data:
            if key not in ("lists", "schedules", "rules"):
                self._report(
                    f, f.doc.key_at((key,)),
                    f"unknown top-level key {key!r} (expected lists, schedules, rules)",
                )  # fmt: skip

    def _definitions(self, f: FileDoc) -> None:
        data = f.doc.data if isinstance(f.doc.data, dict) else {}
        for kind in ("lists", "schedules"):
            section = data.get(kind)
            if section is None:
                continue
            if not isinstance(section, dict):
                self._report(f, f.doc.where((kind,)), f"'{kind}' must be a mapping of names")
                continue
            for name, value in section.items():
                path: Path = (kind, name)
                if not _NAME.match(name):
                    self._report(f, f.doc.key_at(path), f"invalid name {name!r}")
                    continue
                where = f"{f.name}:{f.doc.key_at(path).line}"
                first = self._defined_at.setdefault((kind, name), where)
                if first != where:
                    self._report(
                        f, f.doc.key_at(path), f"{kind[:-1]} {name!r} is already defined at {first}"
                    )
                    continue
                if kind == "lists":
                    self._list(f, path, name, value)
                else:
                    self._schedule(f, path, name, value)

    def _list(self, f: FileDoc, path: Path, name: str, value: Any) -> None:
        if not isinstance(value, list):
            self._report(f, f.doc.where(path), f"list {name!r} must be a YAML list")
            return
        for i, item in enumerate(value):
            if not _is_scalar(item):
                self._report(f, f.doc.where((*path, i)), f"list {name!r}: items must be text, numbers or booleans")
        self.lists[name] = [v for v in value if _is_scalar(v)]

    def _schedule(self, f: FileDoc, path: Path, name: str, value: Any) -> None:
        if not isinstance(value, dict):
            self._report(f, f.doc.where(path), f"schedule {name!r} must be a mapping")
            return
        ok = True
        for key in value:
            if key not in ("timezone", "days", "hours", "holidays"):
                self._report(
                    f, f.doc.key_at((*path, key)),
                    f"schedule {name!r}: unknown key {key!r} (expected timezone, days, hours, holidays)",
                )  # fmt: skip
                ok = False
        tz = value.get("timezone", "UTC")
        try:
            if not isinstance(tz, str):
                raise ValueError
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            self._report(f, f.doc.where((*path, "timezone")), f"schedule {name!r}: unknown time zone {tz!r}")
            ok = False
        days: set[int] = set()
        for i, day in enumerate(self._as_list(f, (*path, "days"), value.get("days", list(DAY_NAMES[:5])))):
            if isinstance(day, str) and day.lower() in _DAYS:  # not "sunshine" as sun
                days.add(_DAYS[day.lower()])
            else:
                self._report(f, f.doc.where((*path, "days", i)), f"schedule {name!r}: unknown day {day!r} (mon..sun)")
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
                )  # fmt: skip
                ok = False
            elif start >= end:
                self._report(
                    f, f.doc.where((*path, "hours", i)),
                    f"schedule {name!r}: range {text!r} ends before it starts; "
                    "split an overnight range in two (\"22:00-24:00\", \"00:00-06:00\")",
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
                )  # fmt: skip
                ok = False
        if not ok:
            self._broken.add(name)
        else:
            self.schedules[name] = Schedule(name, tz, frozenset(days), tuple(ranges), frozenset(holidays))

    def _as_list(self, f: FileDoc, path: Path, value: Any) -> list[Any]:
        if isinstance(value, list):
            return value
        self._report(f, f.doc.where(path), f"'{path[-1]}' must be a list")
        return []

    # -- rules -----------------------------------------------------------------------

    def _rule(self, f: FileDoc, path: Path, raw: Any) -> RuleSpec | None:
        doc = f.doc
        if not isinstance(raw, dict):
            self._report(f, doc.where(path), "each rule must be a mapping")
            return None
        before = len(self.problems)
        rid = raw.get("id")
        if not isinstance(rid, str) or not _ID.match(rid):
            id_pos = doc.where((*path, "id")) if "id" in raw else doc.where(path)
            self._report(f, id_pos, "every rule needs an id of letters, digits and - _ . : (e.g. bulk-customer-read)")
            rid = None
        err: Callable[[Path, str], None] = lambda p, msg: self._report(f, doc.where((*path, *p)), msg, rid)  # noqa: E731

        for key in raw:
            if key not in _RULE_KEYS:
                self._report(f, doc.key_at((*path, key)), f"unknown key {key!r}", rid)
        description = raw.get("description", "")
        if not isinstance(description, str):
            err(("description",), "description must be text")
        severity = raw.get("severity")
        if severity not in SEVERITIES:
            where: Path = ("severity",) if "severity" in raw else ()
            err(where, f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            err(("enabled",), "enabled must be true or false")

        conditions = self._match(f, path, raw.get("match", {}), rid)
        when = self._when(f, path, raw.get("when"), rid)
        group_by = self._group_by(f, path, raw.get("group_by", []), rid)

        window_ms = self._duration(f, path, raw, "window", rid, positive=True)
        resolution_ms = self._duration(f, path, raw, "resolution", rid, positive=True)
        if resolution_ms is not None and window_ms is None and "window" not in raw:
            err(("resolution",), "resolution needs a window")
        if window_ms is not None:
            if resolution_ms is None:
                resolution_ms = default_resolution(window_ms)
            elif window_ms % resolution_ms:
                err(("resolution",), "resolution must divide the window exactly")
            elif window_ms // resolution_ms > MAX_BUCKETS:
                err(("resolution",), f"window/resolution is {window_ms // resolution_ms}, at most {MAX_BUCKETS}")

        aggregate, agg_field = self._aggregate(f, path, raw.get("aggregate", "count"), rid)
        threshold_op, threshold = self._threshold(f, path, raw.get("threshold", {"gte": 1}), rid)
        suppress_ms = self._duration(f, path, raw, "suppress", rid, positive=False)
        if suppress_ms is None:
            suppress_ms = window_ms or 0
        labels = self._text_map(f, path, raw, "labels", rid, allow_scalars=True)
        annotations = self._text_map(f, path, raw, "annotations", rid, allow_scalars=False)

        if rid is None or len(self.problems) > before:
            return None
        assert isinstance(severity, str) and not isinstance(when, bool)
        return RuleSpec(
            id=rid, file=f.name, pos=doc.where(path), description=description,
            severity=severity, enabled=enabled, conditions=tuple(conditions), when=when,
            group_by=tuple(group_by), window_ms=window_ms, resolution_ms=resolution_ms,
            aggregate=aggregate, aggregate_field=agg_field, threshold_op=threshold_op,
            threshold=threshold, suppress_ms=suppress_ms, labels=labels,
            annotations=annotations, source=raw,
        )  # fmt: skip

    def _duration(
        self, f: FileDoc, path: Path, raw: dict[str, Any], key: str, rid: str | None, *, positive: bool
    ) -> int | None:
        if key not in raw:
            return None
        try:
            ms = parse_duration(raw[key])
        except ValueError as exc:
            self._report(f, f.doc.where((*path, key)), f"{key}: {exc}", rid)
            return None
        if positive and ms <= 0:
            self._report(f, f.doc.where((*path, key)), f"{key} must be longer than zero", rid)
            return None
        return ms

    def _match(self, f: FileDoc, path: Path, match: Any, rid: str | None) -> list[Condition]:
        doc = f.doc
        out: list[Condition] = []
        if not isinstance(match, dict):
            self._report(f, doc.where((*path, "match")), "match must be a mapping of field: condition", rid)
            return out
        for fld, cond in match.items():
            fpath: Path = (*path, "match", fld)
            if not _FIELD.match(fld):
                self._report(f, doc.key_at(fpath), f"invalid field path {fld!r}", rid)
                continue
            if isinstance(cond, dict):
                if not cond:
                    self._report(f, doc.where(fpath), f"{fld}: no operator given", rid)
                for op, value in cond.items():
                    c = self._condition(f, (*fpath, op), fld, op, value, rid)
                    if c is not None:
                        out.append(c)
            elif isinstance(cond, list):
                self._report(f, doc.where(fpath), f"{fld}: a list needs an operator, e.g. {{in: [...]}}", rid)
            else:
                c = self._condition(f, fpath, fld, "eq", cond, rid, bare=True)
                if c is not None:
                    out.append(c)
        return out

    def _condition(
        self, f: FileDoc, path: Path, fld: str, op: str, value: Any, rid: str | None, *, bare: bool = False
    ) -> Condition | None:
        doc = f.doc
        pos = doc.where(path)

        def bad(msg: str) -> None:
            self._report(f, pos, f"{fld}: {msg}", rid)

        if op not in MATCH_OPS:
            self._report(f, doc.key_at(path), f"{fld}: unknown operator {op!r} (one of {', '.join(MATCH_OPS)})", rid)
            return None
        if isinstance(value, str) and value.startswith("$") and _NAME.match(value[1:]):
            if op not in _LIST_OPS:
                bad(f"a list reference ({value}) works with {', '.join(_LIST_OPS)} only")
                return None
            if value[1:] not in self.lists:
                bad(f"undefined list {value}")
                return None
            value = self.lists[value[1:]]
        if op in ("eq", "ne"):
            if not _is_scalar(value):
                bad(f"{op if not bare else 'a value'} needs text, a number or a boolean"
                    + ("; to test for a missing field use {exists: false}" if value is None else ""))
                return None
        elif op in ("in", "not_in"):
            if not isinstance(value, list) or not all(_is_scalar(v) for v in value):
                bad(f"{op} needs a list of values or a $list")
                return None
        elif op in ("contains", "startswith", "endswith"):
            if not (isinstance(value, str) or (op == "contains" and _is_scalar(value))):
                bad(f"{op} needs text")
                return None
        elif op == "regex":
            if not isinstance(value, str):
                bad("regex needs text")
                return None
            try:
                compile_regex(value)
            except Exception as exc:  # re2 raises its own error type, with bytes
                detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
                bad(f"bad regex {value!r}: {detail}")
                return None
        elif op == "cidr":
            nets = value if isinstance(value, list) else [value]
            for net in nets:
                try:
                    if not isinstance(net, str):
                        raise ValueError(f"{net!r} is not text")
                    ipaddress.ip_network(net, strict=False)
                except ValueError as exc:
                    bad(f"bad network {net!r}: {exc}")
                    return None
            value = list(nets)
        elif op in ("gt", "gte", "lt", "lte"):
            if not (_is_number(value) or isinstance(value, str)):
                bad(f"{op} needs a number or text")
                return None
        elif op == "exists" and not isinstance(value, bool):
            bad("exists needs true or false")
            return None
        return Condition(fld, op, value, pos)

    def _when(self, f: FileDoc, path: Path, when: Any, rid: str | None) -> tuple[str, Schedule] | bool | None:
        if when is None:
            return None
        wpath: Path = (*path, "when")
        if not isinstance(when, dict) or len(when) != 1:
            self._report(f, f.doc.where(wpath), "when must be {inside: SCHEDULE} or {outside: SCHEDULE}", rid)
            return False
        ((kind, name),) = when.items()
        if kind not in ("inside", "outside"):
            self._report(f, f.doc.key_at((*wpath, kind)), f"when: unknown key {kind!r} (inside or outside)", rid)
            return False
        if not isinstance(name, str) or name not in self.schedules:
            problem = f"schedule {name!r} has errors" if name in self._broken else f"undefined schedule {name!r}"
            self._report(f, f.doc.where((*wpath, kind)), f"when: {problem}", rid)
            return False
        return (kind, self.schedules[name])

    def _group_by(self, f: FileDoc, path: Path, value: Any, rid: str | None) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self._report(f, f.doc.where((*path, "group_by")), "group_by must be a field path or a list of them", rid)
            return []
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not _FIELD.match(item):
                ipath = (*path, "group_by") if isinstance(value, str) else (*path, "group_by", i)
                self._report(f, f.doc.where(ipath), f"group_by: invalid field path {item!r}", rid)
            elif item in out:
                self._report(f, f.doc.where((*path, "group_by", i)), f"group_by: {item!r} given twice", rid)
            else:
                out.append(item)
        return out

    def _aggregate(self, f: FileDoc, path: Path, value: Any, rid: str | None) -> tuple[str, str | None]:
        apath: Path = (*path, "aggregate")
        if value == "count":
            return "count", None
        if isinstance(value, dict) and len(value) == 1:
            ((kind, fld),) = value.items()
            if kind in ("sum", "distinct", "max"):
                if isinstance(fld, str) and _FIELD.match(fld):
                    return kind, fld
                self._report(f, f.doc.where((*apath, kind)), f"aggregate {kind}: needs a field path", rid)
                return kind, None
            if kind == "count" and fld is None:
                return "count", None
        self._report(
            f, f.doc.where(apath),
            f"aggregate must be count, {{sum: FIELD}}, {{distinct: FIELD}} or {{max: FIELD}}, got {value!r}",
            rid,
        )  # fmt: skip
        return "count", None

    def _threshold(self, f: FileDoc, path: Path, value: Any, rid: str | None) -> tuple[str, int | float]:
        tpath: Path = (*path, "threshold")
        if isinstance(value, dict) and len(value) == 1:
            ((op, n),) = value.items()
            if op in THRESHOLD_OPS and _is_number(n):
                return op, n
            if op not in THRESHOLD_OPS:
                self._report(f, f.doc.key_at((*tpath, op)), f"threshold: unknown operator {op!r} ({', '.join(THRESHOLD_OPS)})", rid)
            else:
                self._report(f, f.doc.where((*tpath, op)), f"threshold: {op} needs a number", rid)
            return "gte", 1
        self._report(f, f.doc.where(tpath), "threshold must be one operator and a number, e.g. {gt: 50000}", rid)
        return "gte", 1

    def _text_map(
        self, f: FileDoc, path: Path, raw: dict[str, Any], key: str, rid: str | None, *, allow_scalars: bool
    ) -> dict[str, str]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            self._report(f, f.doc.where((*path, key)), f"{key} must be a mapping of names to text", rid)
            return {}
        out = {}
        for k, v in value.items():
            if isinstance(v, str) or (allow_scalars and _is_scalar(v) and not isinstance(v, bool)):
                out[k] = str(v)
            else:
                self._report(f, f.doc.where((*path, key, k)), f"{key}.{k} must be text", rid)
        return out


def default_resolution(window_ms: int) -> int:
    """window/60, or the next finer bucket width that divides the window exactly."""
    for buckets in range(60, MAX_BUCKETS + 1):
        if window_ms % buckets == 0:
            return window_ms // buckets
    return 1 if window_ms <= MAX_BUCKETS else window_ms  # unreachable for whole milliseconds


def _valid_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
