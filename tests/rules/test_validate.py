"""Rule validation: every problem of every file at once, each at FILE:LINE:COL, with
``rule ID: `` where a rule is concerned; and the issue's example means what it says."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.engine import Engine
from monitor.rules.errors import Problem, RuleLoadError
from monitor.rules.loader import RuleSet, load_rules, load_texts
from monitor.timeparse import parse_ts

EXAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "rules" / "example.yaml"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?:rule (?P<rule>\S+): )?(?P<msg>.+)$")

Problems = Callable[..., list[Problem]]


@pytest.fixture
def problems() -> Problems:
    """``problems(name=text, ...)``: every problem loading those files reports (files in
    the order given); fails the test if the set loads."""

    def run(**files: str) -> list[Problem]:
        sources = [(name.replace("__", "/") + ".yaml", text.encode()) for name, text in files.items()]
        with pytest.raises(RuleLoadError) as info:
            load_texts(sources)
        return info.value.problems

    return run


def one_rule(**fields: Any) -> str:
    return "rules:\n  - " + json.dumps({"id": "r", "severity": "low", **fields}) + "\n"


def at(text: str, token: str, nth: int = 1) -> tuple[int, int]:
    """(line, column) of the nth occurrence of ``token`` in ``text``, as editors count."""
    index = -1
    for _ in range(nth):
        index = text.index(token, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def summary(ps: list[Problem]) -> list[tuple[str, int, int, str | None]]:
    return [(p.file, p.line, p.col, p.rule) for p in ps]


# -- one run, several files, every kind of problem ----------------------------------------

A = """\
lists:
  tables: [customers]
schedules:
  office:
    timezone: America/Chicago
    hours: ["22:00-06:00"]
    colour: red
  office2:
    timezone: Mars/Olympus_Mons
    days: [mon, sunshine]
    hours: ["8:00-18:00", "08:00-24:00", "08:00-25:00"]
    holidays: ["2026-02-30", 2026-11-26]
bogus: 1
rules:
  - id: r1
    severity: urgent
    match:
      resource.name: {in: $nope}
      action: {like: select}
      actor.ip: {cidr: [10.0.0.0/8, 300.1.1.1/8]}
      path: {regex: "(a)\\\\1"}
      table: {eq: $tables}
    when: {outside: nowhere}
    window: 10
    suppress: -1h
    colour: blue
  - id: r2
    severity: low
    window: 10m
    resolution: 7s
  - id: r3
    severity: low
    window: 100000s
    resolution: 1s
  - id: r4
    severity: low
    window: 1h30m
    resolution: 0s
"""

B = """\
lists:
  tables: [dup]
schedules:
  office:
    timezone: UTC
rules:
  - id: r1
    severity: low
  - id: r5
    match: {x: {exists: maybe}}
    threshold: {above: 5}
    aggregate: {avg: rows}
    group_by: [a, a]
    labels: {team: [x]}
