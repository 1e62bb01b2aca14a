"""Rule tests (``*.test.yaml``) and the ``exfil-monitor test`` command: passing and failing
cases, a readable diff, events from a file, malformed cases, and the exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.rules.loader import load_rules
from monitor.ruletest import CaseResult, run_file, run_tests
from monitor.ruletest import test_files as find_test_files  # not a test for pytest to collect

RULES = """\
lists:
  tables: [customers, payment_cards]
rules:
  - id: table-read
    severity: medium
    match:
      resource.name: {in: $tables}
    group_by: [actor.id]
    suppress: 1h
  - id: bulk
    severity: high
    match: {action: select}
    group_by: [actor.id]
    window: 10m
    aggregate: {sum: rows}
    threshold: {gte: 100}
  - id: dormant
    severity: low
    enabled: false
    match: {action: delete}
"""

READ = '{{ts: "{ts}", actor: {{id: {actor}}}, action: select, resource: {{name: customers}}, rows: {rows}}}'


def read(ts: str, actor: str = "a", rows: int = 1) -> str:
    return READ.format(ts=ts, actor=actor, rows=rows)


Pack = Callable[..., Path]


@pytest.fixture
def make_pack(tmp_path: Path) -> Pack:
    """``make_pack(tests_text, rules=RULES, files={relative name: text})``: a rule folder
    with one ``rules.test.yaml``; returns the folder."""

    def make(tests: str, rules: str = RULES, files: dict[str, str] | None = None) -> Path:
        root = tmp_path / "pack"
        root.mkdir(exist_ok=True)
        (root / "rules.yaml").write_text(rules)
        (root / "rules.test.yaml").write_text(tests)
        for name, text in (files or {}).items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    return make


def results_for(root: Path) -> list[CaseResult]:
    return run_tests(root, load_rules(root))


# -- passing cases ----------------------------------------------------------------------------

PASSING = f"""\
cases:
  - name: one read of a customer table
    rules: [table-read]
    events:
      - {read("2026-11-27T10:00:00Z")}
    expect:
      - rule: table-read
        group: {{actor.id: a}}
        value: 1
        fired_at: "2026-11-27T10:00:00.000Z"

  - name: a bulk read, all rules
    events:
      - {read("2026-11-27T10:00:00Z", rows=60)}
      - {read("2026-11-27T10:05:00Z", rows=40)}
    expect:
      - {{rule: table-read, group: {{actor.id: a}}}}
      - {{rule: bulk, group: {{actor.id: a}}, value: 100, fired_at: "2026-11-27T04:05:00-06:00"}}

  - name: nothing fires
    rules: [bulk]
    events:
      - {read("2026-11-27T10:00:00Z", rows=99)}
    expect: []

  - name: no events at all
    events: []
    expect: []

  - name: hours between events are not the future
    rules: [table-read]
    events:
      - {read("2026-11-27T10:00:00Z")}
      - {read("2026-11-27T12:00:00Z")}
      - {read("2026-11-28T12:00:00Z")}
    expect:
      - {{rule: table-read, group: {{actor.id: a}}, fired_at: "2026-11-27T10:00:00Z"}}
      - {{rule: table-read, group: {{actor.id: a}}, fired_at: "2026-11-27T12:00:00Z"}}
      - {{rule: table-read, group: {{actor.id: a}}, fired_at: "2026-11-28T12:00:00Z"}}

  - name: a disabled rule runs when a case names it
    rules: [dormant]
    events:
      - {{ts: "2026-11-27T10:00:00Z", action: delete}}
    expect:
      - {{rule: dormant}}

  - name: and not otherwise
    events:
      - {{ts: "2026-11-27T10:00:00Z", action: delete}}
    expect: []

  - name: events from a file, another time field and lateness
    rules: [bulk]
    events_file: fixtures/burst.jsonl
    time_field: meta.at
    allowed_lateness: 10m
    expect:
      - {{rule: bulk, group: {{actor.id: b}}, value: 100, fired_at: "2026-11-27T10:09:00Z"}}

  - name: warm-up events fill the window, and the suppression of their held-back alerts holds
    rules: [table-read, bulk]
    warmup:
      - {read("2026-11-27T10:00:00Z", rows=60)}
    events:
      - {read("2026-11-27T10:05:00Z", rows=40)}
    expect:
      - {{rule: bulk, group: {{actor.id: a}}, value: 100}}
