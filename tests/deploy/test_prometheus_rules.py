"""The monitor monitored: ``promtool test rules`` over the shipped Prometheus rules.

The unit tests live beside the rules (``deploy/prometheus/tests/``), so an operator who
edits a rule can run them with promtool alone. Here they run in the suite, and a second
test checks that they cover every alerting rule both firing and not firing: a rule with
no test is a page nobody has seen work.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.alertmanager import AlertmanagerFactory
from tests.support.prometheus import short_for_rules, start_prometheus

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


class _Target(http.server.BaseHTTPRequestHandler):
    """A scrape target standing in for the daemon: healthy gauges, so only its absence
    can fire a rule."""

    def do_GET(self) -> None:
        body = b"exfil_monitor_source_connected 1\nexfil_monitor_rules_loaded 10\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.mark.slow
def test_a_real_prometheus_fires_the_shipped_down_rule_into_a_real_alertmanager(
    tmp_path: Path, alertmanagers: AlertmanagerFactory
) -> None:
    """The paging path for the monitor's own health: Prometheus scrapes a target, the
    target stops, the shipped rule (with a short ``for``) fires, Alertmanager has it."""
    am = alertmanagers()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target = f"127.0.0.1:{server.server_address[1]}"
    prom = start_prometheus(tmp_path / "prom", targets=[target], alertmanagers=[am.url],
                            rule_files=short_for_rules(tmp_path / "rules"))  # fmt: skip
    try:
        wait_until(lambda: prom.query('up{job="exfil-monitor"} == 1'), "the target is scraped")
        # (ExfilMonitorAbsent may fire for the second before the first scrape: for is 2s.)
        assert not [a for a in prom.alerts() if a["labels"]["alertname"] == "ExfilMonitorDown"]
        server.shutdown()
        server.server_close()
        wait_until(
            lambda: [a for a in am.alerts() if a["labels"]["alertname"] == "ExfilMonitorDown"],
            "ExfilMonitorDown reaches Alertmanager",
        )
        [down] = [a for a in am.alerts() if a["labels"]["alertname"] == "ExfilMonitorDown"]
        assert down["labels"]["severity"] == "critical"
        assert down["labels"]["instance"] == target
    finally:
        prom.stop()
        thread.join(5)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting until {what}")
