"""The monitor monitored: ``promtool test rules`` over the shipped Prometheus rules.

The unit tests live beside the rules (``deploy/prometheus/tests/``), so an operator who
edits a rule can run them with promtool alone. Here they run in the suite, and a second
test checks that they cover every alerting rule both firing and not firing: a rule with
no test is a page nobody has seen work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.yml"))


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool not found (apt-get install prometheus)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"{reason} (CI=true: promtool is required)", pytrace=False)
        pytest.skip(reason)
    return found


def alerting_rules() -> set[str]:
    names = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(r["alert"] for r in group["rules"] if "alert" in r)
    return names


def cases() -> list[tuple[str, list[Any]]]:
    out = []
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            out += [
                (t["alertname"], t.get("exp_alerts") or []) for t in test.get("alert_rule_test", [])
            ]
    return out


def test_there_are_rule_tests_for_the_shipped_rules() -> None:
    assert RULE_FILES and TEST_FILES
    for path in TEST_FILES:
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            assert (path.parent / rule_file).resolve() in {p.resolve() for p in RULE_FILES}, (
                path,
                rule_file,
            )


def test_every_alerting_rule_is_tested_firing_and_not_firing() -> None:
    fired = {name for name, exp in cases() if exp}
    silent = {name for name, exp in cases() if not exp}
    rules = alerting_rules()
    assert rules - fired == set(), "never tested firing"
    assert rules - silent == set(), "never tested staying silent"
    assert {name for name, _ in cases()} <= rules, "a test names an alert no rule defines"


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(path: Path) -> None:
    proc = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
