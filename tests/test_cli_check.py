"""``exfil-monitor check PATH``: every problem at once as FILE:LINE:COL, exit 1, never a
traceback; a valid set exits 0 with a one-line summary."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "tests" / "fixtures" / "rules" / "example.yaml"
PROBLEM = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?:rule (?P<rule>[^ :]+): )?\S.*$")
SUMMARY = re.compile(
    r"^ok: (\d+) rules \((\d+) enabled\) in (\d+) file\(s\), (\d+) list\(s\), (\d+) schedule\(s\)$"
)

BROKEN = {
    "a.yaml": (
        "lists:\n"
        "  tables: [customers]\n"
        "rules:\n"
        "  - id: r1\n"
        "    severity: urgent\n"  # 5: unknown severity
        "    match:\n"
        "      f: {like: x}\n"  # 7: unknown operator
        "      g: {in: $nope}\n"  # 8: undefined list
        "      h: {regex: '(?=x)'}\n"  # 9: bad regex
        "      ip: {cidr: 10.0.0.0/33}\n"  # 10: bad network
        "    window: 10\n"  # 11: bad duration
        "    when: {inside: office}\n"  # 12: undefined schedule
        "    colour: red\n"  # 13: unknown key
    ),
    "b.yaml": "rules:\n  - id: r1\n    severity: low\n",  # duplicate id
    "c.yaml": "rules: [\n",  # YAML syntax error
    "sub/d.yaml": "lists:\n  tables: [x]\nfoo: 1\n",  # defined twice; unknown top-level key
    "d.test.yaml": "cases: oops\n",  # rule tests are not rule files
    "notes.txt": "not yaml: [\n",
}
EXPECTED = [
    ("a.yaml", 5, 15, "r1"),
    ("a.yaml", 7, 11, "r1"),
    ("a.yaml", 8, 15, "r1"),
    ("a.yaml", 9, 18, "r1"),
    ("a.yaml", 10, 18, "r1"),
    ("a.yaml", 11, 13, "r1"),
    ("a.yaml", 12, 20, "r1"),
    ("a.yaml", 13, 5, "r1"),
    ("b.yaml", 2, 9, "r1"),
    ("c.yaml", 2, 1, None),
    ("sub/d.yaml", 2, 3, None),
    ("sub/d.yaml", 3, 1, None),
]

Tree = Callable[[dict[str, str]], Path]


@pytest.fixture
def rule_tree(tmp_path: Path) -> Tree:
    """``rule_tree({relative name: text})``: a folder holding those files."""

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "rules"
        root.mkdir()
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    return make


def parsed(out: str, root: Path) -> list[tuple[str, int, int, str | None]]:
    rows = []
    for line in out.splitlines()[:-1]:
        m = PROBLEM.match(line)
        assert m is not None, line
        rows.append((Path(m["file"]).relative_to(root).as_posix(), int(m["line"]), int(m["col"]), m["rule"]))
    return rows


def test_check_reports_every_problem_of_every_file_and_exits_1(
    rule_tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    root = rule_tree(BROKEN)
    assert main(["check", str(root)]) == 1
    out, err = capsys.readouterr()
    assert parsed(out, root) == EXPECTED
    assert out.splitlines()[-1] == f"{len(EXPECTED)} problem(s) in {root}"
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("syntax.yaml", "rules:\n  - id: r\n    match: {a: 1\n", "syntax.yaml:4:1: YAML syntax error: did not find expected ',' or '}'"),
        ("dup.yaml", "rules: []\nrules: []\n", "dup.yaml:2:1: duplicate key 'rules' (first at line 1)"),
        ("top.yaml", "- 1\n", "top.yaml:1:1: a rule file must be a mapping with lists, schedules and rules"),
        ("latin.yaml", "# caf\xe9\n", "latin.yaml:1:1: not UTF-8 text (byte 5)"),
    ],
)
def test_file_problems_have_no_rule_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, line: str
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [f"{tmp_path}/{line}", f"1 problem(s) in {path}"]


def test_check_of_a_valid_set_exits_0_with_a_one_line_summary(
    rule_tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    root = rule_tree(
        {
            "lists.yaml": "lists:\n  t: [customers]\n  u: [a]\nschedules:\n  s: {timezone: UTC}\n",
            "a.yaml": "rules:\n  - {id: a, severity: low, match: {f: {in: $t}}}\n"
            "  - {id: b, severity: low, enabled: false, when: {inside: s}}\n",
            "more/b.yml": "rules:\n  - {id: c, severity: info, match: {g: {in: $u}}}\n",  # every list used
            "a.test.yaml": "cases: []\n",
            "README.md": "# not rules\n",
        }
    )
    assert main(["check", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["ok: 3 rules (2 enabled) in 3 file(s), 2 list(s), 1 schedule(s)"]
    assert err == ""


def test_check_of_the_issue_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == "ok: 1 rules (1 enabled) in 1 file(s), 2 list(s), 1 schedule(s)\n"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no rule files (*.yaml, *.yml) found"),
        ({"only.test.yaml": "cases: []\n", "x.json": "{}"}, "no rule files (*.yaml, *.yml) found"),
    ],
)
def test_check_of_a_folder_without_rules(
    rule_tree: Tree, capsys: pytest.CaptureFixture[str], files: dict[str, str], message: str
) -> None:
    root = rule_tree(files)
    assert main(["check", str(root)]) == 1
    assert capsys.readouterr().out.splitlines() == [f"{root}:1:1: {message}", f"1 problem(s) in {root}"]


def test_check_of_a_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["check", str(missing)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{missing}:1:1: no such file or folder",
        f"1 problem(s) in {missing}",
    ]


def test_check_without_a_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err


def test_check_as_a_process(rule_tree: Tree) -> None:
    root = rule_tree(BROKEN)
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check", str(root)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert parsed(done.stdout, root) == EXPECTED
    ok = subprocess.run(
        [sys.executable, "-m", "monitor", "check", str(EXAMPLE)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert (ok.returncode, ok.stderr) == (0, "")
    assert SUMMARY.match(ok.stdout.strip())


WARNED = {
    "a.yaml": (
        "lists:\n"
        "  spare: [x]\n"  # 2: never used
        "  none: []\n"
        "schedules:\n"
        "  never: {hours: []}\n"
        "rules:\n"
        "  - id: r1\n"
        "    severity: low\n"
        "    match: {f: {in: $none}}\n"  # 9: an empty list
        "    when: {inside: never}\n"  # 10: a schedule with no hours
    ),
}
WARNINGS = [
    ("a.yaml:2:3", "W-UNUSED-LIST", "list 'spare' is not used by any rule"),
    ("a.yaml:9:21", "W-EMPTY-LIST", "rule r1: f: list $none is empty, so in never holds and the rule can never fire"),
    ("a.yaml:10:20", "W-EMPTY-SCHEDULE", "rule r1: when: schedule 'never' has no hours, so inside never holds"),
]


def test_warnings_print_but_pass_unless_strict(rule_tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    root = rule_tree(WARNED)
    assert main(["check", str(root)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        *(f"{root}/{where}: warning: {message}" for where, _, message in WARNINGS),
        "ok: 1 rules (1 enabled) in 1 file(s), 2 list(s), 1 schedule(s); 3 warning(s)",
    ]
    assert main(["check", "--strict", str(root)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"3 warning(s) in {root}; --strict fails on warnings"


def test_codes_mode_shows_each_code_after_the_position(rule_tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    root = rule_tree(WARNED)
    assert main(["check", "--codes", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[:-1] == [
        f"{root}/{where}: {code}: warning: {message}" for where, code, message in WARNINGS
    ]


def test_codes_mode_on_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - {id: r1, severity: low, colour: red, suppres: 1m}\n")
    assert main(["check", "--codes", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:2:29: E-UNKNOWN-KEY: rule r1: unknown key 'colour'",
        f"{path}:2:42: E-UNKNOWN-KEY: rule r1: unknown key 'suppres' (did you mean 'suppress'?)",
        f"2 problem(s) in {path}",
    ]


def test_json_gives_every_problem_with_code_severity_and_position_and_a_summary(
    rule_tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    root = rule_tree(BROKEN)
    assert main(["check", "--format", "json", str(root)]) == 1
    doc = json.loads(capsys.readouterr().out)
    rows = [(Path(p["file"]).relative_to(root).as_posix(), p["line"], p["col"], p["rule"]) for p in doc["problems"]]
    assert rows == EXPECTED
    assert {p["severity"] for p in doc["problems"]} == {"error"}
    by_line = {(p["file"].rsplit("/", 1)[-1], p["line"]): p["code"] for p in doc["problems"]}
    assert by_line[("a.yaml", 8)] == "E-UNDEFINED-LIST"
    assert by_line[("a.yaml", 13)] == "E-UNKNOWN-KEY"
    assert by_line[("c.yaml", 2)] == "E-YAML-SYNTAX"
    assert doc["summary"] == {"errors": len(EXPECTED), "warnings": 0, "ok": False}


@pytest.mark.parametrize(("strict", "rc"), [([], 0), (["--strict"], 1)])
def test_json_of_warnings(
    rule_tree: Tree, capsys: pytest.CaptureFixture[str], strict: list[str], rc: int
) -> None:
    root = rule_tree(WARNED)
    assert main(["check", "--format", "json", *strict, str(root)]) == rc
    doc = json.loads(capsys.readouterr().out)
    assert [(p["code"], p["severity"], p["line"]) for p in doc["problems"]] == [
        ("W-UNUSED-LIST", "warning", 2), ("W-EMPTY-LIST", "warning", 9), ("W-EMPTY-SCHEDULE", "warning", 10),
    ]  # fmt: skip
    assert doc["summary"] == {
        "rules": 1, "enabled": 1, "files": 1, "lists": 2, "schedules": 1,
        "errors": 0, "warnings": 3, "ok": rc == 0,
    }  # fmt: skip


def test_a_config_goes_through_the_same_problem_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = REPO / "deploy" / "monitor.example.yaml"
    assert main(["check", "--config", str(good)]) == 0
    assert capsys.readouterr().out == f"ok: config {good}\n"
    bad = tmp_path / "monitor.yaml"
    bad.write_text("kafka:\n  topics: [a]\n  bootstrap_servers: x:1\nrules: {paht: r}\n")
    assert main(["check", "--config", str(bad), "--codes"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{bad}:4:1: E-MISSING-KEY: rules: missing required key 'path'",
        f"{bad}:4:9: E-UNKNOWN-KEY: rules: unknown key 'paht' (did you mean 'path'?)",
        f"2 problem(s) in {bad}",
    ]
    assert main(["check", "--config", str(bad), "--format", "json", str(EXAMPLE)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [p["code"] for p in doc["problems"]] == ["E-MISSING-KEY", "E-UNKNOWN-KEY"]
    assert doc["summary"]["ok"] is False and doc["summary"]["rules"] == 1


def test_explain_prints_the_generated_loop(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--explain", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert SUMMARY.match(out.splitlines()[0])
    assert re.search(r"^# <exfil-monitor rules sha256:[0-9a-f]{12}>$", out, re.M)
    assert "\ndef process(batch, clock, newest):\n" in out
    assert re.search(r"\bA\d+_bulk_customer_read\(", out)


def test_explain_needs_rules(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--explain", "--config", "x.yaml"])
    assert exit_.value.code == 2
    assert "--explain needs a rule file or folder" in capsys.readouterr().err


UNROUTED_CONFIG = """\
kafka: {bootstrap_servers: "localhost:9092", topics: [data-access-events]}
rules: {path: rules}
outputs:
  - {type: alertmanager, urls: ["http://127.0.0.1:9093"], match: {severity: [critical, high]}}
  - {type: file, path: alerts.jsonl, match: {severity: medium, team: security}}
