"""The HTTP endpoints, served from a fresh registry and a fake status."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from monitor.health import DEGRADED, NOT_READY, READY, Report
from monitor.http import ALERTS_LIMIT_MAX, HttpServer
from monitor.rules.loader import load_rules
from monitor.telemetry import Metrics


@dataclass
class FakeStatus:
    is_ready: bool = False
    reason: str = "broker unreachable: connection refused"
    loaded: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def health(self) -> Report:
        if self.is_ready:
            return Report(READY) if not self.reason else Report(DEGRADED, [self.reason])
        return Report(NOT_READY, [self.reason])

    def rules(self) -> dict[str, Any] | None:
        return self.loaded

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        return list(reversed(self.alerts))[:limit]


@pytest.fixture
def status() -> FakeStatus:
    return FakeStatus()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
async def base(status: FakeStatus, metrics: Metrics) -> AsyncIterator[str]:
    server = HttpServer("127.0.0.1", 0, metrics.registry, status)
    port = await server.start()
    assert port > 0
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.stop()


async def get(url: str) -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        body = await resp.text()
        data = await resp.json(content_type=None) if resp.content_type == "application/json" else None
        return resp.status, resp.headers["Content-Type"], data if data is not None else body


async def test_metrics_are_prometheus_text_from_the_given_registry(base: str, metrics: Metrics) -> None:
    metrics.events_received.inc(42)
    metrics.alerts.labels(rule="bulk-customer-read", severity="high").inc()
    code, ctype, body = await get(f"{base}/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    assert "exfil_monitor_events_received_total 42.0" in body
    assert 'exfil_monitor_alerts_total{rule="bulk-customer-read",severity="high"} 1.0' in body
    assert "exfil_monitor_build_info{" in body
    # A fresh registry: nothing from other tests or the process default registry.
    assert "python_gc_objects_collected_total" not in body


async def test_healthz_answers_whatever_the_readiness(base: str) -> None:
    assert (await get(f"{base}/healthz"))[::2] == (200, {"status": "ok"})


async def test_readyz_is_503_when_it_cannot_detect_200_degraded_with_a_fault_else_ready(
    base: str, status: FakeStatus
) -> None:
    reason = "broker unreachable: connection refused"
    code, _, body = await get(f"{base}/readyz")
    assert (code, body) == (503, {"status": "not ready", "reasons": [reason], "reason": reason})
    status.is_ready, status.reason = True, "output kafka parked 1 alert(s)"
    code, _, body = await get(f"{base}/readyz")
    assert (code, body) == (200, {"status": "degraded", "reasons": [status.reason], "reason": status.reason})
    status.reason = ""
    code, _, body = await get(f"{base}/readyz")
    assert (code, body) == (200, {"status": "ready", "reasons": [], "reason": "ready"})


async def test_rules_show_the_loaded_set(base: str, status: FakeStatus) -> None:
    assert (await get(f"{base}/rules"))[0] == 503
    rs = load_rules(Path(__file__).resolve().parents[1] / "rules")
    status.loaded = {"digest": rs.digest, "files": list(rs.files), "rules": rs.describe()}
    code, _, body = await get(f"{base}/rules")
    assert code == 200
    assert body["digest"] == rs.digest
    assert {r["id"] for r in body["rules"]} >= {"bulk-customer-read", "vendor-touches-customer-data"}


async def test_alerts_are_the_most_recent_and_bounded(base: str, status: FakeStatus) -> None:
    status.alerts = [{"id": f"{n:016x}", "rule": "r"} for n in range(1500)]
    code, _, body = await get(f"{base}/alerts")
    assert code == 200 and body["count"] == 100
    assert body["alerts"][0]["id"] == f"{1499:016x}"  # newest first
    _, _, body = await get(f"{base}/alerts?limit=5000")
    assert body["count"] == ALERTS_LIMIT_MAX
    _, _, body = await get(f"{base}/alerts?limit=2")
    assert [a["id"] for a in body["alerts"]] == [f"{1499:016x}", f"{1498:016x}"]
    for bad in ("0", "-1", "x"):
        assert (await get(f"{base}/alerts?limit={bad}"))[0] == 400


async def test_a_taken_port_fails_to_start(status: FakeStatus, metrics: Metrics) -> None:
    first = HttpServer("127.0.0.1", 0, metrics.registry, status)
    port = await first.start()
    try:
        with pytest.raises(OSError):
            await HttpServer("127.0.0.1", port, metrics.registry, status).start()
    finally:
        await first.stop()
        await first.stop()


async def test_the_daemon_is_not_ready_before_rules_and_while_stopping(tmp_path: Path) -> None:
    """The real daemon as the status: not ready until it ran; a second stop exits at once."""
    from monitor.app import EXIT_INTERRUPTED, Daemon
    from monitor.config import load_config

    config = tmp_path / "monitor.yaml"
    config.write_text("kafka: {bootstrap_servers: 127.0.0.1:1, topics: [t]}\nrules: {path: rules}\n")
    exits: list[int] = []
    daemon = Daemon(load_config(config, {}), registry=CollectorRegistry(), stderr=io.StringIO(), exit_now=exits.append)
    server = HttpServer("127.0.0.1", 0, daemon.metrics.registry, daemon)
    base = f"http://127.0.0.1:{await server.start()}"
    try:
        code, _, body = await get(f"{base}/readyz")
        assert (code, body["status"], body["reasons"][0]) == (503, "not ready", "rules not loaded")
        assert (await get(f"{base}/rules"))[0] == 503
        assert (await get(f"{base}/alerts"))[2] == {"alerts": [], "count": 0}
        daemon.request_stop("SIGTERM")
        assert daemon.stopping.is_set() and exits == []
        assert (await get(f"{base}/readyz"))[2]["reasons"][0] == "stopping"
        daemon.request_stop("SIGTERM")
        assert exits == [EXIT_INTERRUPTED]
    finally:
        await server.stop()
