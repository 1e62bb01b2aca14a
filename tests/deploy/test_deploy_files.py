"""Static checks of the deployment files: Dockerfile, Prometheus and Grafana here; compose,
Alertmanager and Kubernetes in their own modules (deploy/README.md says what each is).

No container engine or cluster is needed. What is checked:

- every YAML and JSON file parses;
- Prometheus' config and rules pass ``promtool check`` and the alert rules pass unit tests
  (``promtool test rules``); Alertmanager's config passes ``amtool check-config`` and
  routes by severity. promtool and amtool come from Debian's ``prometheus`` and
  ``prometheus-alertmanager`` packages: without them these tests skip, except under
  ``CI=true``, where they fail;
- every metric (and label) the alert rules and the Grafana dashboard use exists in
  ``monitor.telemetry.Metrics``, so the dashboards stay true to the code;
- the Dockerfile copies files that exist and that .dockerignore lets through, and its
  healthcheck works against the real HTTP server;
- the configs the stacks mount load with ``monitor.config.load_config`` under the
  image's environment, and the rules shipped in the Kubernetes ConfigMap are the
  repository's rules;
- the compose file refers to files that exist, its healthchecks and dependencies fit;
  ``docker compose config`` and ``kubectl kustomize`` run when those tools exist.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.health import NOT_READY, READY, Report
from monitor.http import HttpServer
from monitor.telemetry import Metrics
from tests.deploy.helpers import (
    COMPOSE,
    DEBIAN_PACKAGE,
    DEPLOY,
    PROM_CONFIG,
    REPO,
    TOKEN_VAR,
    compose_mounts,
    dockerfile_env,
    dockerfile_instructions,
    image_env,
    load_all,
    load_monitor_config,
    load_yaml,
    required_tool,
    run,
    with_token_file,
)

DOCKERIGNORE = REPO / ".dockerignore"
PROM_RULES = DEPLOY / "prometheus" / "rules" / "exfil-monitor.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "exfil-monitor.json"
GRAFANA_DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
# Metrics the rules use that the branch of #8 (per-output delivery metrics) adds; the
# metric checks skip them while they are absent and fail once they exist, so the entry
# is deleted and their labels are checked too.


def metric_catalogue() -> dict[str, set[str]]:
    """Every series name the monitor exports -> its label names.

    Built from a fresh registry, so a renamed or removed metric fails these tests: a
    Counter ``x`` is exported as ``x_total`` (and ``x_created``), a Histogram as
    ``x_bucket``, ``x_sum``, ``x_count``.
    """
    metrics = Metrics(CollectorRegistry())
    labels_of = {
        w._name: set(w._labelnames)  # prometheus_client keeps these on every metric wrapper
        for w in vars(metrics).values()
        if hasattr(w, "_labelnames") and hasattr(w, "_name")
    }
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        labels = labels_of[family.name]
        suffixes = {
            "counter": ("_total", "_created"),
            "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"),
        }[family.type]
        for suffix in suffixes:
            names[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


METRIC_RE = re.compile(r"\b(exfil_monitor_[a-z0-9_]+)\b")
SELECTOR_RE = re.compile(r"\b(exfil_monitor_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER_RE = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
# Labels Prometheus adds at scrape time, and one the compose scrape config sets.
TARGET_LABELS = {"job", "instance", "service"}


def expression_problems(expr: str, catalogue: dict[str, set[str]]) -> list[str]:
    problems = []
    used = set(METRIC_RE.findall(expr))
    for name in sorted(used - catalogue.keys()):
        problems.append(f"unknown metric {name}")
    for name, matchers in SELECTOR_RE.findall(expr):
        for label in MATCHER_RE.findall(matchers):
            if name in catalogue and label not in catalogue[name] | TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
    known = set().union(*(catalogue.get(n, set()) for n in used)) | TARGET_LABELS
    for group in GROUPING_RE.findall(expr):
        for label in (x.strip() for x in group.split(",")):
            if label and label not in known:
                problems.append(f"grouping by {label!r}, a label of none of {sorted(used)}")
    return problems


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(PROM_RULES)["groups"] for r in g["rules"] if "alert" in r]


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", ())]
    for var in dash["templating"]["list"]:
        query = var.get("query")
        out.append(
            (f"variable {var['name']}", query["query"] if isinstance(query, dict) else str(query))
        )
    return out


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{path} is empty"


def test_dashboard_is_json_with_unique_panel_ids() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dash["uid"] == "exfil-monitor"
    for p in dash["panels"]:
        assert {"x", "y", "w", "h"} <= p["gridPos"].keys(), p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]


def test_deploy_readme_describes_every_file() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    files = [
        p
        for p in DEPLOY.rglob("*")
        if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts
    ]
    missing = [
        str(p.relative_to(DEPLOY)) for p in files if str(p.relative_to(DEPLOY)) not in readme
    ]
    assert not missing, f"deploy/README.md does not mention: {missing}"


# ---------------------------------------------------------------------------- metrics


def test_alert_rules_use_only_metrics_the_monitor_exports() -> None:
    catalogue = metric_catalogue()
    problems = [
        f"{rule['alert']}: {p}"
        for rule in alert_rules()
        for p in expression_problems(rule["expr"], catalogue)
    ]
    assert not problems, "\n".join(problems)


def test_dashboard_uses_only_metrics_the_monitor_exports() -> None:
    catalogue = metric_catalogue()
    problems = [
        f"{title}: {p}"
        for title, expr in dashboard_exprs()
        for p in expression_problems(expr, catalogue)
    ]
    assert not problems, "\n".join(problems)


def test_the_checks_catch_a_wrong_metric_or_label() -> None:
    catalogue = metric_catalogue()
    assert expression_problems("rate(exfil_monitor_events_total[5m])", catalogue)
    assert expression_problems('exfil_monitor_output_sends_total{result="error"}', catalogue)
    assert expression_problems("sum by (reasons) (exfil_monitor_events_invalid_total)", catalogue)
    assert not expression_problems(
        'sum by (job, reason) (rate(exfil_monitor_events_invalid_total{instance=~"$i"}[5m]))',
        catalogue,
    )


def test_dashboard_shows_what_operators_need() -> None:
    used = {m for _, expr in dashboard_exprs() for m in METRIC_RE.findall(expr)}
    wanted = {
        "exfil_monitor_events_received_total",  # events/s
        "exfil_monitor_events_invalid_total",  # invalid by reason
        "exfil_monitor_alerts_total",  # alerts by rule and severity
        "exfil_monitor_consumer_lag",
        "exfil_monitor_event_time_lag_seconds_bucket",  # p50/p99
        "exfil_monitor_batch_seconds_bucket",
        "exfil_monitor_active_groups",
        "exfil_monitor_output_sends_total",
    }
    assert wanted <= used, f"missing from the dashboard: {sorted(wanted - used)}"


def test_alert_rules_cover_the_monitors_failure_modes() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    wanted = {
        "ExfilMonitorDown": "up",
        "ExfilMonitorKafkaDisconnected": "exfil_monitor_source_connected",
        "ExfilMonitorConsumerLagGrowing": "exfil_monitor_consumer_lag",
        "ExfilMonitorEventTimeLagHigh": "exfil_monitor_event_time_lag_seconds_bucket",
        "ExfilMonitorInvalidEventsHigh": "exfil_monitor_events_invalid_total",
        "ExfilMonitorOutputFailing": "exfil_monitor_output_sends_total",
        "ExfilMonitorDeadLetters": "exfil_monitor_dead_letters_total",
        "ExfilMonitorRulesRejected": "exfil_monitor_rule_reloads_total",
        "ExfilMonitorGroupEvictions": "exfil_monitor_group_evictions_total",
        "ExfilMonitorNoEventsReceived": "exfil_monitor_events_received_total",
    }
    for name, metric in wanted.items():
        assert name in rules, f"no alert {name}"
        assert metric in rules[name]["expr"], f"{name} should use {metric}"
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), name


# ---------------------------------------------------------------------------- Prometheus


def test_promtool_check_rules() -> None:
    promtool = required_tool("promtool")
    result = run([promtool, "check", "rules", str(PROM_RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config(tmp_path: Path) -> None:
    """The config as compose mounts it, with the rule files' glob pointed at the repository."""
    promtool = required_tool("promtool")
    config = load_yaml(PROM_CONFIG)
    (pattern,) = config["rule_files"]
    assert fnmatch.fnmatch("/etc/prometheus/rules/" + PROM_RULES.name, pattern)
    config["rule_files"] = [str(PROM_RULES.parent / Path(pattern).name)]
    # promtool wants the token file to exist; compose mounts it (test_compose checks where).
    token = tmp_path / "http-token"
    token.write_text("placeholder\n")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run([promtool, "check", "config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert PROM_RULES.name in result.stdout and "SUCCESS" in result.stdout, result.stdout


def test_prometheus_scrapes_the_monitor_where_compose_runs_it() -> None:
    config = load_yaml(PROM_CONFIG)
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "exfil-monitor"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    compose = load_yaml(COMPOSE)
    assert targets == ["exfil-monitor:8080"]
    assert "exfil-monitor" in compose["services"]
    (am,) = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am.split(":")[0] in compose["services"]


# ---------------------------------------------------------------------------- Grafana


def test_grafana_provisioning_fits_the_dashboard_and_compose() -> None:
    (ds,) = load_yaml(GRAFANA_DATASOURCE)["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    uids = {p["datasource"]["uid"] for p in dash["panels"] if "datasource" in p}
    assert uids == {ds["uid"]}
    (provider,) = load_yaml(GRAFANA_PROVIDERS)["providers"]
    mounts = compose_mounts("grafana")
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_DATASOURCE.parents[1]


# ---------------------------------------------------------------------------- Dockerfile


def dockerignore_allows(rel: str) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    allowed = True
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or (
            pattern.startswith("**/") and any(fnmatch.fnmatch(x, pattern[3:]) for x in parts)
        ):
            allowed = negate
    return allowed


def test_dockerignore_checker_itself() -> None:
    assert dockerignore_allows("monitor/cli.py")
    assert not dockerignore_allows("monitor/__pycache__/cli.cpython-311.pyc")
    assert not dockerignore_allows(".git/config")
    assert not dockerignore_allows(".cache/kafka/4.1.2/libs/kafka.jar")


def test_dockerfile_copy_sources_exist_and_reach_the_builder() -> None:
    copies = [rest for word, rest in dockerfile_instructions() if word in ("COPY", "ADD")]
    assert copies
    for rest in copies:
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        if "--from=" in rest:
            continue
        for src in args[:-1]:
            path = REPO / src
            assert path.exists(), f"COPY {src}: no such file in the repository"
            assert dockerignore_allows(src.rstrip("/")), f"COPY {src}: excluded by .dockerignore"
            if path.is_dir():
                for f in path.rglob("*"):
                    rel = str(f.relative_to(REPO))
                    if f.is_file() and "__pycache__" not in rel:
                        assert dockerignore_allows(rel), f"{rel} is excluded by .dockerignore"
    # pyproject.toml names the readme; setuptools needs it to build the wheel.
    assert any(rest.split()[:2] == ["pyproject.toml", "README.md"] for rest in copies)


def test_dockerfile_runtime_contract() -> None:
    ins = dockerfile_instructions()
    words = [w for w, _ in ins]
    froms = [rest for w, rest in ins if w == "FROM"]
    assert len(froms) == 2 and "python:${PYTHON_VERSION}-slim" in froms[1], froms
    assert any(w == "ARG" and rest == "PYTHON_VERSION=3.11" for w, rest in ins)
    runtime = ins[len(words) - 1 - words[::-1].index("FROM") :]
    user = [rest for w, rest in runtime if w == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root"), user
    assert user[-1].split(":")[0].isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"
    assert ("ENTRYPOINT", '["exfil-monitor"]') in ins
    assert ("CMD", '["run", "--config", "/etc/exfil-monitor/monitor.yaml"]') in ins
    (health,) = [rest for w, rest in ins if w == "HEALTHCHECK"]
    assert "/healthz" in health and "curl" not in health and "wget" not in health
    labels = " ".join(rest for w, rest in ins if w == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    env = dockerfile_env()
    rules_dest = [
        shlex.split(rest)[-1] for w, rest in runtime if w == "COPY" and rest.startswith("rules/")
    ]
    assert rules_dest and env["EXFIL_MONITOR_RULES"].rstrip("/") == rules_dest[0].rstrip("/")
    assert env["EXFIL_MONITOR_HTTP__LISTEN"].startswith("0.0.0.0:")


def test_dockerfile_state_dir_is_a_volume_owned_by_the_runtime_user() -> None:
    ins = dockerfile_instructions()
    state = dockerfile_env()["EXFIL_MONITOR_STATE__DIR"]
    assert state == "/var/lib/exfil-monitor"
    assert ("VOLUME", f'["{state}"]') in ins
    words = [w for w, _ in ins]
    chown = next(i for i, (w, rest) in enumerate(ins) if w == "RUN" and f"chown exfil:exfil {state}" in rest)
    assert chown < words.index("VOLUME"), "declared after the chown, so a fresh volume is the user's"
    user = [rest for w, rest in ins if w == "USER"][-1]
    assert re.search(rf"--uid {user.split(':')[0]} ", " ".join(rest for w, rest in ins if w == "RUN"))


def healthcheck_argv() -> list[str]:
    (health,) = [rest for w, rest in dockerfile_instructions() if w == "HEALTHCHECK"]
    argv = json.loads(health.split(" CMD ", 1)[1])
    assert isinstance(argv, list) and argv[0] == "python"
    return [sys.executable, *argv[1:]]


class FakeStatus:
    def __init__(self, ready: bool) -> None:
        self._ready = ready

    def health(self) -> Report:
        return Report(READY) if self._ready else Report(NOT_READY, ["joining the consumer group"])

    def rules(self) -> dict[str, Any] | None:
        return None

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        return []


async def run_check(argv: list[str], env: dict[str, str]) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 30)


async def test_image_healthcheck_and_compose_readiness_check_against_the_real_server() -> None:
    """The Dockerfile's HEALTHCHECK (on /healthz, port from EXFIL_MONITOR_HTTP__LISTEN) and
    compose's readiness check (on /readyz) run against monitor.http's server."""
    compose_check = load_yaml(COMPOSE)["services"]["exfil-monitor"]["healthcheck"]["test"]
    assert compose_check[:2] == ["CMD", "python"]
    for ready in (True, False):
        server = HttpServer("127.0.0.1", 0, CollectorRegistry(), FakeStatus(ready))
        port = await server.start()
        try:
            env = {"EXFIL_MONITOR_HTTP__LISTEN": f"0.0.0.0:{port}"}
            assert await run_check(healthcheck_argv(), env) == 0
            readiness = [sys.executable, *compose_check[2:]]
            readiness = [a.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for a in readiness]
            assert await run_check(readiness, {}) == (0 if ready else 1)
        finally:
            await server.stop()
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), FakeStatus(True))
    port = await server.start()
    await server.stop()  # nothing listens there now
    assert (
        await run_check(healthcheck_argv(), {"EXFIL_MONITOR_HTTP__LISTEN": f"0.0.0.0:{port}"}) != 0
    )


def test_image_environment_is_accepted_by_the_config_loader(tmp_path: Path) -> None:
    """Every EXFIL_MONITOR_* variable of the image reaches load_config (which treats that
    prefix as config overrides), so each must be a valid override or be ignored by it."""
    config = tmp_path / "monitor.yaml"
    config.write_text("kafka:\n  bootstrap_servers: [k:9092]\n  topics: [t]\nrules:\n  path: /r\n")
    assert image_env()[TOKEN_VAR] == "/run/secrets/exfil-monitor/http-token"
    loaded = load_monitor_config(config, with_token_file(image_env(), tmp_path))
    assert loaded.http.host_port == ("0.0.0.0", 8080)
    assert str(loaded.state.dir) == image_env()["EXFIL_MONITOR_STATE__DIR"]


def test_deploy_readme_names_the_debian_packages_these_tests_use() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for package in DEBIAN_PACKAGE.values():
        assert package in text, package


def test_readme_deploy_direct_outputs_load_with_their_secret_files(tmp_path: Path) -> None:
    """The README's PagerDuty and Slack outputs, with each ``*_file`` a mounted secret."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", section, re.S) if "type: pagerduty" in b]
    outputs = yaml.safe_load(block)["outputs"]
    assert {o["type"] for o in outputs} == {"pagerduty", "slack"}
    for output in outputs:
        for key in [k for k in output if k.endswith("_file")]:
            assert output[key].startswith("/run/secrets/"), key
            local = tmp_path / Path(output[key]).name
            secret = "https://hooks.slack.com/services/T0/B0/placeholder" if "url" in key else "placeholder-secret"
            local.write_text(secret + "\n", encoding="utf-8")
            output[key] = str(local)
    config = tmp_path / "monitor.yaml"
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": ["k:9092"], "topics": ["t"]},
                                      "rules": {"path": "/r"}, "outputs": outputs}))  # fmt: skip
    loaded = load_monitor_config(config, {})
    assert [o.type for o in loaded.outputs] == ["pagerduty", "slack"]
