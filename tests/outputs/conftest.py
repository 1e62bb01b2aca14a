"""Alerts and telemetry for output tests, built fresh for each test."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from monitor.engine.alert import Alert
from monitor.telemetry import Metrics, Telemetry, configure_logging

MakeAlert = Callable[..., Alert]


def alert(n: int = 0, rule: str = "bulk-customer-read", severity: str = "high") -> Alert:
    return Alert(
        id=f"{n:016x}", rule=rule, severity=severity, description="d",
        group={"actor.id": f"actor-{n}"}, value=50_001 + n, threshold={"gt": 50_000},
        window="10m", window_start_ms=1_795_000_000_000, window_end_ms=1_795_000_600_000,
        fired_at_ms=1_795_000_500_000 + n, event_count=3, summary=f"actor-{n} read rows",
        labels={"team": "security"}, annotations={"summary": f"actor-{n} read rows"},
        sample_event_ids=[f"evt-{n}"],
    )  # fmt: skip


@pytest.fixture
def make_alert() -> MakeAlert:
    return alert


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def telemetry(log_stream: io.StringIO) -> Telemetry:
    return Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "info", log_stream))


def sends(t: Telemetry, output: str, outcome: str) -> float:
    value = t.metrics.registry.get_sample_value(
        "exfil_monitor_output_sends_total", {"output": output, "outcome": outcome}
    )
    return value or 0.0
