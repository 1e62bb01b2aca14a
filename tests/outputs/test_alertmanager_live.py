"""The Alertmanager output, spooled and drained, against real Alertmanagers (Debian's, on loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.kafka_client import KafkaConfig
from monitor.outputs import Delivery, OutputContext, build_outputs
from monitor.outputs.alertmanager import AlertmanagerConfig, alert_labels
from monitor.retry import RetryPolicy
from monitor.telemetry import Telemetry
from monitor.timeparse import format_ts, parse_ts
from tests.outputs.conftest import alert
from tests.support.alertmanager import Alertmanager

FAST = RetryPolicy(initial=0.05, maximum=0.2)
KAFKA = KafkaConfig(bootstrap_servers=["127.0.0.1:9"], group_id="g", topics=["t"])


def now_ms() -> int:
    return int(time.time() * 1000)


def record(n: int) -> dict[str, Any]:
    r = alert(n).to_dict()
    r["fired_at"] = "2026-01-01T00:00:00.000Z"
    return r


async def held(am: Alertmanager, want: set[str], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Wait until ``am`` holds exactly the alerts whose actor_id label is in ``want``."""
    deadline = time.monotonic() + timeout
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        got = await asyncio.to_thread(am.alerts)
        if {a["labels"].get("actor_id") for a in got} == want:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"{am.url} holds {[a['labels'] for a in got]}, wanted actor_id in {want}")


@pytest.fixture
def deliver(tmp_path: Path, telemetry: Telemetry) -> Callable[..., Delivery]:
    def make(urls: list[str], open_now: list[dict[str, Any]] | None = None, **config: Any) -> Delivery:
        c = AlertmanagerConfig.model_validate({"type": "alertmanager", "urls": urls, **config})
        outputs = build_outputs([c], OutputContext(kafka=KAFKA))
        return Delivery(outputs, telemetry, tmp_path / "spool", policy=FAST,
                        open_records=(lambda: list(open_now or [])))  # fmt: skip

    return make


async def test_alerts_appear_with_their_labels_stay_active_across_resends_and_resolve(
    alertmanagers: Callable[[], Alertmanager], deliver: Callable[..., Delivery]
) -> None:
    am = alertmanagers()
    open_now = [record(1), record(2)]
    d = deliver([am.url], open_now, resend_interval="300ms")
    await d.start()
    try:
        d.submit(open_now)
        [a1, _] = sorted(
            await held(am, {"actor-1", "actor-2"}), key=lambda a: a["labels"]["actor_id"]
        )
        assert a1["labels"] == alert_labels(record(1))
        assert a1["status"]["state"] == "active"
        assert a1["annotations"]["alert_id"] == record(1)["id"]
        assert a1["startsAt"].startswith("2026-01-01T00:00:00")

        deadline = time.monotonic() + 10  # a re-send renews the lease of the same alert
        while True:
            got = await held(am, {"actor-1", "actor-2"})
            again = next(a for a in got if a["labels"]["actor_id"] == "actor-1")
            if parse_ts(again["endsAt"][:23] + "Z") > parse_ts(a1["endsAt"][:23] + "Z"):
                break
            assert time.monotonic() < deadline, "the lease was never renewed"
            await asyncio.sleep(0.1)
        assert again["fingerprint"] == a1["fingerprint"]
        assert again["status"]["state"] == "active"

        del open_now[0]  # the episode ended: the engine's resolution goes through the spool
        ended = format_ts(now_ms() - 1000)
        d.submit([{**record(1), "type": "resolved", "resolved_at": ended, "detected_at": ended}])
        await held(am, {"actor-2"})
    finally:
        await d.stop()


async def test_a_fresh_alertmanager_gets_every_open_alert_at_the_next_resend(
    alertmanagers: Callable[[], Alertmanager], deliver: Callable[..., Delivery]
) -> None:
    am = alertmanagers()
    open_now = [record(1), record(2), record(3)]
    d = deliver([am.url], open_now, resend_interval="500ms")
    await d.start()
    try:
        d.submit(open_now)
        await held(am, {"actor-1", "actor-2", "actor-3"})
        am.restart_fresh()
        assert await asyncio.to_thread(am.alerts) == []  # it lost everything
        await held(am, {"actor-1", "actor-2", "actor-3"})  # nothing new was fired: re-sends
    finally:
        await d.stop()


async def test_two_alertmanagers_each_get_every_alert_while_the_other_is_down(
    alertmanagers: Callable[[], Alertmanager], deliver: Callable[..., Delivery]
) -> None:
    a, b = alertmanagers(), alertmanagers()
    open_now: list[dict[str, Any]] = []
    d = deliver([a.url, b.url], open_now, resend_interval="500ms")
    await d.start()
    try:
        b.kill()
        open_now.append(record(1))
        d.submit([record(1)])
        await held(a, {"actor-1"})
        deadline = time.monotonic() + 10
        while "alertmanager-1" not in d.failing:
            assert time.monotonic() < deadline, "b's failure never showed"
            await asyncio.sleep(0.05)
        assert "alertmanager-0" not in d.failing

        b.start()  # back, empty: its spool still holds the alert, retried into it
        await held(b, {"actor-1"})
        a.kill()
        open_now.append(record(2))
        d.submit([record(2)])
        await held(b, {"actor-1", "actor-2"})

        a.start()  # back with nothing: actor-2 from its spool, actor-1 from the next re-send
        await held(a, {"actor-1", "actor-2"})
        await d.drained()
        assert d.failing == {}
    finally:
        await d.stop()


async def test_the_watchdog_stays_active(
    alertmanagers: Callable[[], Alertmanager], deliver: Callable[..., Delivery]
) -> None:
    am = alertmanagers()
    d = deliver([am.url], watchdog=True)
    await d.start()
    try:
        deadline = time.monotonic() + 10
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            got = await asyncio.to_thread(am.alerts)
            if got:
                break
            await asyncio.sleep(0.1)
        assert [x["labels"]["alertname"] for x in got] == ["ExfilMonitorWatchdog"]
        assert got[0]["status"]["state"] == "active"
    finally:
        await d.stop()
