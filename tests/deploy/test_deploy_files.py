"""Static checks of the deployment files: Dockerfile, compose, Prometheus, Alertmanager,
Grafana and Kubernetes (deploy/README.md says what each is).

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
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.cli import build_parser
from monitor.config import load_config
from monitor.health import NOT_READY, READY, Report
from monitor.http import HttpServer
from monitor.rules.loader import load_rules
from monitor.telemetry import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
PROM_RULES = DEPLOY / "prometheus" / "rules" / "exfil-monitor.rules.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "exfil-monitor.json"
GRAFANA_DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
K8S = DEPLOY / "kubernetes"

YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
DEBIAN_PACKAGE = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


# ---------------------------------------------------------------------------- helpers


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def required_tool(name: str) -> str:
    """The path of a tool the checks need: skip without it, but fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (Debian: apt-get install -y {DEBIAN_PACKAGE[name]})"
        if on_ci():
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)
    return path


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_all(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends with a line continuation"
    return out


def dockerfile_env() -> dict[str, str]:
    """The runtime stage's ENV, as the container sees it."""
    env: dict[str, str] = {}
    stage = ""
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            stage = rest.split()[-1]
            env = {}
        elif word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    assert stage == "runtime", "the last stage of the Dockerfile should be the runtime"
    return env


def image_env(**extra: str) -> dict[str, str]:
    """The image's exfil-monitor variables, and what a deployment adds on top."""
    env = {k: v for k, v in dockerfile_env().items() if k.startswith("EXFIL_MONITOR_")}
    env.update(extra)
    return env


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


def k8s_docs() -> dict[str, list[dict[str, Any]]]:
    """kustomization resource file -> its documents."""
    kust = load_yaml(K8S / "kustomization.yaml")
    return {name: load_all(K8S / name) for name in kust["resources"]}


def k8s_objects(kind: str) -> list[dict[str, Any]]:
    return [d for docs in k8s_docs().values() for d in docs if d["kind"] == kind]


def deployment() -> dict[str, Any]:
    (dep,) = k8s_objects("Deployment")
    return dep


def container() -> dict[str, Any]:
    (c,) = deployment()["spec"]["template"]["spec"]["containers"]
    return c


def bundled_rule_files() -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted((REPO / "rules").glob("*.y*ml"))
        if not p.name.endswith((".test.yaml", ".test.yml"))
    }


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