"""

BURST = (
    '{"meta": {"at": "2026-11-27T10:09:00Z"}, "actor": {"id": "b"}, "action": "select", "rows": 50}\n'
    "\n"
    '{"meta": {"at": "2026-11-27T10:01:00Z"}, "actor": {"id": "b"}, "action": "select", "rows": 50}\n'
)


def test_passing_cases(make_pack: Pack) -> None:
    root = make_pack(PASSING, files={"fixtures/burst.jsonl": BURST})
    results = results_for(root)
    assert [(r.name, r.passed) for r in results] == [
        ("one read of a customer table", True),
        ("a bulk read, all rules", True),
        ("nothing fires", True),
        ("no events at all", True),
        ("hours between events are not the future", True),
        ("a disabled rule runs when a case names it", True),
        ("and not otherwise", True),
        ("events from a file, another time field and lateness", True),
        ("warm-up events fill the window, and the suppression of their held-back alerts holds", True),
    ], "\n".join(line for r in results for line in r.report())
    assert results[0].report() == [f"PASS {root / 'rules.test.yaml'}:2 one read of a customer table"]


# -- failing cases and the diff ---------------------------------------------------------------

FAILING = f"""\
cases:
  - name: wrong value, a missing alert and an unexpected one
    events:
      - {read("2026-11-27T10:00:00Z", rows=60)}
      - {read("2026-11-27T10:05:00Z", rows=40)}
    expect:
      - {{rule: bulk, group: {{actor.id: a}}, value: 99}}
      - {{rule: bulk, group: {{actor.id: zed}}}}
  - name: an alert was expected, none came
    rules: [bulk]
    events:
      - {read("2026-11-27T10:00:00Z")}
    expect:
      - {{rule: bulk, group: {{actor.id: a}}, fired_at: "2026-11-27T10:00:00Z"}}
  - name: none was expected
    rules: [table-read]
    events:
      - {read("2026-11-27T10:00:00Z", actor="c")}
    expect: []
  - name: the same alert expected twice
    rules: [table-read]
    events:
      - {read("2026-11-27T10:00:00Z")}
    expect:
      - {{rule: table-read, group: {{actor.id: a}}}}
      - {{rule: table-read, group: {{actor.id: a}}}}
