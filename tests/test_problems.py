"""The problem codes: one registry, every code documented and used, nothing else used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.problems import CODES, Problem, did_you_mean

REPO = Path(__file__).resolve().parent.parent
CODE = re.compile(r"[\"'`]([EW]-[A-Z0-9]+(?:-[A-Z0-9]+)*)[\"'`]")


def codes_in(text: str) -> set[str]:
    return set(CODE.findall(text))


def source_codes() -> set[str]:
    return {
        code
        for path in (REPO / "monitor").rglob("*.py")
        if path.name != "problems.py"
        for code in codes_in(path.read_text(encoding="utf-8"))
    }


def test_every_code_used_in_the_source_is_registered_and_every_registered_code_is_used() -> None:
    used = source_codes()
    assert used - set(CODES) == set(), "codes used but not in monitor.problems.CODES"
    assert set(CODES) - used == set(), "codes registered but never used"


def test_docs_name_exactly_the_registered_codes_each_with_its_description() -> None:
    doc = (REPO / "docs" / "problems.md").read_text(encoding="utf-8")
    assert codes_in(doc) == set(CODES)
    for code, description in CODES.items():
        assert f"| `{code}` | {description} |" in doc


def test_a_code_says_its_severity() -> None:
    assert all(c.startswith(("E-", "W-")) for c in CODES)
    assert Problem("f", 1, 1, "m", code="W-UNUSED-LIST").severity == "warning"
    assert Problem("f", 1, 1, "m", code="E-UNKNOWN-KEY").severity == "error"


def test_a_problem_without_a_registered_code_cannot_be_made() -> None:
    with pytest.raises(ValueError, match="E-TYPO"):
        Problem("f", 1, 1, "m", code="E-TYPO")
    with pytest.raises(ValueError):
        Problem("f", 1, 1, "m")


def test_text_forms() -> None:
    error = Problem("a.yaml", 3, 5, "unknown key 'colour'", "r1", code="E-UNKNOWN-KEY")
    warning = Problem("a.yaml", 2, 3, "list 'u' is not used by any rule", code="W-UNUSED-LIST")
    env = Problem("$EXFIL_MONITOR_X__Y", 0, 0, "x: unknown key 'y'", code="E-UNKNOWN-KEY")
    assert str(error) == "a.yaml:3:5: rule r1: unknown key 'colour'"
    assert error.format(codes=True) == "a.yaml:3:5: E-UNKNOWN-KEY: rule r1: unknown key 'colour'"
    assert str(warning) == "a.yaml:2:3: warning: list 'u' is not used by any rule"
    assert warning.format(codes=True) == "a.yaml:2:3: W-UNUSED-LIST: warning: list 'u' is not used by any rule"
    assert str(env) == "$EXFIL_MONITOR_X__Y: x: unknown key 'y'"
    assert env.as_json() == {
        "code": "E-UNKNOWN-KEY", "severity": "error", "file": "$EXFIL_MONITOR_X__Y",
        "line": None, "col": None, "rule": None, "message": "x: unknown key 'y'",
    }  # fmt: skip


def test_did_you_mean_offers_the_closest_known_name_or_nothing() -> None:
    assert did_you_mean("supress", ["window", "suppress", "labels"]) == " (did you mean 'suppress'?)"
    assert did_you_mean("colour", ["window", "suppress"]) == ""
    assert did_you_mean("tabels", ["tables"], show="${}") == " (did you mean $tables?)"


def test_the_warnings_of_a_loaded_rule_set_are_logged_with_the_load() -> None:
    import io
    import json

    from prometheus_client import CollectorRegistry

    from monitor.rules.loader import load_texts
    from monitor.telemetry import Metrics, Telemetry, configure_logging

    rs = load_texts([("w.yaml", b"lists:\n  spare: [x]\nrules:\n  - {id: r, severity: low}\n")])
    stream = io.StringIO()
    telemetry = Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "info", stream))
    telemetry.rules_loaded(len(rs.enabled), rs.digest, rs.files, [str(w) for w in rs.warnings])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["event"], x["level"]) for x in lines] == [("rules_loaded", "info"), ("rule_warnings", "warning")]
    assert lines[1]["warnings"] == ["w.yaml:2:3: warning: list 'spare' is not used by any rule"]
    assert lines[1]["count"] == 1
