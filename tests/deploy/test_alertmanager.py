"""Static checks of deploy/alertmanager/alertmanager.yml: ``amtool check-config``, the
routes (watchdog to the dead-man's switch, critical and high to PagerDuty, the rest to
Slack), and that every credential is read from a file of the Secret the deploy ships."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.outputs.alertmanager import WATCHDOG
from tests.deploy.helpers import ALERTMANAGER, K8S, load_all, load_yaml, required_tool, run

SECRET_DIR = "/etc/alertmanager/secrets/exfil-monitor-oncall/"


def test_amtool_check_config() -> None:
    amtool = required_tool("amtool")
    result = run([amtool, "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ([f"alertname={WATCHDOG}", "severity=none"], "deadmans-switch"),
        (["alertname=payment-card-bulk-read", "severity=critical", "actor_id=x"], "pagerduty"),
        (["alertname=bulk-customer-read", "severity=high", "actor_id=x"], "pagerduty"),
        (["alertname=denied-access-burst", "severity=medium"], "slack"),
        (["alertname=some-rule", "severity=low"], "slack"),
        (["alertname=some-rule", "severity=info"], "slack"),
        (["alertname=ExfilMonitorDown", "severity=critical"], "pagerduty"),
        (["alertname=ExfilMonitorDeadLetters", "severity=warning"], "slack"),
        (["alertname=Other"], "slack"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str) -> None:
    amtool = required_tool("amtool")
    result = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver, result.stdout


def test_the_watchdog_route_comes_first_and_repeats_often() -> None:
    route = load_yaml(ALERTMANAGER)["route"]["routes"][0]
    assert route["matchers"] == [f'alertname="{WATCHDOG}"'] and route["continue"] is False
    assert route["receiver"] == "deadmans-switch"
    assert route["repeat_interval"] == "1m" and route["group_wait"] == "0s"


def credential_files(node: Any, found: dict[str, str]) -> dict[str, str]:
    """key -> path, for every ``*_file`` key in the config."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_file") and isinstance(value, str):
                found[value] = key
            credential_files(value, found)
    elif isinstance(node, list):
        for item in node:
            credential_files(item, found)
    return found


def test_every_credential_is_a_file_of_the_oncall_secret() -> None:
    config = load_yaml(ALERTMANAGER)
    by_kind = {r["name"]: r for r in config["receivers"]}
    assert by_kind["pagerduty"]["pagerduty_configs"][0]["routing_key_file"].startswith(SECRET_DIR)
    assert by_kind["slack"]["slack_configs"][0]["api_url_file"].startswith(SECRET_DIR)
    files = credential_files(config, {})
    assert all(path.startswith(SECRET_DIR) for path in files), files
    (secret,) = [d for d in load_all(K8S / "secret.example.yaml")
                 if d["metadata"]["name"] == "exfil-monitor-oncall"]  # fmt: skip
    assert {p.removeprefix(SECRET_DIR) for p in files} == secret["stringData"].keys()
    assert all("REPLACE" in v for v in secret["stringData"].values())
    # no credential written inline, and every other URL is a placeholder
    text = ALERTMANAGER.read_text(encoding="utf-8")
    for key in ("routing_key:", "service_key:", "api_url:", "credentials:", "password:"):
        assert key not in text, key
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", ())]
    assert urls and all(".invalid/" in u for u in urls), urls
    assert config["inhibit_rules"], "expected inhibition rules"
