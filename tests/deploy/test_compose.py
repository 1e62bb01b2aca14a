"""Static checks of deploy/compose.yaml and the monitor's config in it: files, services,
secrets, and that the monitor's detections reach the stack's Alertmanager."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import build_parser
from monitor.outputs.alertmanager import AlertmanagerConfig
from monitor.rules.loader import load_rules
from tests.deploy.helpers import (
    ALERTMANAGER,
    COMPOSE,
    COMPOSE_MONITOR,
    DEPLOY,
    PROM_CONFIG,
    REPO,
    TOKEN_VAR,
    compose_mounts,
    image_env,
    load_monitor_config,
    load_yaml,
    run,
    with_token_file,
)


def test_compose_refers_to_files_that_exist() -> None:
    compose = load_yaml(COMPOSE)
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
            assert context == REPO, name
        for vol in svc.get("volumes", ()):
            src = vol.split(":")[0]
            if src.startswith((".", "/")):
                assert (DEPLOY / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in compose["volumes"], f"{name}: undeclared volume {src}"
        for secret in svc.get("secrets", ()):
            assert secret["source"] in compose["secrets"], f"{name}: undeclared secret {secret}"


def test_compose_services_healthchecks_and_order() -> None:
    services = load_yaml(COMPOSE)["services"]
    assert {
        "kafka",
        "exfil-monitor",
        "prometheus",
        "alertmanager",
        "grafana",
        "simulate",
    } <= services.keys()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name, svc in services.items():
        one_shot = svc.get("restart") == "no"
        if not one_shot:
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep} to be healthy, which it never is"
                )
            if cond["condition"] == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} should be a one-shot"
    assert services["simulate"]["depends_on"]["exfil-monitor"]["condition"] == "service_healthy"
    for name in ("exfil-monitor", "simulate"):
        assert services[name]["image"] == "exfil-monitor:dev" and "build" in services[name]


def test_compose_topics_match_the_monitor_config() -> None:
    services = load_yaml(COMPOSE)["services"]
    init = "\n".join(services["kafka-init"]["command"])
    config = load_yaml(COMPOSE_MONITOR)
    created = set(re.findall(r"([A-Za-z0-9._-]+):\d+", init))
    wanted = {*config["kafka"]["topics"], config["kafka"]["dead_letter_topic"]}
    wanted |= {o["topic"] for o in config["outputs"] if o["type"] == "kafka"}
    assert wanted <= created, f"kafka-init does not create {wanted - created}"
    host, port = config["kafka"]["bootstrap_servers"][0].split(":")
    assert (
        host == "kafka"
        and f"PLAINTEXT://{host}:{port}"
        in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_compose_monitor_config_and_rules_load_under_the_image_environment(
    tmp_path: Path,
) -> None:
    mounts = compose_mounts("exfil-monitor")
    assert mounts["/etc/exfil-monitor/monitor.yaml"] == COMPOSE_MONITOR
    config = load_monitor_config(COMPOSE_MONITOR, with_token_file(image_env(), tmp_path))
    assert str(config.rules.path) in mounts, "rules.path should be the mounted rules folder"
    assert load_rules(mounts[str(config.rules.path)]).enabled
    assert config.http.listen == "0.0.0.0:8080"


def test_compose_commands_are_ones_the_cli_accepts() -> None:
    """The monitor's and the simulator's commands parse with exfil-monitor's own parser,
    and the simulator produces to the broker and topic the monitor reads."""
    services = load_yaml(COMPOSE)["services"]
    parser = build_parser()
    run_args = parser.parse_args(services["exfil-monitor"]["command"])
    assert run_args.command == "run" and run_args.config == "/etc/exfil-monitor/monitor.yaml"
    sim = parser.parse_args(services["simulate"]["command"])
    assert sim.command == "simulate"
    assert compose_mounts("exfil-monitor")[run_args.config] == COMPOSE_MONITOR
    kafka = load_yaml(COMPOSE_MONITOR)["kafka"]
    assert sim.to_kafka in kafka["bootstrap_servers"]
    assert sim.topic in kafka["topics"]


def docker_compose() -> list[str] | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) and run([*cmd, "version"]).returncode == 0:
            return cmd
    return None


def test_docker_compose_config() -> None:
    cmd = docker_compose()
    if cmd is None:
        pytest.skip("docker compose (the Compose v2 plugin or binary) not installed")
    result = run(
        [*cmd, "-f", str(COMPOSE), "config", "--quiet"],
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------- secrets and paging


def secret_targets(service: str) -> dict[str, str]:
    """container path -> the compose secret mounted there."""
    svc = load_yaml(COMPOSE)["services"][service]
    return {s["target"]: s["source"] for s in svc.get("secrets", ())}


def alertmanager_secret_paths() -> set[str]:
    """Every file alertmanager.yml reads a credential from."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_file") and isinstance(value, str):
                    found.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(load_yaml(ALERTMANAGER))
    return found


