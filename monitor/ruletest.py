"""``exfil-monitor test``: rule packs carry their own test cases, as YAML beside the rules.

A case gives events (inline or a JSONL file) and the exact set of alerts expected from
the rules it names. Events go through the same decoder and engine as ``replay``, after
a JSON round trip, so a case means what the same lines in a recording would mean.

With ``input_format`` (a built-in format or one of the rule files' ``inputs:``), the
events are the source's own records: ``events_file`` a log as the database wrote it,
framed as ``replay --input-format`` frames it, or inline ``events`` each one record (a
string as it is, an object as its JSON). They are mapped exactly as the daemon maps them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from monitor import defaults
from monitor.decode import Decoder
from monitor.engine import Alert, Engine, EngineOptions
from monitor.inputs import Format, UnknownFormat, get_format
from monitor.inputs.reader import MappedBatch, MappedFileSource, map_records
from monitor.pipeline import Pipeline
from monitor.rules.loader import TEST_SUFFIXES, RuleSet, hidden
from monitor.rules.yamlpos import YamlProblem, load
from monitor.telemetry import quiet_telemetry
from monitor.timeparse import parse_duration, parse_ts

CASE_KEYS = ("name", "rules", "warmup", "warmup_file", "events", "events_file", "input_format", "expect", "time_field",
             "allowed_lateness")  # fmt: skip
EXPECT_KEYS = ("rule", "group", "value", "fired_at")


@dataclass
class CaseResult:
    file: str
    line: int
    name: str
    problems: list[str] = field(default_factory=list)  # the case itself is malformed
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not (self.problems or self.missing or self.unexpected)

    def report(self) -> list[str]:
        head = f"{'PASS' if self.passed else 'FAIL'} {self.file}:{self.line} {self.name}"
        lines = [head]
        lines.extend(f"    error:      {p}" for p in self.problems)
        lines.extend(f"    missing:    {m}" for m in self.missing)
        lines.extend(f"    unexpected: {u}" for u in self.unexpected)
        return lines


def test_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.name.endswith(TEST_SUFFIXES) else []
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.name.endswith(TEST_SUFFIXES) and not hidden(p.relative_to(path))
    )


def _describe(rule: str, group: dict[str, Any], value: Any = None, fired_at: str | None = None) -> str:
    text = f"{rule} {orjson.dumps(group).decode()}"
    if value is not None:
        text += f" value={value}"
    if fired_at is not None:
        text += f" fired_at={fired_at}"
    return text


def _subset(ruleset: RuleSet, ids: list[str] | None) -> RuleSet:
    if ids is None:
        return ruleset
    chosen = tuple(
        dataclasses.replace(r, spec=dataclasses.replace(r.spec, enabled=True))
        for r in ruleset.rules
        if r.id in ids
    )
    return dataclasses.replace(ruleset, rules=chosen)


def run_file(path: Path, ruleset: RuleSet) -> list[CaseResult]:
    name = str(path)
    try:
        doc = load(path.read_text(encoding="utf-8"))
    except YamlProblem as exc:
        return [CaseResult(name, exc.pos.line, "(file)", [exc.message])]
    except (OSError, UnicodeDecodeError) as exc:
        return [CaseResult(name, 1, "(file)", [str(exc)])]
    cases = doc.data.get("cases") if isinstance(doc.data, dict) else None
    if not isinstance(cases, list):
        return [CaseResult(name, 1, "(file)", ["a test file needs a list under 'cases'"])]
    results = []
    for i, case in enumerate(cases):
        pos = doc.where(("cases", i))
        title = case.get("name", f"case {i + 1}") if isinstance(case, dict) else f"case {i + 1}"
        result = CaseResult(name, pos.line, str(title))
        if not isinstance(case, dict):
            result.problems.append("a case must be a mapping")
        else:
            _run_case(path, case, ruleset, result)
        results.append(result)
    return results


def _run_case(path: Path, case: dict[str, Any], ruleset: RuleSet, result: CaseResult) -> None:
    for key in case:
        if key not in CASE_KEYS:
            result.problems.append(f"unknown key {key!r} (expected {', '.join(CASE_KEYS)})")
    ids = case.get("rules")
    known = {r.id for r in ruleset.rules}
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            result.problems.append("rules must be a list of rule ids")
            ids = None
        else:
            result.problems.extend(f"unknown rule {i!r}" for i in ids if i not in known)
    fmt: Format | None = None
    fmt_name = case.get("input_format", "jsonl")
    try:
        fmt = get_format(str(fmt_name), ruleset.inputs)
    except UnknownFormat as exc:
        result.problems.append(f"input_format: {exc}")
    # warmup: events before the case's own, which train the rules' state and whose
    # alerts are not expected (nor counted): the case checks what comes after them.
    warm = "warmup" in case or "warmup_file" in case
    if fmt_name == "jsonl" or fmt is None:
        batches = [MappedBatch(str(path), 1, _event_lines(path, case, result))]
        warm_batches = [MappedBatch(str(path), 1, _event_lines(path, case, result, "warmup"))] if warm else []
    else:
        batches = _mapped(path, case, fmt, result)
        warm_batches = _mapped(path, case, fmt, result, "warmup") if warm else []
    expect = case.get("expect")
    if not isinstance(expect, list):
        result.problems.append("expect must be a list of alerts ([] for none)")
        expect = []
    try:
        lateness = parse_duration(case.get("allowed_lateness", "60s"))
    except ValueError as exc:
        result.problems.append(f"allowed_lateness: {exc}")
        lateness = 60_000
    if result.problems:
        return
    # A case is a timeline, often with hours between events: measured from its newest
    # event, every later one would be "future", so the skew check (a live-stream guard) is off.
    decoder = Decoder(time_field=str(case.get("time_field", defaults.TIME_FIELD)), max_future_skew_ms=0)
    engine = Engine(_subset(ruleset, ids), EngineOptions(allowed_lateness_ms=lateness))
    pipeline = Pipeline(decoder, engine, quiet_telemetry())
    alerts: list[Alert] = []
    for label, part in (("warmup: ", warm_batches), ("", batches)):
        for batch in part:
            for line, reason, _ in batch.invalid:
                result.problems.append(f"{label}event {line} cannot be read as {fmt_name}: {reason}")
            good, bad = pipeline.decode(batch.lines, partial(_where, path, label))
            for i, reason in bad:
                n = batch.numbers[i] if batch.numbers else i + 1
                result.problems.append(f"{label}event {n} cannot be used: {reason}")
            fired = pipeline.evaluate(good)
            if not label:
                alerts.extend(fired)
        if label and part:
            engine.warmed()
    _compare(alerts, expect, result)


def _where(path: Path, label: str, i: int) -> str:
    return f"{path}: {label}event {i + 1}"


def _mapped(path: Path, case: dict[str, Any], fmt: Format, result: CaseResult,
            key: str = "events") -> list[MappedBatch]:  # fmt: skip
    """The case's records through ``fmt``; records are numbered by line (a file) or position."""
    given = _case_input(path, case, result, as_records=True, key=key)
    if isinstance(given, Path):
        try:
            return list(MappedFileSource([str(given)], fmt).batches())
        except OSError as exc:
            result.problems.append(f"{key}_file: {exc.strerror or exc}: {given}")
            return []
    return [map_records(fmt, str(path), given)] if given else []


