"""A real Prometheus (Debian's ``prometheus``) on loopback, in a temp dir.

It scrapes the given targets as job ``exfil-monitor`` (the job name the shipped rules
assume) every second, evaluates rules every second, and sends alerts to the given
Alertmanagers. :func:`short_for_rules` rewrites the shipped rules with a short ``for:``
so that a live test sees a rule fire in seconds rather than minutes.

When the binary is missing or will not start, tests skip with the reason, except under
``CI=true``, where that fails the run.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from tests.support.alertmanager import free_port, skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_RULES = ROOT / "deploy" / "prometheus" / "rules"


def short_for_rules(dest: Path, for_: str = "2s", source: Path = SHIPPED_RULES) -> list[Path]:
    """Copies of the shipped rule files in ``dest`` with every ``for:`` set to ``for_``."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in sorted(source.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and "for" in rule:
                    rule["for"] = for_
        target = dest / path.name
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(target)
    return out


class Prometheus:
    def __init__(self, workdir: Path, *, targets: Sequence[str], rule_files: Sequence[Path] = (),
                 alertmanagers: Sequence[str] = (), interval: str = "1s",
                 job: str = "exfil-monitor") -> None:  # fmt: skip
        exe = shutil.which("prometheus")
        if exe is None:
            raise RuntimeError("no prometheus binary on PATH (apt-get install prometheus)")
        self.exe = exe
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
        }  # fmt: skip
        if alertmanagers:
            hosts = [urllib.parse.urlsplit(u).netloc for u in alertmanagers]
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": hosts}]}]}
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        if self.proc is not None:
            raise RuntimeError("Prometheus is already running")
        self.log_path = self.workdir / "prometheus.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [self.exe, f"--config.file={self.config_path}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"Prometheus did not become ready on {self.url}:\n{tail}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as r:
            body = orjson.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body}")
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts of the rules, pending and firing (``GET /api/v1/alerts``)."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return alerts

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._get("/api/v1/targets")["activeTargets"]
        return active

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get(
            "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )["result"]
        return result


def start_prometheus(workdir: Path, **kw: Any) -> Prometheus:
    """A started Prometheus, or a skip (a failure under CI=true) saying why not."""
    try:
        p = Prometheus(workdir, **kw)
        p.start()
    except (RuntimeError, OSError) as exc:
        skip_or_fail(f"cannot start Prometheus: {exc}")
        raise  # unreachable: skip_or_fail raises
    return p
