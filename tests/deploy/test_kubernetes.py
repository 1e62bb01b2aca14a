"""Static checks of deploy/kubernetes: the kinds, the StatefulSet (probes, security, a
claim for state.dir, the rules ConfigMap as a folder), that every ConfigMap, Secret and
key the pods mount exists, that the config loads, and that the NetworkPolicy admits
Prometheus and lets the pods reach the Kafka brokers, Alertmanager and DNS the config
names. ``kubectl kustomize`` runs when kubectl is installed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from monitor.outputs.alertmanager import AlertmanagerConfig
from monitor.rules.loader import load_rules
from tests.deploy.helpers import (
    DOCKERFILE,
    K8S,
    REPO,
    TOKEN_VAR,
    image_env,
    load_all,
    load_monitor_config,
    load_yaml,
    run,
    with_token_file,
)

STATE_DIR = "/var/lib/exfil-monitor"


def k8s_docs() -> dict[str, list[dict[str, Any]]]:
    """kustomization resource file -> its documents."""
    kust = load_yaml(K8S / "kustomization.yaml")
    return {name: load_all(K8S / name) for name in kust["resources"]}


def k8s_objects(kind: str) -> list[dict[str, Any]]:
    return [d for docs in k8s_docs().values() for d in docs if d["kind"] == kind]


def statefulset() -> dict[str, Any]:
    (sts,) = k8s_objects("StatefulSet")
    return sts


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = statefulset()["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (c,) = pod()["containers"]
    return c


def config_map(name: str) -> dict[str, Any]:
    (cm,) = [d for d in k8s_objects("ConfigMap") if d["metadata"]["name"] == name]
    return cm


def example_secrets() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in load_all(K8S / "secret.example.yaml")}


def container_env() -> dict[str, str]:
    return {e["name"]: e.get("value", "pod-name") for e in container()["env"]}


def monitor_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(config_map("exfil-monitor-config")["data"]["monitor.yaml"])
    return data


def mounts() -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container()["volumeMounts"]}


def volumes() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod()["volumes"]}


def bundled_rule_files() -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted((REPO / "rules").glob("*.y*ml"))
        if not p.name.endswith((".test.yaml", ".test.yml"))
    }


# ---------------------------------------------------------------------------- shape


def test_kubernetes_manifests_have_the_expected_kinds() -> None:
    kinds = sorted(d["kind"] for docs in k8s_docs().values() for d in docs)
    assert kinds == sorted(["Namespace", "ConfigMap", "ConfigMap", "StatefulSet", "Service",
                            "NetworkPolicy", "PodDisruptionBudget"])  # fmt: skip
    assert not (K8S / "deployment.yaml").exists(), "the StatefulSet replaces the Deployment"
    assert load_yaml(K8S / "kustomization.yaml")["namespace"] == "exfil-monitor"
    (ns,) = k8s_objects("Namespace")
    assert ns["metadata"]["name"] == "exfil-monitor"


def test_kubernetes_statefulset() -> None:
    spec = statefulset()["spec"]
    c = container()
    assert spec["replicas"] == 2 and spec["podManagementPolicy"] == "Parallel"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (port,) = c["ports"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in (port["name"], port["containerPort"]), probe
        assert c[probe]["httpGet"]["path"] in ("/healthz", "/readyz"), "the only paths without a token"
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
    assert pod()["securityContext"]["runAsNonRoot"] is True
    user = re.search(r"^USER (\d+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert user and pod()["securityContext"]["runAsUser"] == int(user.group(1))
    assert pod()["securityContext"]["fsGroup"] == int(user.group(1)), "the claim must be writable"
    assert "/tmp" in mounts()


def test_state_dir_is_a_persistent_volume_claim_per_pod() -> None:
    """The spools hold alerts already committed: an emptyDir would lose them with the pod."""
    (claim,) = statefulset()["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    assert container_env()["EXFIL_MONITOR_STATE__DIR"] == STATE_DIR
    assert image_env()["EXFIL_MONITOR_STATE__DIR"] == STATE_DIR
    assert "dir" not in monitor_yaml().get("state", {}), "the environment sets it"
    mount = mounts()[STATE_DIR]
    assert mount["name"] == claim["metadata"]["name"] and not mount.get("readOnly")
    assert claim["metadata"]["name"] not in volumes(), "a pod volume would shadow the claim"
    assert not [v for v in pod()["volumes"] if "emptyDir" in v and v["name"] == mount["name"]]
    retention = statefulset()["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_headless_service_governs_the_statefulset_and_the_pdb_selects_the_pods() -> None:
    pod_labels = statefulset()["spec"]["template"]["metadata"]["labels"]
    (svc,) = k8s_objects("Service")
    assert statefulset()["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] in ("http", 8080)
    (pdb,) = k8s_objects("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] < statefulset()["spec"]["replicas"]


# ---------------------------------------------------------------------------- references


def test_every_mounted_config_map_secret_and_key_exists() -> None:
    maps = {d["metadata"]["name"]: d for d in k8s_objects("ConfigMap")}
    secrets = example_secrets()
    for v in pod()["volumes"]:
        if "configMap" in v:
            source, keys = v["configMap"], maps[v["configMap"]["name"]]["data"].keys()
        elif "secret" in v:
            source = v["secret"]
            keys = secrets[source["secretName"]]["stringData"].keys()
        else:
            continue
        for item in source.get("items", ()):
            assert item["key"] in keys, f"volume {v['name']}: no key {item['key']}"
    for m in container()["volumeMounts"]:
        assert m["name"] in volumes() or m["name"] == "state", m
        if "subPath" in m:
            assert m["subPath"] in maps[volumes()[m["name"]]["configMap"]["name"]]["data"]
    for ref in container()["envFrom"]:
        assert ref["secretRef"]["name"] in secrets
    for name, secret in secrets.items():
        assert all("REPLACE" in v for v in secret["stringData"].values()), name


def test_http_token_comes_from_the_secret_mounted_where_the_daemon_reads_it() -> None:
    path = container_env()[TOKEN_VAR]
    assert path == image_env()[TOKEN_VAR], "the manifest and the image agree"
    folder, _, name = path.rpartition("/")
    mount = mounts()[folder]
    assert mount["readOnly"] is True
    source = volumes()[mount["name"]]["secret"]
    assert source["secretName"] == "exfil-monitor-http"
    assert {i["path"]: i["key"] for i in source["items"]} == {name: "auth-token"}
    assert "auth-token" in example_secrets()["exfil-monitor-http"]["stringData"]


def test_kubernetes_config_loads_with_the_statefulsets_environment(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(config_map("exfil-monitor-config")["data"]["monitor.yaml"], encoding="utf-8")
    env = image_env(**container_env(), **example_secrets()["exfil-monitor-kafka"]["stringData"])
    config = load_monitor_config(path, with_token_file(env, tmp_path))
    assert config.kafka.sasl is not None
    assert config.kafka.sasl.password.get_secret_value().startswith("REPLACE")
    assert config.http.host_port[1] == container()["ports"][0]["containerPort"]
    assert str(config.rules.path) in mounts()
    assert str(config.state.dir) == STATE_DIR


def test_kubernetes_pages_through_alertmanager_with_a_watchdog() -> None:
    (am,) = [o for o in monitor_yaml()["outputs"] if o["type"] == "alertmanager"]
    config = AlertmanagerConfig.model_validate(am)  # the output's own model, as it is today
    assert config.watchdog is True and len(config.urls) >= 2, "every instance of an HA pair"


# ---------------------------------------------------------------------------- rules


def test_kubernetes_rules_are_the_repositorys_rules() -> None:
    cm = config_map("exfil-monitor-rules")
    regenerate = (
        "regenerate it: kubectl create configmap exfil-monitor-rules "
        "$(ls rules/*.yaml | grep -v '\\.test\\.yaml$' | sed 's/^/--from-file=/') "
        "--dry-run=client -o yaml > deploy/kubernetes/configmap-rules.yaml"
    )
    assert cm["data"] == bundled_rule_files(), (
        f"deploy/kubernetes/configmap-rules.yaml is stale; {regenerate}"
    )


def test_rules_config_map_is_mounted_as_a_folder_and_loads_as_the_kubelet_lays_it_out(
    tmp_path: Path,
) -> None:
    """No subPath (it would never see an edit): the whole ConfigMap at rules.path. The
    kubelet writes the files into a hidden timestamped folder, points ``..data`` at it
    and links each name through ``..data``; the loader must read every rule once."""
    rules_path = monitor_yaml()["rules"]["path"]
    mount = mounts()[rules_path]
    assert "subPath" not in mount and mount["readOnly"] is True
    assert volumes()[mount["name"]]["configMap"]["name"] == "exfil-monitor-rules"
    assert [m for m in container()["volumeMounts"] if m["name"] == mount["name"]] == [mount]
    data = config_map("exfil-monitor-rules")["data"]
    folder = tmp_path / "rules"
    stamped = folder / "..2026_01_02_03_04_05.000000001"
    stamped.mkdir(parents=True)
    for name, text in data.items():
        (stamped / name).write_text(text, encoding="utf-8")
    (folder / "..data").symlink_to(stamped.name)
    for name in data:
        (folder / name).symlink_to(f"..data/{name}")
    loaded = load_rules(folder)
    flat = tmp_path / "flat"
    flat.mkdir()
    for name, text in data.items():
        (flat / name).write_text(text, encoding="utf-8")
    expected = load_rules(flat)
    assert loaded.enabled and [r.id for r in loaded.enabled] == [r.id for r in expected.enabled]


# ---------------------------------------------------------------------------- network


def namespace_of(host: str) -> str:
    """``name.namespace.svc[.cluster.local]`` -> namespace."""
    parts = host.split(".")
    assert "svc" in parts, f"{host}: expected a cluster service name"
    return parts[parts.index("svc") - 1]


def egress_allows(namespace: str, port: int) -> bool:
    (policy,) = k8s_objects("NetworkPolicy")
    for rule in policy["spec"]["egress"]:
        spaces = {p.get("namespaceSelector", {}).get("matchLabels", {}).get(
            "kubernetes.io/metadata.name") for p in rule["to"]}  # fmt: skip
        if namespace in spaces and port in {p["port"] for p in rule["ports"]}:
            return True
    return False


def test_network_policy_admits_only_prometheus_and_reaches_what_the_config_names() -> None:
    (policy,) = k8s_objects("NetworkPolicy")
    spec = policy["spec"]
    pod_labels = statefulset()["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = spec["ingress"]
    (peer,) = ingress["from"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert "namespaceSelector" in peer, "Prometheus' namespace, not any namespace's pods"
    (port,) = ingress["ports"]
    assert port["port"] in (container()["ports"][0]["name"], container()["ports"][0]["containerPort"])
    assert monitor_yaml()["http"]["open_metrics"] is True, "Prometheus scrapes without the token"
    # egress: DNS, every broker and every Alertmanager the config names
    assert egress_allows("kube-system", 53)
    dns = [r for r in spec["egress"] if 53 in {p["port"] for p in r["ports"]}]
    assert {p["protocol"] for r in dns for p in r["ports"]} == {"UDP", "TCP"}
    for server in monitor_yaml()["kafka"]["bootstrap_servers"]:
        host, _, broker_port = server.rpartition(":")
        assert egress_allows(namespace_of(host), int(broker_port)), server
    (am,) = [o for o in monitor_yaml()["outputs"] if o["type"] == "alertmanager"]
    for url in am["urls"]:
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        assert egress_allows(namespace_of(parts.hostname), parts.port), url


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
