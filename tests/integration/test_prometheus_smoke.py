"""The monitor monitored, live: a real Prometheus scrapes the real daemon reading a real
broker, and when the broker stops, the shipped "source down" rule
(ExfilMonitorKafkaDisconnected, with its ``for`` shortened in a test copy) fires into a
real Alertmanager, where ``GET /api/v2/alerts`` shows it. The daemon's own
``alertmanager`` output points at the same Alertmanager, as in deploy/: its watchdog is
there before and while the source is down (the daemon and its paging path are fine; the
source is not), and the shipped Alertmanager config routes each as the README says.

The broker is this test's own, never the session's shared one: stopping it must not
disturb other tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.outputs.alertmanager import WATCHDOG
from tests.deploy.helpers import ALERTMANAGER, required_tool, run
from tests.integration.daemon_process import DaemonProcess
from tests.support.alertmanager import AlertmanagerFactory
from tests.support.kafka import (
    Broker,
    KafkaUnavailable,
    create_topic,
    skip_or_fail,
    start_local_broker,
)
from tests.support.prometheus import short_for_rules, start_prometheus

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SOURCE_DOWN = "ExfilMonitorKafkaDisconnected"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    try:
        broker = start_local_broker(tmp_path / "kafka")
    except KafkaUnavailable as exc:
        skip_or_fail(f"cannot start a broker of this test's own: {exc}")
        raise  # unreachable: skip_or_fail raises
    try:
        yield broker
    finally:
        broker.stop()


async def wait_for(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(check)
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.5)


def named(alerts: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a["labels"]["alertname"] == name]


def receiver(labels: dict[str, str]) -> str:
    """The receiver the shipped Alertmanager config picks for ``labels`` (amtool)."""
    amtool = required_tool("amtool")
    result = run([amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}",
                  *(f"{k}={v}" for k, v in sorted(labels.items()))])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


async def test_prometheus_fires_source_down_into_alertmanager_when_the_broker_stops(
    own_broker: Broker, tmp_path: Path, alertmanagers: AlertmanagerFactory
) -> None:
    topic = "data-access-events"
    await asyncio.to_thread(create_topic, own_broker.bootstrap, topic, 1)
    am = alertmanagers()
    daemon = DaemonProcess(tmp_path / "daemon", bootstrap=own_broker.bootstrap, topic=topic, session_timeout="6s",
                           outputs=[{"type": "alertmanager", "urls": [am.url], "resend_interval": "1s",
                                     "watchdog": True}])  # fmt: skip
    daemon.start()
    prom = None
    try:
        await daemon.wait_ready()
        target = f"127.0.0.1:{daemon.port}"
        prom = start_prometheus(tmp_path / "prometheus", targets=[target], alertmanagers=[am.url],
                                rule_files=short_for_rules(tmp_path / "rules"))  # fmt: skip
        await wait_for(lambda: prom.query('exfil_monitor_source_connected{job="exfil-monitor"} == 1'),
                       "Prometheus scrapes the connected daemon")  # fmt: skip
        [watchdog] = await wait_for(lambda: named(am.alerts(), WATCHDOG), "the daemon's watchdog reaches Alertmanager")
        assert not named(await asyncio.to_thread(am.alerts), SOURCE_DOWN)

        await asyncio.to_thread(own_broker.stop)
        [down] = await wait_for(lambda: named(am.alerts(), SOURCE_DOWN),
                                f"{SOURCE_DOWN} reaches Alertmanager")  # fmt: skip
        assert down["labels"]["severity"] == "critical"
        assert down["labels"]["instance"] == target and down["labels"]["job"] == "exfil-monitor"
        assert down["status"]["state"] == "active"
        assert "not connected to Kafka" in down["annotations"]["summary"]
        # the daemon itself stayed up, scrapeable and paging: it is the source that is down
        assert daemon.alive()
        assert prom.query('up{job="exfil-monitor"} == 1')
        [still] = named(await asyncio.to_thread(am.alerts), WATCHDOG)
        assert still["fingerprint"] == watchdog["fingerprint"] and still["status"]["state"] == "active"
        # what the shipped config does with them: the source down pages, the watchdog
        # feeds the dead-man's switch
        assert await asyncio.to_thread(receiver, down["labels"]) == "pagerduty"
        assert await asyncio.to_thread(receiver, watchdog["labels"]) == "deadmans-switch"
    finally:
        if prom is not None:
            prom.stop()
        daemon.kill()