"""


def test_failing_cases_show_a_readable_diff(make_pack: Pack) -> None:
    root = make_pack(FAILING)
    results = results_for(root)
    name = root / "rules.test.yaml"
    assert [line for r in results for line in r.report()] == [
        f"FAIL {name}:2 wrong value, a missing alert and an unexpected one",
        '    missing:    bulk {"actor.id":"a"} value=99',
        '    missing:    bulk {"actor.id":"zed"}',
        '    unexpected: table-read {"actor.id":"a"} value=1 fired_at=2026-11-27T10:00:00.000Z',
        '    unexpected: bulk {"actor.id":"a"} value=100 fired_at=2026-11-27T10:05:00.000Z',
        f"FAIL {name}:9 an alert was expected, none came",
        '    missing:    bulk {"actor.id":"a"} fired_at=2026-11-27T10:00:00Z',
        f"FAIL {name}:15 none was expected",
        '    unexpected: table-read {"actor.id":"c"} value=1 fired_at=2026-11-27T10:00:00.000Z',
        f"FAIL {name}:20 the same alert expected twice",
        '    missing:    table-read {"actor.id":"a"}',
    ]


# -- malformed cases --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "errors"),
    [
        (
            "{name: x, events: [], expect: [], colour: red, expected: []}",
            [
                "unknown key 'colour' (expected name, rules, warmup, warmup_file, events, events_file, input_format, expect, time_field, allowed_lateness)",
                "unknown key 'expected' (expected name, rules, warmup, warmup_file, events, events_file, input_format, expect, time_field, allowed_lateness)",
            ],
        ),
        ("{name: x, rules: [no-such-rule, bulk, nope2], events: [], expect: []}", ["unknown rule 'no-such-rule'", "unknown rule 'nope2'"]),
        ("{name: x, rules: bulk, events: [], expect: []}", ["rules must be a list of rule ids"]),
        ("{name: x, events: []}", ["expect must be a list of alerts ([] for none)"]),
        ("{name: x, events: [], expect: none}", ["expect must be a list of alerts ([] for none)"]),
        ("{name: x, expect: []}", ["events must be a list of event objects"]),
        ("{name: x, events: {ts: 1}, expect: []}", ["events must be a list of event objects"]),
        ("{name: x, events: [], events_file: a.jsonl, expect: []}", ["give events or events_file, not both"]),
        ("{name: x, events: [], expect: [], allowed_lateness: soon}", ["allowed_lateness: expected a duration like 30s, 10m, 1h or 2d (units ms, s, m, h, d), got 'soon'"]),
        ("{name: x, events: [{ts: never}, 5, {id: 1}], expect: []}", [
            "event 1 cannot be used: bad_time",
            "event 2 cannot be used: not_an_object",
            "event 3 cannot be used: missing_time",
        ]),
        ("{name: x, events: [{ts: 1, n: 100000000000000000000}], expect: []}", ["events: cannot be written as JSON: Integer exceeds 64-bit range"]),
        ("{name: x, events: [], expect: [bulk]}", ["expect[0] must be a mapping with at least 'rule'"]),
        ("{name: x, events: [], expect: [{group: {}}]}", ["expect[0] must be a mapping with at least 'rule'"]),
        ("{name: x, events: [], expect: [{rule: bulk, when: now}]}", ["expect[0]: unknown keys ['when'] (expected rule, group, value, fired_at)"]),
        ("{name: x, events: [], expect: [{rule: bulk, fired_at: noon}]}", ["expect[0]: fired_at 'noon' is not a time"]),
    ],
)
def test_malformed_cases_fail_with_errors(make_pack: Pack, case: str, errors: list[str]) -> None:
    root = make_pack(f"cases:\n  - {case}\n")
    (result,) = results_for(root)
    assert not result.passed
    assert result.problems == errors
    assert result.report()[1:] == [f"    error:      {e}" for e in errors]


def test_a_missing_events_file(make_pack: Pack) -> None:
    root = make_pack("cases:\n  - {name: x, events_file: nowhere.jsonl, expect: []}\n")
    (result,) = results_for(root)
    assert result.problems == [f"events_file: No such file or directory: {root / 'nowhere.jsonl'}"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("cases: [\n", "YAML syntax error: did not find expected node content"),
        ("cases: {}\n", "a test file needs a list under 'cases'"),
        ("- {name: x}\n", "a test file needs a list under 'cases'"),
        ("cases:\n  - just text\n", "a case must be a mapping"),
    ],
)
def test_malformed_test_files(make_pack: Pack, text: str, error: str) -> None:
    root = make_pack(text)
    (result,) = run_file(root / "rules.test.yaml", load_rules(root))
    assert not result.passed
    assert result.problems == [error]


def test_test_files_are_found_beside_the_rules(make_pack: Pack) -> None:
    root = make_pack("cases: []\n", files={"sub/more.test.yml": "cases: []\n", "sub/other.yaml": "rules: []\n"})
    assert find_test_files(root) == [root / "rules.test.yaml", root / "sub" / "more.test.yml"]
    assert find_test_files(root / "rules.test.yaml") == [root / "rules.test.yaml"]
    assert find_test_files(root / "rules.yaml") == []
    # rule loading skips the test files
    assert [r.id for r in load_rules(root).rules] == ["table-read", "bulk", "dormant"]


# -- the command ----------------------------------------------------------------------------


def test_the_command_passes(make_pack: Pack, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_pack(PASSING.split("  - name: events from a file")[0])
    assert main(["test", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "rule tests: 7 passed, 0 failed"
    assert all(line.startswith("PASS ") for line in out[:-1])


def test_the_command_fails_with_exit_1(make_pack: Pack, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_pack(FAILING + PASSING.split("cases:\n")[1])
    assert main(["test", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "rule tests: 8 passed, 5 failed"
    assert sum(line.startswith("FAIL ") for line in out) == 5
    assert '    unexpected: table-read {"actor.id":"c"} value=1 fired_at=2026-11-27T10:00:00.000Z' in out


def test_the_command_on_one_test_file(make_pack: Pack, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_pack("cases:\n  - {name: x, events: [], expect: []}\n")
    assert main(["test", str(root / "rules.test.yaml")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "rule tests: 1 passed, 0 failed"


def test_the_command_without_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    assert main(["test", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"{tmp_path}: no rule tests (*.test.yaml) found\n"


def test_the_command_with_broken_rules(make_pack: Pack, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_pack("cases: []\n", rules="rules:\n  - {id: r, severity: urgent}\n")
    assert main(["test", str(root)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{root / 'rules.yaml'}:2:23: rule r: severity must be one of info, low, medium, high, critical, got 'urgent'",
        "1 problem(s); no rules loaded",
    ]