PROMTOOL_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - name: an instance that cannot be scraped pages
    interval: 1m
    input_series:
      - series: 'up{{job="exfil-monitor", instance="m1:8080"}}'
        values: '1 1 0x10'
    alert_rule_test:
      - eval_time: 3m
        alertname: ExfilMonitorDown
        exp_alerts: []
      - eval_time: 5m
        alertname: ExfilMonitorDown
        exp_alerts:
          - exp_labels: {{severity: critical, service: exfil-monitor, job: exfil-monitor, instance: "m1:8080"}}
  - name: no target at all pages
    interval: 1m
    input_series:
      - series: 'up{{job="other"}}'
        values: '1x10'
    alert_rule_test:
      - eval_time: 6m
        alertname: ExfilMonitorAbsent
        exp_alerts:
          - exp_labels: {{severity: critical, service: exfil-monitor, job: exfil-monitor}}
  - name: a disconnected source pages
    interval: 1m
    input_series:
      - series: 'exfil_monitor_source_connected{{job="exfil-monitor", instance="m1:8080"}}'
        values: '1 0x10'
    alert_rule_test:
      - eval_time: 4m
        alertname: ExfilMonitorKafkaDisconnected
        exp_alerts:
          - exp_labels: {{severity: critical, service: exfil-monitor, job: exfil-monitor, instance: "m1:8080"}}
  - name: silence for twenty minutes pages, traffic does not
    interval: 1m
    input_series:
      - series: 'exfil_monitor_events_received_total{{job="exfil-monitor", instance="m1:8080"}}'
        values: '0+100x10 1000x30'
      - series: 'exfil_monitor_events_received_total{{job="exfil-monitor", instance="m2:8080"}}'
        values: '0x40'
    alert_rule_test:
      - eval_time: 20m
        alertname: ExfilMonitorNoEventsReceived
        exp_alerts: []
      - eval_time: 31m
        alertname: ExfilMonitorNoEventsReceived
        exp_alerts:
          - exp_labels: {{severity: critical, service: exfil-monitor, job: exfil-monitor}}
  - name: failing output sends page
    interval: 1m
    input_series:
      - series: 'exfil_monitor_output_sends_total{{job="exfil-monitor", instance="m1:8080", output="kafka", outcome="error"}}'
        values: '0+3x20'
      - series: 'exfil_monitor_output_sends_total{{job="exfil-monitor", instance="m1:8080", output="stdout", outcome="success"}}'
        values: '0+3x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: ExfilMonitorOutputFailing
        exp_alerts:
          - exp_labels: {{severity: critical, service: exfil-monitor, job: exfil-monitor, instance: "m1:8080", output: kafka, outcome: error}}
  - name: the first dead letters of a reason are noticed, and forgotten after the window
    interval: 1m
    input_series:
      - series: 'exfil_monitor_dead_letters_total{{job="exfil-monitor", instance="m1:8080", reason="invalid_json"}}'
        values: '_x10 4x30'
    alert_rule_test:
      - eval_time: 9m
        alertname: ExfilMonitorDeadLetters
        exp_alerts: []
      - eval_time: 11m
        alertname: ExfilMonitorDeadLetters
        exp_alerts:
          - exp_labels: {{severity: warning, service: exfil-monitor, job: exfil-monitor, reason: invalid_json}}
      - eval_time: 35m
        alertname: ExfilMonitorDeadLetters
        exp_alerts: []
  - name: a rejected rule set is reported
    interval: 1m
    input_series:
      - series: 'exfil_monitor_rule_reloads_total{{job="exfil-monitor", instance="m1:8080", outcome="rejected"}}'
        values: '_x5 1x10'
    alert_rule_test:
      - eval_time: 7m
        alertname: ExfilMonitorRulesRejected
        exp_alerts:
          - exp_labels: {{severity: warning, service: exfil-monitor, job: exfil-monitor, instance: "m1:8080"}}
  - name: evictions are reported
    interval: 1m
    input_series:
      - series: 'exfil_monitor_group_evictions_total{{job="exfil-monitor", instance="m1:8080", rule="customer-enumeration"}}'
        values: '5+10x20'
    alert_rule_test:
      - eval_time: 10m
        alertname: ExfilMonitorGroupEvictions
        exp_alerts:
          - exp_labels: {{severity: warning, service: exfil-monitor, job: exfil-monitor, rule: customer-enumeration}}
  - name: five percent unusable events is too many
    interval: 1m
    input_series:
      - series: 'exfil_monitor_events_received_total{{job="exfil-monitor", instance="m1:8080"}}'
        values: '0+1000x30'
      - series: 'exfil_monitor_events_invalid_total{{job="exfil-monitor", instance="m1:8080", reason="bad_time"}}'
        values: '0+50x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: ExfilMonitorInvalidEventsHigh
        exp_alerts:
          - exp_labels: {{severity: warning, service: exfil-monitor, job: exfil-monitor}}
  - name: a growing backlog warns, a steady one does not
    interval: 1m
    input_series:
      - series: 'exfil_monitor_consumer_lag{{job="exfil-monitor", instance="m1:8080", topic="events", partition="0"}}'
        values: '20000+1000x40'
      - series: 'exfil_monitor_consumer_lag{{job="exfil-monitor", instance="m1:8080", topic="steady", partition="0"}}'
        values: '20000x40'
    alert_rule_test:
      - eval_time: 35m
        alertname: ExfilMonitorConsumerLagGrowing
        exp_alerts:
          - exp_labels: {{severity: warning, service: exfil-monitor, job: exfil-monitor, topic: events}}
  - name: events evaluated ten minutes late warn
    interval: 1m
    input_series:
      - series: 'exfil_monitor_event_time_lag_seconds_bucket{{job="exfil-monitor", instance="m1:8080", le="300"}}'
        values: '0x30'
      - series: 'exfil_monitor_event_time_lag_seconds_bucket{{job="exfil-monitor", instance="m1:8080", le="900"}}'
        values: '0+10x30'
      - series: 'exfil_monitor_event_time_lag_seconds_bucket{{job="exfil-monitor", instance="m1:8080", le="+Inf"}}'
        values: '0+10x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: ExfilMonitorEventTimeLagHigh
        exp_alerts:
          - exp_labels: {{severity: warning, service: exfil-monitor, job: exfil-monitor}}