"""

C = """\
rules:
  - id: r6
    severity: low
    match: {x: {eq: 1}
"""

D = """\
rules:
  - id: r7
    severity: low
    when: {inside: office}
    window: 5m
    resolution: 10s
"""


def test_every_problem_of_every_file_in_one_run(problems: Problems) -> None:
    ps = problems(a=A, b=B, c=C, d=D)
    expected = [
        ("a.yaml", 6, 13, None, "schedule 'office': range '22:00-06:00' ends before it starts"),
        ("a.yaml", 7, 5, None, "schedule 'office': unknown key 'colour'"),
        ("a.yaml", 9, 15, None, "schedule 'office2': unknown time zone 'Mars/Olympus_Mons'"),
        ("a.yaml", 10, 17, None, "schedule 'office2': unknown day 'sunshine'"),
        ("a.yaml", 11, 13, None, "schedule 'office2': hours must look like \"08:00-18:00\", got '8:00-18:00'"),
        ("a.yaml", 11, 42, None, "got '08:00-25:00'"),
        ("a.yaml", 12, 16, None, "holidays are dates like \"2026-11-26\", got '2026-02-30'"),
        ("a.yaml", 13, 1, None, "unknown top-level key 'bogus'"),
        ("a.yaml", 16, 15, "r1", "severity must be one of info, low, medium, high, critical, got 'urgent'"),
        ("a.yaml", 18, 27, "r1", "resource.name: undefined list $nope"),
        ("a.yaml", 19, 16, "r1", "action: unknown operator 'like'"),
        ("a.yaml", 20, 24, "r1", "actor.ip: bad network '300.1.1.1/8'"),
        ("a.yaml", 21, 21, "r1", "path: bad regex '(a)\\\\1'"),
        ("a.yaml", 22, 19, "r1", "table: a list reference ($tables) works with in, not_in, cidr only"),
        ("a.yaml", 23, 21, "r1", "when: undefined schedule 'nowhere'"),
        ("a.yaml", 24, 13, "r1", "window: a duration needs a unit"),
        ("a.yaml", 25, 15, "r1", "suppress: expected a duration like 30s"),
        ("a.yaml", 26, 5, "r1", "unknown key 'colour'"),
        ("a.yaml", 30, 17, "r2", "resolution must divide the window exactly"),
        ("a.yaml", 34, 17, "r3", "window/resolution is 100000, at most 10000"),
        ("a.yaml", 37, 13, "r4", "window: expected a duration like 30s, 10m, 1h or 2d"),
        ("a.yaml", 38, 17, "r4", "resolution must be longer than zero"),
        ("b.yaml", 2, 3, None, "list 'tables' is already defined at a.yaml:2"),
        ("b.yaml", 4, 3, None, "schedule 'office' is already defined at a.yaml:4"),
        ("b.yaml", 7, 9, "r1", "duplicate rule id (first defined at a.yaml:15)"),
        ("b.yaml", 9, 5, "r5", "severity must be one of"),
        ("b.yaml", 10, 25, "r5", "x: exists needs true or false"),
        ("b.yaml", 11, 17, "r5", "threshold: unknown operator 'above'"),
        ("b.yaml", 12, 16, "r5", "aggregate must be count, {sum: FIELD}"),
        ("b.yaml", 13, 19, "r5", "group_by: 'a' given twice"),
        ("b.yaml", 14, 20, "r5", "labels.team must be text"),
        ("c.yaml", 5, 1, None, "YAML syntax error"),
        ("d.yaml", 4, 20, "r7", "when: schedule 'office' has errors"),
    ]
    assert len(ps) == len(expected), "\n".join(map(str, ps))
    for p, (file, line, col, rule, fragment) in zip(ps, expected, strict=True):
        assert (p.file, p.line, p.col, p.rule) == (file, line, col, rule), str(p)
        assert fragment in p.message, str(p)
        text = str(p)
        m = LINE.match(text)
        assert m is not None, text
        assert m["rule"] == rule


def test_problems_come_sorted_by_file_and_position(problems: Problems) -> None:
    z = one_rule(id="z", severity="bad")
    a = "# first\n" + one_rule(id="a", window="x", colour=1)
    ps = problems(z=z, a=a)
    assert [(p.file, (p.line, p.col)) for p in ps] == [
        ("a.yaml", at(a, '"x"')),
        ("a.yaml", at(a, '"colour"')),
        ("z.yaml", at(z, '"bad"')),
    ]
    assert summary(ps) == sorted(summary(ps))


def test_an_error_anywhere_means_no_rule_set() -> None:
    good = one_rule(match={"action": "select"})
    with pytest.raises(RuleLoadError) as info:
        load_texts([("good.yaml", good.encode()), ("bad.yaml", b"rules: [")])
    assert [p.file for p in info.value.problems] == ["bad.yaml"]
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)


# -- each kind on its own ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"window": "10"}, "window: expected a duration like 30s, 10m, 1h or 2d (units ms, s, m, h, d), got '10'"),
        ({"window": 10}, "window: a duration needs a unit"),
        ({"window": "1h30m"}, "window: expected a duration"),
        ({"window": "-5m"}, "window: expected a duration"),
        ({"window": "0s"}, "window must be longer than zero"),
        ({"window": True}, "window: expected a duration"),
        ({"window": "10m", "resolution": "0ms"}, "resolution must be longer than zero"),
        ({"resolution": "10s"}, "resolution needs a window"),
        ({"suppress": "1.5h"}, "suppress: expected a duration"),
        ({"suppress": "soon"}, "suppress: expected a duration"),
        ({"window": "10m", "resolution": "7s"}, "resolution must divide the window exactly"),
        ({"window": "1d", "resolution": "1s"}, "window/resolution is 86400, at most 10000"),
        ({"window": "10001ms", "resolution": "1ms"}, "window/resolution is 10001, at most 10000"),
        ({"severity": "urgent"}, "severity must be one of info, low, medium, high, critical, got 'urgent'"),
        ({"severity": None}, "severity must be one of"),
        ({"severity": "HIGH"}, "severity must be one of"),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"description": 5}, "description must be text"),
        ({"match": ["action"]}, "match must be a mapping"),
        ({"match": {"action": ["select"]}}, "action: a list needs an operator"),
        ({"match": {"action": {}}}, "action: no operator given"),
        ({"match": {"action": None}}, "to test for a missing field use {exists: false}"),
        ({"match": {"action": {"like": "x"}}}, "action: unknown operator 'like'"),
        ({"match": {"action": {"EQ": "x"}}}, "action: unknown operator 'EQ'"),
        ({"match": {"a..b": 1}}, "invalid field path 'a..b'"),
        ({"match": {"f": {"in": "$nope"}}}, "f: undefined list $nope"),
        ({"match": {"f": {"in": "x"}}}, "f: in needs a list of values or a $list"),
        ({"match": {"f": {"in": [[1]]}}}, "f: in needs a list of values"),
        ({"match": {"f": {"eq": "$tables"}}}, "a list reference ($tables) works with in, not_in, cidr only"),
        ({"match": {"f": {"contains": ["a"]}}}, "f: contains needs text"),
        ({"match": {"f": {"startswith": 5}}}, "f: startswith needs text"),
        ({"match": {"f": {"regex": 5}}}, "f: regex needs text"),
        ({"match": {"f": {"regex": "(a)\\1"}}}, "bad regex '(a)\\\\1': invalid escape sequence"),
        ({"match": {"f": {"regex": "(?=x)"}}}, "bad regex '(?=x)': invalid perl operator"),
        ({"match": {"f": {"regex": "a{2,1}"}}}, "bad regex 'a{2,1}'"),
        ({"match": {"f": {"regex": "[z-a]"}}}, "bad regex '[z-a]'"),
        ({"match": {"f": {"cidr": "10.0.0.0/33"}}}, "bad network '10.0.0.0/33'"),
        ({"match": {"f": {"cidr": ["10.0.0.0/8", "nowhere"]}}}, "bad network 'nowhere'"),
        ({"match": {"f": {"cidr": 10}}}, "bad network 10: 10 is not text"),
        ({"match": {"f": {"gt": True}}}, "f: gt needs a number or text"),
        ({"match": {"f": {"lte": [1]}}}, "f: lte needs a number or text"),
        ({"match": {"f": {"exists": "yes"}}}, "f: exists needs true or false"),
        ({"when": {"outside": "nowhere"}}, "when: undefined schedule 'nowhere'"),
        ({"when": {"during": "office"}}, "when: unknown key 'during'"),
        ({"when": "office"}, "when must be {inside: SCHEDULE} or {outside: SCHEDULE}"),
        ({"when": {"inside": "a", "outside": "b"}}, "when must be"),
        ({"group_by": 5}, "group_by must be a field path or a list of them"),
        ({"group_by": ["a", "a"]}, "group_by: 'a' given twice"),
        ({"group_by": ["a b"]}, "group_by: invalid field path 'a b'"),
        ({"aggregate": "sum"}, "aggregate must be count, {sum: FIELD}"),
        ({"aggregate": {"avg": "rows"}}, "aggregate must be count"),
        ({"aggregate": {"sum": 5}}, "aggregate sum: needs a field path"),
        ({"threshold": 5}, "threshold must be one operator and a number"),
        ({"threshold": {"above": 5}}, "threshold: unknown operator 'above'"),
        ({"threshold": {"gt": "5"}}, "threshold: gt needs a number"),
        ({"threshold": {"gt": 1, "lt": 5}}, "threshold must be one operator"),
        ({"labels": ["team"]}, "labels must be a mapping of names to text"),
        ({"labels": {"team": True}}, "labels.team must be text"),
        ({"annotations": {"summary": 5}}, "annotations.summary must be text"),
        ({"colour": "blue"}, "unknown key 'colour'"),
        ({"Window": "10m"}, "unknown key 'Window'"),
    ],
)
def test_rule_problems(problems: Problems, fields: dict[str, Any], fragment: str) -> None:
    text = "lists:\n  tables: [customers]\n" + one_rule(**fields)
    ps = problems(rules=text)
    assert [p.rule for p in ps] == ["r"], "\n".join(map(str, ps))
    assert fragment in ps[0].message
    assert LINE.match(str(ps[0]))


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"id": None}, "every rule needs an id"),
        ({"id": "has space"}, "every rule needs an id"),
        ({"id": 5}, "every rule needs an id"),
        ({"id": "-leading"}, "every rule needs an id"),
    ],
)
def test_a_rule_without_a_usable_id_is_reported_without_one(
    problems: Problems, fields: dict[str, Any], fragment: str
) -> None:
    ps = problems(rules=one_rule(**fields))
    assert [(p.rule, fragment in p.message) for p in ps] == [(None, True)]
    assert str(ps[0]).startswith("rules.yaml:2:")
    assert ": rule " not in str(ps[0])


@pytest.mark.parametrize(
    ("text", "token", "fragment"),
    [
        ("[1, 2]\n", "[", "a rule file must be a mapping"),
        ("rules: {id: r}\n", "{", "'rules' must be a list of rules"),
        ("rules: [5]\n", "5", "each rule must be a mapping"),
        ("lists: [a]\n", "[", "'lists' must be a mapping of names"),
        ("lists:\n  t: x\n", "x", "list 't' must be a YAML list"),
        ("lists:\n  t: [[1]]\n", "[1]", "list 't': items must be text, numbers or booleans"),
        ("lists:\n  1t: [a]\n", "1t", "invalid name '1t'"),
        ("schedules:\n  s: [mon]\n", "[mon]", "schedule 's' must be a mapping"),
        ("schedules:\n  s: {hours: '08:00-18:00'}\n", "'08", "'hours' must be a list"),
        ("schedules:\n  s: {hours: ['18:00-08:00']}\n", "'18", "ends before it starts; split an overnight range"),
        ("schedules:\n  s: {hours: ['08:00-08:00']}\n", "'08", "ends before it starts"),
        ("schedules:\n  s: {hours: ['24:00-24:00']}\n", "'24", "hours must look like"),
        ("schedules:\n  s: {hours: ['08:00-24:01']}\n", "'08", "hours must look like"),
        ("schedules:\n  s: {hours: ['8-18']}\n", "'8-18'", "hours must look like"),
        ("schedules:\n  s: {hours: [08:00-12:00, 8]}\n", "8]", "hours must look like \"08:00-18:00\", got 8"),
        ("schedules:\n  s: {days: [funday]}\n", "funday", "unknown day 'funday'"),
        ("schedules:\n  s: {days: [mon, monkey]}\n", "monkey", "unknown day 'monkey'"),
        ("schedules:\n  s: {days: [sunshine]}\n", "sunshine", "unknown day 'sunshine'"),
        ("schedules:\n  s: {timezone: Mars/Base}\n", "Mars", "unknown time zone 'Mars/Base'"),
        ("schedules:\n  s: {timezone: 5}\n", "5", "unknown time zone 5"),
        ("schedules:\n  s: {holidays: [2026-02-30]}\n", "2026", "holidays are dates"),
        ("schedules:\n  s: {holidays: [26-11-2026]}\n", "26-", "holidays are dates"),
        ("schedules:\n  s: {tz: UTC}\n", "tz", "schedule 's': unknown key 'tz'"),
        ("rule:\n  - id: r\n", "rule", "unknown top-level key 'rule'"),
    ],
)
def test_file_level_problems_have_no_rule(
    problems: Problems, text: str, token: str, fragment: str
) -> None:
    ps = problems(f=text)
    assert [(p.file, (p.line, p.col), p.rule) for p in ps] == [("f.yaml", at(text, token), None)], "\n".join(map(str, ps))
    assert fragment in ps[0].message
    assert ": rule " not in str(ps[0])


def test_not_utf8_is_a_problem_not_a_crash() -> None:
    with pytest.raises(RuleLoadError) as info:
        load_texts([("latin1.yaml", "rules: []  # café\n".encode("latin-1"))])
    assert [str(p) for p in info.value.problems] == ["latin1.yaml:1:1: not UTF-8 text (byte 16)"]


def test_duplicate_ids_across_files_point_at_the_first(problems: Problems) -> None:
    b = "# padding\n" + one_rule()
    ps = problems(a=one_rule(), b=b, c=one_rule())
    (bl, bc), (cl, cc) = at(b, '"r"'), at(one_rule(), '"r"')
    assert [str(p) for p in ps] == [
        f"b.yaml:{bl}:{bc}: rule r: duplicate rule id (first defined at a.yaml:2)",
        f"c.yaml:{cl}:{cc}: rule r: duplicate rule id (first defined at a.yaml:2)",
    ]


def test_duplicate_yaml_keys_name_both_lines(problems: Problems) -> None:
    ps = problems(f="rules:\n  - id: r\n    severity: low\n    severity: high\n")
    assert [str(p) for p in ps] == ["f.yaml:4:5: duplicate key 'severity' (first at line 3)"]


def test_lists_and_schedules_are_shared_across_files() -> None:
    lists = "lists:\n  t: [customers]\nschedules:\n  s: {timezone: UTC}\n"
    rules = one_rule(match={"f": {"in": "$t"}}, when={"inside": "s"})
    rs = load_texts([("rules.yaml", rules.encode()), ("lists.yaml", lists.encode())])
    assert rs.lists == {"t": ["customers"]}
    assert set(rs.schedules) == {"s"}
    assert rs.rules[0].spec.conditions[0].value == ["customers"]


def test_full_day_names_are_accepted() -> None:
    text = "schedules:\n  s: {days: [Monday, tuesday, WED, sun]}\n"
    assert load_texts([("f.yaml", text.encode())]).schedules["s"].days == frozenset({0, 1, 2, 6})


# -- the issue's example -------------------------------------------------------------------



@pytest.fixture
def example() -> RuleSet:
    return load_rules(EXAMPLE)


def test_the_example_compiles_to_what_its_comments_say(example: RuleSet) -> None:
    assert example.lists == {
        "customer_tables": ["customers", "customer_addresses", "payment_cards"],
        "etl_accounts": ["analytics-etl"],
    }
    (rule,) = example.rules
    spec = rule.spec
    assert (spec.id, spec.severity, spec.enabled) == ("bulk-customer-read", "high", True)
    assert spec.description == "One actor read an unusual number of customer rows"
    assert [(c.path, c.op, c.value) for c in spec.conditions] == [
        ("resource.name", "in", ["customers", "customer_addresses", "payment_cards"]),
        ("action", "eq", "select"),
        ("actor.id", "not_in", ["analytics-etl"]),
    ]
    assert spec.when is not None
    kind, schedule = spec.when
    assert (kind, schedule.name) == ("outside", "business_hours")
    assert spec.group_by == ("actor.id",)
    assert spec.window_ms == 10 * 60_000
    assert spec.resolution_ms == 10_000  # window/60
    assert (spec.aggregate, spec.aggregate_field) == ("sum", "rows")
    assert (spec.threshold_op, spec.threshold) == ("gt", 50000)
    assert spec.suppress_ms == 3_600_000
    assert spec.labels == {"team": "security"}
    assert spec.annotations == {"summary": "{actor.id} read {value} customer rows in {window}"}
    assert rule.threshold(50001) and not rule.threshold(50000)
    assert example.describe() == [
        {
            "id": "bulk-customer-read",
            "file": str(EXAMPLE),
            "line": 11,
            "severity": "high",
            "enabled": True,
            "description": "One actor read an unusual number of customer rows",
            "window": "10m",
            "group_by": ["actor.id"],
        }
    ]


def _read(when: str, rows: int, fields: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
    ts = parse_ts(when)
    assert ts is not None
    e = {"ts": when, "actor": {"id": "analyst-09"}, "action": "select", "resource": {"name": "customers"}, "rows": rows}
    e.update(fields or {})
    return e, ts


# Saturday 2026-11-28, 02:xx in Chicago: outside business hours.
NIGHT = "2026-11-28T08"


def test_the_example_fires_on_more_than_50000_rows_in_10_minutes(example: RuleSet) -> None:
    alerts = Engine(example).process([_read(f"{NIGHT}:00:00Z", 30_000), _read(f"{NIGHT}:09:59Z", 20_001)])
    assert [a.to_dict()["summary"] for a in alerts] == ["analyst-09 read 50001 customer rows in 10m"]
    (a,) = alerts
    assert (a.rule, a.severity, a.group, a.value, a.labels) == (
        "bulk-customer-read", "high", {"actor.id": "analyst-09"}, 50001, {"team": "security"},
    )  # fmt: skip
    assert a.to_dict()["fired_at"] == f"{NIGHT}:09:59.000Z"


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([(f"{NIGHT}:00:00Z", 30_000, {}), (f"{NIGHT}:09:59Z", 20_000, {})], "exactly 50000 is not more"),
        ([(f"{NIGHT}:00:00Z", 30_000, {}), ("2026-11-28T08:10:00Z", 20_001, {})], "10 minutes apart"),
        ([(f"{NIGHT}:00:00Z", 50_001, {"actor": {"id": "analytics-etl"}})], "the ETL account"),
        ([(f"{NIGHT}:00:00Z", 50_001, {"action": "export"})], "not a select"),
        ([(f"{NIGHT}:00:00Z", 50_001, {"resource": {"name": "orders"}})], "not a customer table"),
        ([("2026-11-27T16:00:00Z", 50_001, {})], "Friday 10:00 in Chicago"),
        ([(f"{NIGHT}:00:00Z", 30_000, {}), (f"{NIGHT}:00:01Z", 20_001, {"actor": {"id": "b"}})], "two actors"),
        ([(f"{NIGHT}:00:00Z", 50_001, {"rows": "50001"})], "rows as text"),
    ],
)
def test_the_example_stays_quiet(example: RuleSet, events: list[tuple[str, int, dict[str, Any]]], why: str) -> None:
    batch = [_read(when, rows, fields) for when, rows, fields in events]
    assert Engine(example).process(batch) == [], why


@pytest.mark.parametrize(
    ("second_burst", "fires_again"),
    [("2026-11-28T08:59:59Z", False), ("2026-11-28T09:00:00Z", True)],
)
def test_the_example_suppresses_for_an_hour(example: RuleSet, second_burst: str, fires_again: bool) -> None:
    engine = Engine(example)
    assert len(engine.process([_read(f"{NIGHT}:00:00Z", 50_001)])) == 1
    assert len(engine.process([_read(second_burst, 50_001)])) == (1 if fires_again else 0)


def test_the_example_defaults() -> None:
    rs = load_texts([("r.yaml", one_rule().encode())])
    spec = rs.rules[0].spec
    assert spec.enabled is True
    assert spec.conditions == () and spec.when is None and spec.group_by == ()
    assert (spec.window_ms, spec.resolution_ms, spec.suppress_ms) == (None, None, 0)
    assert (spec.aggregate, spec.threshold_op, spec.threshold) == ("count", "gte", 1)
    windowed = load_texts([("r.yaml", one_rule(window="7m").encode())]).rules[0].spec
    assert (windowed.suppress_ms, windowed.resolution_ms) == (420_000, 7_000)  # the window; window/60


@pytest.mark.parametrize(
    ("window", "resolution"),
    [("1h", 60_000), ("10m", 10_000), ("1d", 1_440_000), ("7s", 7000 // 70), ("59ms", 1), ("61ms", 1)],
)
def test_default_resolution_divides_the_window(window: str, resolution: int) -> None:
    spec = load_texts([("r.yaml", one_rule(window=window).encode())]).rules[0].spec
    assert spec.resolution_ms == resolution
    assert spec.window_ms is not None and spec.window_ms % resolution == 0
    assert spec.window_ms // resolution <= 10_000


# -- codes, warnings and did-you-mean ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("rules: {id: r}\n", "E-BAD-TYPE"),
        ("rule: []\n", "E-UNKNOWN-KEY"),
        ("rules: [1\n", "E-YAML-SYNTAX"),
        ("rules: []\nrules: []\n", "E-DUPLICATE-KEY"),
        ("lists:\n  1t: [a]\n", "E-BAD-NAME"),
        ("schedules:\n  s: {timezone: Mars/Base}\n", "E-BAD-TIMEZONE"),
        ("schedules:\n  s: {days: [funday]}\n", "E-BAD-DAY"),
        ("schedules:\n  s: {hours: ['18:00-08:00']}\n", "E-BAD-HOURS"),
        ("schedules:\n  s: {holidays: [2026-02-30]}\n", "E-BAD-DATE"),
        (one_rule(id="has space"), "E-BAD-ID"),
        (one_rule(severity="urgent"), "E-BAD-SEVERITY"),
        (one_rule(colour="red"), "E-UNKNOWN-KEY"),
        (one_rule(window="10"), "E-BAD-DURATION"),
        (one_rule(suppress="-1"), "E-BAD-DURATION"),
        (one_rule(window="0s"), "E-BAD-DURATION"),
        (one_rule(resolution="1m"), "E-BAD-RESOLUTION"),
        (one_rule(aggregate={"avg": "rows"}), "E-BAD-AGGREGATE"),
        (one_rule(threshold={"above": 5}), "E-BAD-THRESHOLD"),
        (one_rule(group_by=["a b"]), "E-BAD-FIELD"),
        (one_rule(match={"f": {}}), "E-NO-OPERATOR"),
        (one_rule(match={"f": {"like": "x"}}), "E-UNKNOWN-OPERATOR"),
        (one_rule(match={"f": {"eq": [1]}}), "E-BAD-OPERAND"),
        (one_rule(match={"f": {"eq": "$t"}}), "E-BAD-LIST-REF"),
        (one_rule(match={"f": {"in": "$nope"}}), "E-UNDEFINED-LIST"),
        (one_rule(match={"f": {"regex": "(?=x)"}}), "E-BAD-REGEX"),
        (one_rule(match={"ip": {"cidr": "10.0.0.0/33"}}), "E-BAD-NETWORK"),
        (one_rule(when="office"), "E-BAD-WHEN"),
        (one_rule(when={"inside": "office"}), "E-UNDEFINED-SCHEDULE"),
        ("schedules:\n  s: {days: [x]}\n" + one_rule(when={"inside": "s"}), "E-BROKEN-SCHEDULE"),
    ],
)
def test_every_problem_has_its_code(problems: Problems, text: str, code: str) -> None:
    ps = problems(f=text)
    assert code in [p.code for p in ps], "\n".join(p.format(codes=True) for p in ps)
    assert all(p.severity == "error" for p in ps)


def test_a_duplicate_rule_and_a_duplicate_list_have_their_codes(problems: Problems) -> None:
    a = "lists:\n  t: [x]\n" + one_rule(match={"f": {"in": "$t"}})
    ps = problems(a=a, b="lists:\n  t: [y]\n" + one_rule())
    assert sorted(p.code for p in ps) == ["E-DUPLICATE-NAME", "E-DUPLICATE-RULE"]


def warnings_of(text: str) -> list[tuple[tuple[int, int], str | None, str, str]]:
    rs = load_texts([("w.yaml", text.encode())])
    assert all(w.severity == "warning" for w in rs.warnings)
    return [((w.line, w.col), w.rule, w.code, w.message) for w in rs.warnings]


def test_an_unused_list_is_a_warning_at_its_name_and_the_set_still_loads() -> None:
    text = "lists:\n  used: [a]\n  spare: [b]\n" + one_rule(match={"f": {"in": "$used"}})
    assert warnings_of(text) == [(at(text, "spare"), None, "W-UNUSED-LIST", "list 'spare' is not used by any rule")]


@pytest.mark.parametrize("op", ["in", "cidr"])
def test_a_rule_needing_a_value_from_an_empty_list_can_never_fire(op: str) -> None:
    text = "lists:\n  none: []\n" + one_rule(match={"f": {op: "$none"}})
    assert warnings_of(text) == [
        (at(text, '"$none"'), "r", "W-EMPTY-LIST", f"f: list $none is empty, so {op} never holds and the rule can never fire")
    ]


def test_not_in_an_empty_list_always_holds_and_is_no_warning() -> None:
    assert warnings_of("lists:\n  none: []\n" + one_rule(match={"f": {"not_in": "$none"}})) == []


@pytest.mark.parametrize(
    ("schedule", "kind", "message"),
    [
        ("{hours: []}", "inside", "when: schedule 's' has no hours, so inside never holds"),
        ("{hours: []}", "outside", "when: schedule 's' has no hours, so outside always holds"),
        ("{days: []}", "inside", "when: schedule 's' has no days, so inside never holds"),
    ],
)
def test_a_when_on_a_schedule_that_is_never_active_is_a_warning(schedule: str, kind: str, message: str) -> None:
    text = f"schedules:\n  s: {schedule}\n" + one_rule(when={kind: "s"})
    assert warnings_of(text) == [(at(text, '"s"'), "r", "W-EMPTY-SCHEDULE", message)]


def test_the_bundled_pack_and_the_example_have_no_warnings() -> None:
    assert load_rules(EXAMPLE).warnings == ()
    assert load_rules(Path(__file__).resolve().parents[2] / "rules").warnings == ()


def test_warnings_are_not_judged_on_a_set_with_errors(problems: Problems) -> None:
    ps = problems(f="lists:\n  spare: [b]\n" + one_rule(severity="urgent"))
    assert [p.code for p in ps] == ["E-BAD-SEVERITY"]


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("lists:\n  tables: [a]\n" + one_rule(match={"f": {"in": "$tabels"}}), "undefined list $tabels (did you mean $tables?)"),
        ("schedules:\n  office: {}\n" + one_rule(when={"inside": "ofice"}), "undefined schedule 'ofice' (did you mean 'office'?)"),
        (one_rule(suppres="1m"), "unknown key 'suppres' (did you mean 'suppress'?)"),
        (one_rule(when={"insde": "x"}), "unknown key 'insde' (inside or outside) (did you mean 'inside'?)"),
        (one_rule(match={"f": {"regexp": "x"}}), "(did you mean 'regex'?)"),
        ("rule: []\n", "unknown top-level key 'rule' (expected lists, schedules, actors, inputs, rules) (did you mean 'rules'?)"),
        ("schedules:\n  s: {tz: UTC, hour: []}\n", "schedule 's': unknown key 'hour' (expected timezone, days, hours, holidays) (did you mean 'hours'?)"),
    ],
)
def test_unknown_keys_and_undefined_names_suggest_the_closest_known_one(
    problems: Problems, text: str, hint: str
) -> None:
    ps = problems(f=text)
    assert any(p.message.endswith(hint) for p in ps), "\n".join(map(str, ps))
