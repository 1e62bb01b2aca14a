"""Alerts and telemetry for output tests, built fresh for each test."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.engine.alert import Alert
from monitor.outputs.base import Output
from monitor.outputs.delivery import Delivery
from monitor.retry import RetryPolicy
from monitor.telemetry import Metrics, Telemetry, configure_logging

MakeAlert = Callable[..., Alert]
MakeDelivery = Callable[..., Delivery]

FAST = RetryPolicy(initial=0.001, maximum=0.01, jitter=0.0)


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


def metric(t: Telemetry, name: str, **labels: str) -> float:
    return t.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def make_delivery(tmp_path: Path, telemetry: Telemetry) -> AsyncIterator[MakeDelivery]:
    """Deliveries over spools in ``tmp_path``, with fast retries; stopped at the end."""
    made: list[Delivery] = []

    def make(outputs: Sequence[Output], **kw: Any) -> Delivery:
        kw.setdefault("policy", FAST)
        d = Delivery(outputs, telemetry, tmp_path / "spool", **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        await d.stop(grace=0)


async def until(check: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not check():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"not within {seconds:g}s: {what}") from None


async def attempt(output: Output, records: Sequence[dict[str, Any]]) -> BaseException | None:
    """One send as the drain makes it (started, within its timeout): what it raised."""
    await output.start()
    try:
        async with asyncio.timeout(output.send_timeout):
            await output.send(records)
    except Exception as exc:
        return exc
    finally:
        await output.stop()
    return None