"""


def test_alert_rules_fire_when_they_should(tmp_path: Path) -> None:
    """``promtool test rules``: alerts against series that should and should not fire them.
    (Their annotation templates are checked by ``promtool check rules``.)"""
    promtool = required_tool("promtool")
    rules = load_yaml(PROM_RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # promtool would compare them too; labels suffice here
    stripped = tmp_path / "exfil-monitor.rules.yml"
    stripped.write_text(yaml.safe_dump(rules), encoding="utf-8")
    tests = tmp_path / "exfil-monitor.rules.test.yml"
    tests.write_text(PROMTOOL_TESTS.format(rules=json.dumps(str(stripped))), encoding="utf-8")
    result = run([promtool, "test", "rules", str(tests)])
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------- Alertmanager


def test_amtool_check_config() -> None:
    amtool = required_tool("amtool")
    result = run([amtool, "check-config", str(ALERTMANAGER)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=ExfilMonitorDown", "severity=critical"], "oncall-page"),
        (["alertname=ExfilMonitorDeadLetters", "severity=warning"], "oncall-queue"),
        (["alertname=Other"], "oncall-queue"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str) -> None:
    amtool = required_tool("amtool")
    result = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver, result.stdout


def test_alertmanager_config_has_no_real_endpoints_or_secrets() -> None:
    text = ALERTMANAGER.read_text(encoding="utf-8")
    config = load_yaml(ALERTMANAGER)
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", ())]
    assert urls and all(".invalid/" in u for u in urls), urls
    assert not re.search(r"(?i)(api_key|password|token|secret)\s*:", text.split("\nglobal:")[1])
    severities = {m for route in config["route"]["routes"] for m in route["matchers"]}
    assert severities == {'severity="critical"', 'severity="warning"'}
    assert config["inhibit_rules"], "expected inhibition rules"


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
    loaded = load_config(config, environ=image_env())
    assert loaded.http.host_port == ("0.0.0.0", 8080)


# ---------------------------------------------------------------------------- compose


def compose_mounts(service: str) -> dict[str, Path]:
    """container path -> host path, for a compose service's bind mounts."""
    out = {}
    for vol in load_yaml(COMPOSE)["services"][service].get("volumes", ()):
        src, target = vol.split(":")[:2]
        if src.startswith((".", "/")):
            out[target] = (DEPLOY / src).resolve()
    return out


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
    config = load_config(
        compose_mounts("exfil-monitor")["/etc/exfil-monitor/monitor.yaml"], environ={}
    )
    created = set(re.findall(r"([A-Za-z0-9._-]+):\d+", init))
    wanted = {*config.kafka.topics, config.kafka.dead_letter_topic}
    wanted |= {o.topic for o in config.outputs if getattr(o, "type", "") == "kafka"}
    assert wanted <= created, f"kafka-init does not create {wanted - created}"
    host, port = config.kafka.bootstrap_servers[0].split(":")
    assert (
        host == "kafka"
        and f"PLAINTEXT://{host}:{port}"
        in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_compose_monitor_config_and_rules_load_under_the_image_environment() -> None:
    mounts = compose_mounts("exfil-monitor")
    config = load_config(mounts["/etc/exfil-monitor/monitor.yaml"], environ=image_env())
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
    config = load_config(compose_mounts("exfil-monitor")[run_args.config], environ={})
    assert sim.to_kafka in config.kafka.bootstrap_servers
    assert sim.topic in config.kafka.topics


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


# ---------------------------------------------------------------------------- Kubernetes


def test_kubernetes_manifests_have_the_expected_kinds() -> None:
    kinds = sorted(d["kind"] for docs in k8s_docs().values() for d in docs)
    assert kinds == sorted(
        ["Namespace", "ConfigMap", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    )
    assert load_yaml(K8S / "kustomization.yaml")["namespace"] == "exfil-monitor"
    (ns,) = k8s_objects("Namespace")
    assert ns["metadata"]["name"] == "exfil-monitor"


def test_kubernetes_deployment() -> None:
    dep = deployment()
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c = container()
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (port,) = c["ports"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in (port["name"], port["containerPort"]), probe
    assert port["containerPort"] == 8080
    notes = spec["template"]["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/port"] == "8080"
    assert notes["prometheus.io/path"] == "/metrics"
    assert c["args"] == ["run", "--config", "/etc/exfil-monitor/monitor.yaml"]
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
    assert "memory" in c["resources"]["limits"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    user = re.search(r"^USER (\d+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert user and pod["securityContext"]["runAsUser"] == int(user.group(1))
    # the read-only root needs writable places for the file output and temporary files
    mounted = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/tmp", "/var/lib/exfil-monitor"} <= mounted


def test_kubernetes_config_loads_with_the_deployments_environment(tmp_path: Path) -> None:
    (cm,) = [d for d in k8s_objects("ConfigMap") if d["metadata"]["name"] == "exfil-monitor-config"]
    path = tmp_path / "monitor.yaml"
    path.write_text(cm["data"]["monitor.yaml"], encoding="utf-8")
    (secret,) = load_all(K8S / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    assert all("REPLACE" in v for v in secret["stringData"].values()), (
        "the example holds placeholders only"
    )
    env = {e["name"]: e.get("value", "pod-name") for e in container()["env"]}
    names = [ref["secretRef"]["name"] for ref in container()["envFrom"]]
    assert names == [secret["metadata"]["name"]]
    config = load_config(path, environ=image_env(**env, **secret["stringData"]))
    assert (
        config.kafka.sasl is not None
        and config.kafka.sasl.password.get_secret_value().startswith("REPLACE")
    )
    assert config.http.host_port[1] == container()["ports"][0]["containerPort"]
    # the config names the folder where the rules are mounted
    mounts = {m["mountPath"]: m for m in container()["volumeMounts"]}
    assert mounts["/etc/exfil-monitor/monitor.yaml"]["subPath"] == "monitor.yaml"
    rule_mounts = {p for p in mounts if p.startswith(str(config.rules.path) + "/")}
    assert rule_mounts


def test_kubernetes_rules_are_the_repositorys_rules(tmp_path: Path) -> None:
    (cm,) = [d for d in k8s_objects("ConfigMap") if d["metadata"]["name"] == "exfil-monitor-rules"]
    regenerate = (
        "regenerate it: kubectl create configmap exfil-monitor-rules "
        "$(ls rules/*.yaml | grep -v '\\.test\\.yaml$' | sed 's/^/--from-file=/') "
        "--dry-run=client -o yaml > deploy/kubernetes/configmap-rules.yaml"
    )
    assert cm["data"] == bundled_rule_files(), (
        f"deploy/kubernetes/configmap-rules.yaml is stale; {regenerate}"
    )
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert load_rules(tmp_path).enabled
    # each file is mounted on its own (subPath) into the rules folder, and nothing else
    mounts = [m for m in container()["volumeMounts"] if m["name"] == "rules"]
    assert sorted(m["subPath"] for m in mounts) == sorted(cm["data"])
    assert all(m["mountPath"] == f"/etc/exfil-monitor/rules/{m['subPath']}" for m in mounts)
    volumes = {v["name"]: v for v in deployment()["spec"]["template"]["spec"]["volumes"]}
    assert volumes["rules"]["configMap"]["name"] == "exfil-monitor-rules"


def test_kubernetes_service_and_pdb_select_the_pods() -> None:
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    (svc,) = k8s_objects("Service")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] in ("http", 8080)
    (pdb,) = k8s_objects("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < deployment()["spec"]["replicas"]


def test_kubectl_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed (only needed to render the kustomization)")
    result = run([kubectl, "kustomize", str(K8S)])
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert all(
        d["metadata"].get("namespace") == "exfil-monitor" for d in docs if d["kind"] != "Namespace"
    )
    assert "Secret" not in {d["kind"] for d in docs}


def test_deploy_readme_names_the_debian_packages_these_tests_use() -> None:
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for package in DEBIAN_PACKAGE.values():
        assert package in text, package