"""


def test_a_config_warns_of_each_severity_no_output_takes_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(UNROUTED_CONFIG)
    assert main(["check", "--config", str(config), "--codes"]) == 0
    detail = "alerts of a severity no output's match: takes are counted in exfil_monitor_alerts_unrouted_total and go nowhere"
    assert capsys.readouterr().out.splitlines() == [
        *(f"{config}:3:1: W-UNROUTED-SEVERITY: warning: outputs: no output takes severity {sev!r}: {detail}"
          for sev in ("low", "info")),
        f"ok: config {config}; 2 warning(s)",
    ]  # fmt: skip
    assert main(["check", "--config", str(config), "--strict"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"2 warning(s) in {config}; --strict fails on warnings"
    assert main(["check", "--config", str(config), "--format", "json", str(EXAMPLE)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(p["code"], p["severity"], p["line"]) for p in doc["problems"]] == [("W-UNROUTED-SEVERITY", "warning", 3)] * 2
    assert doc["summary"]["ok"] is True and doc["summary"]["warnings"] == 2


@pytest.mark.parametrize(
    "outputs",
    [
        "[]",
        "[{type: stdout}]",
        "[{type: stdout, match: {severity: info}}, {type: file, path: a.jsonl, match: {team: x}}]",
        "[{type: stdout, match: {severity: [critical, high, medium, low]}}]",
        "[{type: alertmanager, urls: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], match: {severity: critical}}]",
    ],
)
def test_check_warns_of_exactly_what_the_daemon_warns_of_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], outputs: str
) -> None:
    import io

    from prometheus_client import CollectorRegistry

    from monitor.app import Daemon
    from monitor.config import load_config

    config = tmp_path / "monitor.yaml"
    config.write_text(f"kafka: {{bootstrap_servers: 'localhost:9092', topics: [t]}}\nrules: {{path: r}}\noutputs: {outputs}\n")
    assert main(["check", "--config", str(config), "--format", "json"]) == 0
    said = [re.search(r"severity '(\w+)'", p["message"])[1] for p in json.loads(capsys.readouterr().out)["problems"]]  # type: ignore[index]
    daemon = Daemon(load_config(config, {}), registry=CollectorRegistry(), stderr=io.StringIO())
    assert said == daemon.delivery.unrouted_severities()