def _event_lines(path: Path, case: dict[str, Any], result: CaseResult, key: str = "events") -> list[bytes]:
    given = _case_input(path, case, result, as_records=False, key=key)
    if isinstance(given, Path):
        try:
            return [ln for ln in given.read_bytes().splitlines() if ln.strip()]
        except OSError as exc:
            result.problems.append(f"{key}_file: {exc.strerror or exc}: {given}")
            return []
    return given


def _case_input(path: Path, case: dict[str, Any], result: CaseResult, *, as_records: bool,
                key: str = "events") -> Path | list[bytes]:  # fmt: skip
    """A case's ``<key>_file`` (a path beside the test file) or its ``<key>`` as lines
    (``key``: ``events``, or ``warmup`` for the events before them).

    With ``as_records`` (an input format other than jsonl) a string is one raw record as
    the source wrote it and an object its JSON; otherwise every entry is an event object.
    """
    file_key = f"{key}_file"
    if key in case and file_key in case:
        result.problems.append(f"give {key} or {file_key}, not both")
        return []
    if file_key in case:
        return path.parent / str(case[file_key])
    events = case.get(key)
    if not isinstance(events, list):
        result.problems.append(f"{key} must be a list of " + ("records" if as_records else "event objects"))
        return []
    try:
        return [e.encode() if as_records and isinstance(e, str) else orjson.dumps(e) for e in events]
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
        result.problems.append(f"{key}: cannot be written as JSON: {exc}")
        return []


def _compare(alerts: list[Alert], expect: list[Any], result: CaseResult) -> None:
    remaining = list(alerts)
    for i, want in enumerate(expect):
        if not isinstance(want, dict) or "rule" not in want:
            result.problems.append(f"expect[{i}] must be a mapping with at least 'rule'")
            continue
        bad_keys = [k for k in want if k not in EXPECT_KEYS]
        if bad_keys:
            result.problems.append(f"expect[{i}]: unknown keys {bad_keys} (expected {', '.join(EXPECT_KEYS)})")
            continue
        fired_ms = parse_ts(want["fired_at"]) if "fired_at" in want else None
        if "fired_at" in want and fired_ms is None:
            result.problems.append(f"expect[{i}]: fired_at {want['fired_at']!r} is not a time")
            continue
        group = want.get("group", {})
        match = next(
            (
                a
                for a in remaining
                if a.rule == want["rule"]
                and a.group == group
                and ("value" not in want or a.value == want["value"])
                and (fired_ms is None or a.fired_at_ms == fired_ms)
            ),
            None,
        )
        if match is None:
            result.missing.append(_describe(want["rule"], group, want.get("value"), want.get("fired_at")))
        else:
            remaining.remove(match)
    for a in remaining:
        result.unexpected.append(_describe(a.rule, a.group, a.value, a.to_dict()["fired_at"]))


def run_tests(path: Path, ruleset: RuleSet) -> list[CaseResult]:
    results: list[CaseResult] = []
    for f in test_files(path):
        results.extend(run_file(f, ruleset))
    return results

