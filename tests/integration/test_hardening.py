"""Issue 6 against a real daemon process and broker: the probe, the signals and the HTTP
server as an attacker or a failing broker meets them."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.daemon_process import DaemonProcess, produce
from tests.support.kafka import Broker

pytestmark = pytest.mark.kafka

TopicFactory = Callable[..., str]
PROBE_RULE = """\
rules:
  - id: every-event
    description: Test probe, one alert per event.
    severity: info
    match: {id: {exists: true}}
    group_by: [id]
"""


@pytest.fixture
def probe_rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "probe.yaml").write_text(PROBE_RULE)
    return folder


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def make(**kwargs: Any) -> DaemonProcess:
        d = DaemonProcess(tmp_path / f"daemon-{len(started)}", **kwargs)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()


def event(i: int) -> bytes:
    return orjson.dumps({"id": f"e{i}", "ts": int(time.time() * 1000), "action": "select"})


async def test_sighup_reloads_and_the_daemon_goes_on(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess],
    probe_rules: Path,
) -> None:  # fmt: skip
    """Before: SIGHUP's default action killed the daemon, with no stop and no commit. Now it
    reloads the rules (tests/integration/test_reload.py) and consumption goes on."""
    topic = kafka_topic_factory(1)
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, rules=probe_rules)
    d.start()
    await d.wait_ready()
    d.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not [e for e in d.log_events() if e.get("event") == "rules_reloaded"]:
        assert d.alive(), f"SIGHUP killed the daemon:\n{d.stderr_tail()}"
        assert time.monotonic() < deadline, d.stderr_tail()
        await asyncio.sleep(0.1)
    assert d.log_event("rules_reloaded")["trigger"] == "sighup"
    await produce(kafka_bootstrap, topic, [(b"k", event(1))])
    await d.wait_metrics(lambda m: m.v("alerts_total", rule="every-event", severity="info") >= 1)
    assert d.stop() == 0
    assert d.log_event("stopped")["events"] == 1


async def test_readiness_turns_unready_within_the_session_timeout_and_says_the_current_age(
    restartable_kafka_broker: Broker, kafka_topic_factory: TopicFactory,
    daemons: Callable[..., DaemonProcess], probe_rules: Path,
) -> None:  # fmt: skip
    """Before: /readyz said ready until a fetch came back empty after ``session_timeout``
    (longer while a commit waited ``request_timeout``), then showed a frozen age."""
    broker = restartable_kafka_broker
    topic = kafka_topic_factory(1)
    d = daemons(bootstrap=broker.bootstrap, topic=topic, rules=probe_rules, session_timeout="6s")
    d.start()
    await d.wait_ready()
    await produce(broker.bootstrap, topic, [(b"k", event(i)) for i in range(10)])
    await d.wait_metrics(lambda m: m.v("events_received_total") >= 10)
    await asyncio.to_thread(broker.stop)
    try:
        gone = time.monotonic()
        reason = await d.wait_not_ready(timeout=30)
        took = time.monotonic() - gone
        assert took < 6, f"unready {took:.1f}s after the broker stopped; session_timeout is 6s"
        ages = [int(m.group(1)) for m in [re.search(r"no fetch response for (\d+)s", reason)] if m]
        assert ages, reason
        await asyncio.sleep(2.5)
        later = await d.wait_not_ready(timeout=5)
        age = re.search(r"no fetch response for (\d+)s", later)
        assert age and int(age.group(1)) >= ages[0] + 2, (reason, later)
        status, body = await d.get("/readyz", time.monotonic() + 5)
        assert status == 503 and body["status"] == "not ready" and body["reasons"]
    finally:
        await asyncio.to_thread(broker.start)
    await d.wait_ready(timeout=90)
    assert d.stop() == 0


def _half_sent(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    return s


def _idle(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # then keep-alive, silent
    return s


async def test_half_sent_and_idle_connections_cannot_exhaust_descriptors(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess],
    probe_rules: Path,
) -> None:  # fmt: skip
    """Before: under ``ulimit -n 1024``, 1,000 half-sent and 200 idle connections stayed
    open, ``accept`` failed for want of descriptors, /healthz did not answer, and nothing
    was logged. Now the cap (1024 less the 256 reserved) closes the oldest connections not
    in a request, headers must come within 2s, and each closing is counted."""
    topic = kafka_topic_factory(1)
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, rules=probe_rules, rlimit_nofile=1024,
                http={"max_connections": 5000, "header_timeout": "2s"})  # fmt: skip
    d.start()
    await d.wait_ready()
    assert d.log_event("http_listening")["max_connections"] == 1024 - 256
    port = d.port
    assert port is not None
    held: list[socket.socket] = []
    try:
        held += await asyncio.to_thread(lambda: [_half_sent(port) for _ in range(1000)])
        held += await asyncio.to_thread(lambda: [_idle(port) for _ in range(200)])
        status, body = await d.get("/healthz", time.monotonic() + 10)
        assert (status, body) == (200, {"status": "ok"})
        # Connections still in the listen backlog are accepted (and closed) a little later.
        def closed(m: Any) -> float:
            return float(m.v("http_refused_total", reason="max_connections")
                         + m.v("http_refused_total", reason="header_timeout"))  # fmt: skip

        m = await d.wait_metrics(lambda m: m.v("http_refused_total", reason="header_timeout") >= 1
                                 and closed(m) >= 1200 - (1024 - 256), timeout=20)  # fmt: skip
        assert m.v("http_refused_total", reason="descriptors") == 0
        assert d.log_event("http_refused")["reason"] in ("max_connections", "header_timeout")
        await produce(kafka_bootstrap, topic, [(b"k", event(1))])  # the consumer still has descriptors
        await d.wait_metrics(lambda m: m.v("alerts_total", rule="every-event", severity="info") >= 1)
        assert (await d.get("/readyz", time.monotonic() + 10))[0] == 200
    finally:
        for s in held:
            s.close()
    assert d.stop() == 0


async def test_descriptor_exhaustion_is_counted_and_logged(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess],
    probe_rules: Path,
) -> None:  # fmt: skip
    """With the reserve configured away, ``accept`` fails for want of descriptors: before,
    asyncio only printed it; now it is counted and logged, and the daemon carries on."""
    topic = kafka_topic_factory(1)
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, rules=probe_rules, rlimit_nofile=256,
                http={"max_connections": 5000, "reserved_descriptors": 1, "header_timeout": "3s"})  # fmt: skip
    d.start()
    await d.wait_ready()
    port = d.port
    assert port is not None
    held: list[socket.socket] = []
    try:
        held += await asyncio.to_thread(lambda: [_half_sent(port) for _ in range(300)])
        m = await d.wait_metrics(lambda m: m.v("http_refused_total", reason="descriptors") >= 1, timeout=30)
        assert m.v("http_refused_total", reason="descriptors") >= 1
        assert d.log_event("http_refused")["reason"] in ("descriptors", "header_timeout")
    finally:
        for s in held:
            s.close()
    status, _ = await d.get("/healthz", time.monotonic() + 15)
    assert status == 200
    assert d.stop() == 0
