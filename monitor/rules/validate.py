"""Stage two of loading: plain YAML data to :class:`RuleSpec`, collecting every problem.

The validator never stops at the first mistake: each check appends a :class:`Problem`
with the position of the offending key or value and moves on, so ``exfil-monitor check``
can list everything wrong with a rule pack in one run.

:class:`Validator` is the entry point; this module checks the file's top level and each
rule's own keys (severity, grouping, window, aggregate, threshold, labels). The shared
definitions are checked in :mod:`monitor.rules.definitions`, a rule's ``match`` and
``when`` in :mod:`monitor.rules.conditions`, over the state in :mod:`monitor.rules.context`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from monitor import defaults
from monitor.problems import did_you_mean
from monitor.rules.context import FIELD, FileDoc, is_number, is_scalar
from monitor.rules.definitions import DefinitionChecks
from monitor.rules.exceptions import ExceptionChecks
from monitor.rules.model import SEVERITIES, THRESHOLD_OPS, RuleSpec
from monitor.rules.tables import TableChecks
from monitor.rules.yamlpos import Path
from monitor.timeparse import format_duration, parse_duration
from monitor.units import UNITS, default_unit

__all__ = ["MAX_BUCKETS", "FileDoc", "Validator", "default_resolution"]

MAX_BUCKETS = 10_000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
_TOP_KEYS = ("lists", "schedules", "actors", "inputs", "rules")
_RULE_KEYS = (
    "id", "description", "severity", "enabled", "match", "when", "group_by", "window",
    "resolution", "aggregate", "threshold", "suppress", "resolve_after", "labels", "annotations",
    "unit", "exceptions",
)  # fmt: skip


@dataclass
class Validator(DefinitionChecks, ExceptionChecks, TableChecks):
    """Validates a set of files as one rule set; lists and schedules are shared by all."""

    # -- top level -------------------------------------------------------------------

    def validate(self, files: list[FileDoc]) -> list[RuleSpec]:
        for f in files:
            self._top_level(f)
        for f in files:
            self._definitions(f)
            self._tables(f)
        specs: list[RuleSpec] = []
        seen: dict[str, str] = {}
        for f in files:
            rules = f.doc.data.get("rules") if isinstance(f.doc.data, dict) else None
            if rules is None:
                continue
            if not isinstance(rules, list):
                self._report(f, f.doc.where(("rules",)), "'rules' must be a list of rules", code="E-BAD-TYPE")
                continue
            for i, raw in enumerate(rules):
                rid = raw.get("id") if isinstance(raw, dict) else None
                if isinstance(rid, str) and rid in seen:
                    self._report(
                        f, f.doc.where(("rules", i, "id")),
                        f"duplicate rule id (first defined at {seen[rid]})", rid, code="E-DUPLICATE-RULE",
                    )  # fmt: skip
                elif isinstance(rid, str):
                    seen[rid] = f"{f.name}:{f.doc.where(('rules', i)).line}"
                spec = self._rule(f, ("rules", i), raw)
                if spec is not None and not any(s.id == spec.id for s in specs):
                    specs.append(spec)
        for name, (f, pos) in self._list_at.items():
            if name not in self._used and name in self.lists:
                self._warn(f, pos, f"list {name!r} is not used by any rule", code="W-UNUSED-LIST")
        return specs

    def _top_level(self, f: FileDoc) -> None:
        data = f.doc.data
        if data is None:
            return
        if not isinstance(data, dict):
            self._report(f, f.doc.where(()), "a rule file must be a mapping with lists, schedules and rules", code="E-BAD-TYPE")
            f.doc.data = {}
            return
        for key in data:
            if key not in _TOP_KEYS:
                self._report(
                    f, f.doc.key_at((key,)),
                    f"unknown top-level key {key!r} (expected {', '.join(_TOP_KEYS)})"
                    + did_you_mean(key, _TOP_KEYS),
                    code="E-UNKNOWN-KEY",
                )  # fmt: skip

    # -- rules -----------------------------------------------------------------------

    def _rule(self, f: FileDoc, path: Path, raw: Any) -> RuleSpec | None:
        doc = f.doc
        if not isinstance(raw, dict):
            self._report(f, doc.where(path), "each rule must be a mapping", code="E-BAD-TYPE")
            return None
        before = len(self.problems)
        rid = raw.get("id")
        if not isinstance(rid, str) or not _ID.match(rid):
            id_pos = doc.where((*path, "id")) if "id" in raw else doc.where(path)
            self._report(f, id_pos, "every rule needs an id of letters, digits and - _ . : (e.g. bulk-customer-read)", code="E-BAD-ID")
            rid = None
        def err(p: Path, msg: str, code: str) -> None:
            self._report(f, doc.where((*path, *p)), msg, rid, code=code)

        for key in raw:
            if key not in _RULE_KEYS:
                self._report(f, doc.key_at((*path, key)), f"unknown key {key!r}" + did_you_mean(key, _RULE_KEYS), rid, code="E-UNKNOWN-KEY")
        description = raw.get("description", "")
        if not isinstance(description, str):
            err(("description",), "description must be text", "E-BAD-TYPE")
        severity = raw.get("severity")
        if severity not in SEVERITIES:
            where: Path = ("severity",) if "severity" in raw else ()
            err(where, f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}", "E-BAD-SEVERITY")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            err(("enabled",), "enabled must be true or false", "E-BAD-TYPE")

        conditions = self._match(f, path, raw.get("match", {}), rid)
        when = self._when(f, path, raw.get("when"), rid)
        exceptions = self._exceptions(f, path, raw.get("exceptions"), rid)
        group_by = self._group_by(f, path, raw.get("group_by", []), rid)

        window_ms = self._duration(f, path, raw, "window", rid, positive=True)
        resolution_ms = self._duration(f, path, raw, "resolution", rid, positive=True)
        if resolution_ms is not None and window_ms is None and "window" not in raw:
            err(("resolution",), "resolution needs a window", "E-BAD-RESOLUTION")
        if window_ms is not None:
            if resolution_ms is None:
                resolution_ms = default_resolution(window_ms)
            elif window_ms % resolution_ms:
                err(("resolution",), "resolution must divide the window exactly", "E-BAD-RESOLUTION")
            elif window_ms // resolution_ms > MAX_BUCKETS:
                err(("resolution",), f"window/resolution is {window_ms // resolution_ms}, at most {MAX_BUCKETS}", "E-BAD-RESOLUTION")

        aggregate, agg_field = self._aggregate(f, path, raw.get("aggregate", "count"), rid)
        threshold_op, threshold = self._threshold(f, path, raw.get("threshold", {"gte": 1}), rid)
        suppress_ms = self._duration(f, path, raw, "suppress", rid, positive=False)
        if suppress_ms is None:
            suppress_ms = window_ms or 0
        resolve_after_ms = self._resolve_after(f, path, raw, rid, suppress_ms)
        labels = self._text_map(f, path, raw, "labels", rid, allow_scalars=True)
        annotations = self._text_map(f, path, raw, "annotations", rid, allow_scalars=False)
        unit = self._unit(f, path, raw, rid, default_unit(aggregate, agg_field))

        if rid is None or len(self.problems) > before:
            return None
        assert isinstance(severity, str) and not isinstance(when, bool)
        return RuleSpec(
            id=rid, file=f.name, pos=doc.where(path), description=description,
            severity=severity, enabled=enabled, conditions=tuple(conditions), when=when,
            group_by=tuple(group_by), window_ms=window_ms, resolution_ms=resolution_ms,
            aggregate=aggregate, aggregate_field=agg_field, threshold_op=threshold_op,
            threshold=threshold, suppress_ms=suppress_ms, resolve_after_ms=resolve_after_ms, labels=labels,
            annotations=annotations, source=raw, unit=unit, exceptions=exceptions,
        )  # fmt: skip

    def _duration(
        self, f: FileDoc, path: Path, raw: dict[str, Any], key: str, rid: str | None, *, positive: bool
    ) -> int | None:
        if key not in raw:
            return None
        try:
            ms = parse_duration(raw[key])
        except ValueError as exc:
            self._report(f, f.doc.where((*path, key)), f"{key}: {exc}", rid, code="E-BAD-DURATION")
            return None
        if positive and ms <= 0:
            self._report(f, f.doc.where((*path, key)), f"{key} must be longer than zero", rid, code="E-BAD-DURATION")
            return None
        return ms

    def _resolve_after(self, f: FileDoc, path: Path, raw: dict[str, Any], rid: str | None, suppress_ms: int) -> int:
        """At least ``suppress``: a hold after an episode's end is then never suppressed by
        that episode's alerts, so every episode opens with an alert (README "Semantics")."""
        ms = self._duration(f, path, raw, "resolve_after", rid, positive=True)
        if ms is None:
            return max(defaults.RESOLVE_AFTER_MS, suppress_ms)
        if ms < suppress_ms:
            self._report(
                f, f.doc.where((*path, "resolve_after")),
                f"resolve_after ({format_duration(ms)}) must be at least suppress ({format_duration(suppress_ms)}): "
                "an episode that ended while its alerts still suppress could reopen without an alert",
                rid, code="E-BAD-RESOLVE-AFTER",
            )  # fmt: skip
        return ms

    def _group_by(self, f: FileDoc, path: Path, value: Any, rid: str | None) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self._report(f, f.doc.where((*path, "group_by")), "group_by must be a field path or a list of them", rid, code="E-BAD-TYPE")
            return []
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not FIELD.match(item):
                ipath = (*path, "group_by") if isinstance(value, str) else (*path, "group_by", i)
                self._report(f, f.doc.where(ipath), f"group_by: invalid field path {item!r}", rid, code="E-BAD-FIELD")
            elif item in out:
                self._report(f, f.doc.where((*path, "group_by", i)), f"group_by: {item!r} given twice", rid, code="E-BAD-FIELD")
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
                if isinstance(fld, str) and FIELD.match(fld):
                    return kind, fld
                self._report(f, f.doc.where((*apath, kind)), f"aggregate {kind}: needs a field path", rid, code="E-BAD-FIELD")
                return kind, None
            if kind == "count" and fld is None:
                return "count", None
        self._report(
            f, f.doc.where(apath),
            f"aggregate must be count, {{sum: FIELD}}, {{distinct: FIELD}} or {{max: FIELD}}, got {value!r}",
            rid, code="E-BAD-AGGREGATE",
        )  # fmt: skip
        return "count", None

    def _threshold(self, f: FileDoc, path: Path, value: Any, rid: str | None) -> tuple[str, int | float]:
        tpath: Path = (*path, "threshold")
        if isinstance(value, dict) and len(value) == 1:
            ((op, n),) = value.items()
            if op in THRESHOLD_OPS and is_number(n):
                return op, n
            if op not in THRESHOLD_OPS:
                self._report(f, f.doc.key_at((*tpath, op)), f"threshold: unknown operator {op!r} ({', '.join(THRESHOLD_OPS)})", rid, code="E-BAD-THRESHOLD")
            else:
                self._report(f, f.doc.where((*tpath, op)), f"threshold: {op} needs a number", rid, code="E-BAD-THRESHOLD")
            return "gte", 1
        self._report(f, f.doc.where(tpath), "threshold must be one operator and a number, e.g. {gt: 50000}", rid, code="E-BAD-THRESHOLD")
        return "gte", 1

    def _text_map(
        self, f: FileDoc, path: Path, raw: dict[str, Any], key: str, rid: str | None, *, allow_scalars: bool
    ) -> dict[str, str]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            self._report(f, f.doc.where((*path, key)), f"{key} must be a mapping of names to text", rid, code="E-BAD-TYPE")
            return {}
        out = {}
        for k, v in value.items():
            if isinstance(v, str) or (allow_scalars and is_scalar(v) and not isinstance(v, bool)):
                out[k] = str(v)
            else:
                self._report(f, f.doc.where((*path, key, k)), f"{key}.{k} must be text", rid, code="E-BAD-TYPE")
        return out

    def _unit(self, f: FileDoc, path: Path, raw: dict[str, Any], rid: str | None, default: str) -> str:
        if "unit" not in raw:
            return default
        unit = raw["unit"]
        if unit not in UNITS:
            self._report(f, f.doc.where((*path, "unit")),
                         f"unit must be one of {', '.join(UNITS)}, got {unit!r}"
                         + (did_you_mean(unit, UNITS) if isinstance(unit, str) else ""),
                         rid, code="E-BAD-UNIT")  # fmt: skip
            return default
        return str(unit)


def default_resolution(window_ms: int) -> int:
    """window/60, or the next finer bucket width that divides the window exactly."""
    for buckets in range(60, MAX_BUCKETS + 1):
        if window_ms % buckets == 0:
            return window_ms // buckets
    return 1 if window_ms <= MAX_BUCKETS else window_ms  # unreachable for whole milliseconds
