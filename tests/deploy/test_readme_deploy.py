"""The README's "Deploy" steps do what they say: the ``check`` commands name the files the
containers mount and find nothing unrouted, the ``amtool config routes test`` lines name
the receivers their comments say, and the test page, sent by the README's own command to
a real Alertmanager, is an alert the shipped routes page with."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest

from monitor.cli import build_parser
from monitor.config import config_warnings
from monitor.outputs.routing import SEVERITIES, unrouted_severities
from tests.deploy.helpers import (
    ALERTMANAGER,
    COMPOSE_MONITOR,
    REPO,
    compose_mounts,
    image_env,
    load_monitor_config,
    required_tool,
    run,
    with_token_file,
)
from tests.deploy.test_kubernetes import config_map, container_env, example_secrets, mounts
from tests.support.alertmanager import AlertmanagerFactory


def section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]


def command_lines(containing: str) -> list[str]:
    """The shell lines of the section's ```sh blocks that contain ``containing``."""
    out = []
    for block in section().split("```sh\n")[1:]:
        out.extend(line.strip() for line in block.split("```", 1)[0].splitlines() if containing in line)
    assert out, f"no command with {containing!r} in the README's Deploy section"
    return out


def check_args(line: str) -> tuple[str, str]:
    """(config, rules) of an ``exfil-monitor check`` run inside a container."""
    words = shlex.split(line)
    i = words.index("check")
    assert words[i - 1] == "exfil-monitor", line
    args = build_parser().parse_args(words[i:])
    assert args.command == "check" and args.config and args.path
    return args.config, args.path


def test_the_compose_check_reads_the_mounted_config_and_rules_and_finds_nothing_unrouted(tmp_path: Path) -> None:
    (line,) = command_lines("run --rm --no-deps exfil-monitor check")
    config, rules = check_args(line)
    mounted = compose_mounts("exfil-monitor")
    assert mounted[config] == COMPOSE_MONITOR and mounted[rules] == REPO / "rules"
    loaded = load_monitor_config(COMPOSE_MONITOR, with_token_file(image_env(), tmp_path))
    assert config_warnings(loaded, COMPOSE_MONITOR) == []
    (am,) = [o for o in loaded.outputs if o.type == "alertmanager"]
    assert unrouted_severities({"alertmanager": am.match}) == [], "every severity reaches Alertmanager"


def test_the_kubernetes_check_reads_the_mounted_config_and_rules_and_finds_nothing_unrouted(tmp_path: Path) -> None:
    (line,) = command_lines("exec exfil-monitor-0 -- exfil-monitor check")
    config, rules = check_args(line)
    assert mounts()[config]["subPath"] == "monitor.yaml" and rules in mounts()
    path = tmp_path / "monitor.yaml"
    path.write_text(config_map("exfil-monitor-config")["data"]["monitor.yaml"], encoding="utf-8")
    env = image_env(**container_env(), **example_secrets()["exfil-monitor-kafka"]["stringData"])
    loaded = load_monitor_config(path, with_token_file(env, tmp_path))
    assert config_warnings(loaded, path) == []
    (am,) = [o for o in loaded.outputs if o.type == "alertmanager"]
    assert unrouted_severities({"alertmanager": am.match}) == [], "every severity reaches Alertmanager"
    assert SEVERITIES == ("critical", "high", "medium", "low", "info")


def test_the_routes_test_lines_name_the_receivers_their_comments_say() -> None:
    amtool = required_tool("amtool")
    lines = command_lines("amtool config routes test")
    for line in lines:
        command, _, comment = line.partition("#")
        words = shlex.split(command)
        assert words[0] == "amtool" and f"--config.file={ALERTMANAGER.relative_to(REPO)}" in words
        result = run([amtool, *words[1:]], cwd=REPO)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip() == comment.strip(), line


@pytest.mark.slow
def test_the_test_page_reaches_alertmanager_as_an_alert_the_shipped_routes_page_with(
    alertmanagers: AlertmanagerFactory,
) -> None:
    amtool = required_tool("amtool")
    (line,) = [x for x in command_lines("alert add ExfilMonitorTestPage") if x.startswith("docker compose")]
    words = shlex.split(line)
    words = words[words.index("amtool") + 1 :]
    assert "--alertmanager.url=http://localhost:9093" in words  # the port compose publishes
    am = alertmanagers()
    words = [f"--alertmanager.url={am.url}" if w.startswith("--alertmanager.url=") else w for w in words]
    result = run([amtool, *words])
    assert result.returncode == 0, result.stdout + result.stderr
    deadline = time.monotonic() + 20
    while not (held := [a for a in am.alerts() if a["labels"]["alertname"] == "ExfilMonitorTestPage"]):
        assert time.monotonic() < deadline, "the test page never reached Alertmanager"
        time.sleep(0.2)
    (page,) = held
    assert page["labels"] == {"alertname": "ExfilMonitorTestPage", "severity": "critical"}
    assert "test page" in page["annotations"]["summary"]
    labels = [f"{k}={v}" for k, v in page["labels"].items()]
    routed = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels])
    assert routed.stdout.strip() == "pagerduty", routed.stdout + routed.stderr