def test_compose_secrets_are_files_outside_git_mounted_where_they_are_read() -> None:
    compose = load_yaml(COMPOSE)
    declared = compose["secrets"]
    for name, secret in declared.items():
        path = (DEPLOY / secret["file"]).resolve()
        assert path.parent == DEPLOY / "secrets", name
        ignored = run(["git", "-C", str(REPO), "check-ignore", "-q", str(path)])
        assert ignored.returncode == 0, f"{path} is not ignored by git: a secret could be committed"
    used = {s for svc in ("exfil-monitor", "prometheus", "alertmanager") for s in secret_targets(svc).values()}
    assert used == declared.keys()
    # the monitor reads its token where the image says, and Prometheus sends the same one
    assert secret_targets("exfil-monitor") == {image_env()[TOKEN_VAR]: "http-token"}
    (job,) = [j for j in load_yaml(PROM_CONFIG)["scrape_configs"] if j["job_name"] == "exfil-monitor"]
    token_file = job["authorization"]["credentials_file"]
    assert secret_targets("prometheus") == {token_file: "http-token"}
    # Alertmanager finds every key its config names, and no mounted secret goes unread
    assert set(secret_targets("alertmanager")) == alertmanager_secret_paths()


def test_compose_monitor_pages_through_the_stacks_alertmanager() -> None:
    services = load_yaml(COMPOSE)["services"]
    outputs = load_yaml(COMPOSE_MONITOR)["outputs"]
    (am,) = [o for o in outputs if o["type"] == "alertmanager"]
    config = AlertmanagerConfig.model_validate(am)  # the output's own model, as it is today
    assert config.watchdog is True
    assert 30_000 <= config.resend_interval <= 180_000, "Alertmanager advises 30s-3m"
    for url in config.urls:
        host, port = url.split("//")[1].split(":")
        assert host in services, f"{url}: no compose service {host}"
        listen = [a for a in services[host]["command"] if a.startswith("--web.listen-address")]
        assert port == (listen[0].rsplit(":", 1)[1] if listen else "9093")
    assert "/etc/alertmanager/alertmanager.yml" in compose_mounts("alertmanager")
    assert compose_mounts("alertmanager")["/etc/alertmanager/alertmanager.yml"] == ALERTMANAGER


def test_compose_state_dir_is_a_named_volume() -> None:
    """The spools hold alerts already committed: they must outlive the container."""
    config = load_yaml(COMPOSE_MONITOR)
    state = config["state"]["dir"]
    assert state == image_env()["EXFIL_MONITOR_STATE__DIR"]
    svc = load_yaml(COMPOSE)["services"]["exfil-monitor"]
    (volume,) = [v for v in svc["volumes"] if v.split(":")[1] == state]
    assert volume.split(":")[0] in load_yaml(COMPOSE)["volumes"]
    assert state not in svc.get("tmpfs", ())
