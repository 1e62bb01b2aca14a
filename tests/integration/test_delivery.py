"""From the real broker to a real Alertmanager: fired, kept active, resolved; never lost.

The daemon runs as its own process (``python -m monitor run``) on the local Kafka broker,
with an ``alertmanager`` output pointed at Debian's Alertmanager on loopback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.timeparse import parse_ts
from tests.integration.daemon_process import DaemonProcess, produce
from tests.support.alertmanager import Alertmanager, free_port

TopicFactory = Callable[..., str]

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# One alert per actor's read; its episode resolves 3 s (event time) after the last one.
RULE = """\
rules:
  - id: customer-read
    description: Someone read customer rows.
    severity: high
    match: {action: {eq: select}}
    group_by: [actor.id]
    window: 1m
    threshold: {gte: 1}
    suppress: 2s
    resolve_after: 3s
    labels: {team: security}
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "customer-read.yaml").write_text(RULE)
    return d


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def make(name: str = "d", **kwargs: Any) -> DaemonProcess:
        d = DaemonProcess(tmp_path / name, **kwargs)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()


def reads(actors: list[str], ts_ms: int) -> list[tuple[bytes, bytes]]:
    return [(a.encode(), orjson.dumps({"id": f"e-{a}-{ts_ms}", "ts": ts_ms, "action": "select",
                                       "actor": {"id": a}, "resource": {"name": "customers"}}))
            for a in actors]


async def actors_held(am: Alertmanager, want: set[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        got = [a for a in await asyncio.to_thread(am.alerts) if a["labels"]["alertname"] == "customer-read"]
        if {a["labels"].get("actor_id") for a in got} == want:
            return got
        await asyncio.sleep(0.2)
    raise AssertionError(f"{am.url} holds {[a['labels'] for a in got]}, wanted actor_id in {want}")


def am_output(*urls: str, **kw: Any) -> dict[str, Any]:
    return {"type": "alertmanager", "urls": list(urls), "resend_interval": "1s", **kw}


FAST_IDLE = {"engine": {"idle_resolve_after": "1s"}}


async def test_an_alert_reaches_alertmanager_stays_active_across_resends_and_resolves(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess],
    alertmanagers: Callable[..., Alertmanager], rules: Path,
) -> None:  # fmt: skip
    am = alertmanagers()
    topic = kafka_topic_factory(partitions=2, prefix="events")
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, rules=rules, extra=FAST_IDLE,
                outputs=[am_output(am.url, watchdog=True)])  # fmt: skip
    d.start()
    await d.wait_ready()
    now = int(time.time() * 1000)
    await produce(kafka_bootstrap, topic, reads(["vendor-7"], now))
    [first] = await actors_held(am, {"vendor-7"})
    assert first["labels"] == {"alertname": "customer-read", "severity": "high", "team": "security",
                               "actor_id": "vendor-7"}  # fmt: skip
    assert first["status"]["state"] == "active"
    # More reads keep the episode open; the re-sends renew its lease: one alert, later end.
    for i in range(1, 4):
        await asyncio.sleep(1.0)
        await produce(kafka_bootstrap, topic, reads(["vendor-7"], now + i * 1000))
    [again] = await actors_held(am, {"vendor-7"})
    assert again["fingerprint"] == first["fingerprint"]
    assert parse_ts(again["endsAt"][:23] + "Z") > parse_ts(first["endsAt"][:23] + "Z")
    watchdogs = [a for a in await asyncio.to_thread(am.alerts) if a["labels"]["alertname"] == "ExfilMonitorWatchdog"]
    assert len(watchdogs) == 1 and watchdogs[0]["status"]["state"] == "active"
    # The source goes quiet: once the wall clock passes resolved_at, the resolution goes out.
    await actors_held(am, set())
    resolved = [r for r in d.stdout_records() if r["type"] == "resolved"]
    assert [r["group"] for r in resolved] == [{"actor.id": "vendor-7"}]
    assert resolved[0]["id"] == d.stdout_alerts()[0]["id"]
    assert d.stop() == 0


async def test_alerts_spooled_while_alertmanager_is_down_survive_sigkill_and_are_delivered(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess],
    alertmanagers: Callable[..., Alertmanager], rules: Path,
) -> None:  # fmt: skip
    port = free_port()  # nothing listens yet: every attempt fails
    topic = kafka_topic_factory(partitions=3, prefix="events")
    state = {"state": {"dir": str(rules.parent / "state")}}  # both runs share it, as a pod's volume

    def make(name: str) -> DaemonProcess:
        return daemons(name, bootstrap=kafka_bootstrap, topic=topic, rules=rules, group="spool-test", extra=state,
                       outputs=[am_output(f"http://127.0.0.1:{port}", resend_interval="1h")])

    d = make("first")
    d.start()
    await d.wait_ready()
    actors = [f"vendor-{n}" for n in range(12)]
    await produce(kafka_bootstrap, topic, reads(actors, int(time.time() * 1000)))
    m = await d.wait_metrics(lambda m: m.v("output_spool_depth", output="alertmanager") >= len(actors)
                             and m.v("commits_total", outcome="success") >= 1)  # fmt: skip
    assert m.v("output_sends_total", output="alertmanager", outcome="success") == 0
    assert m.v("output_failures_total", output="alertmanager", reason="network") >= 1
    _, ready = await d.get("/readyz", time.monotonic() + 10)
    assert "alertmanager" in str(ready)
    d.kill()  # SIGKILL: no stop, no drain; the spool on disk is all there is

    am = alertmanagers(port)  # the receiver comes back, empty
    again = make("second")  # same state.dir, same group: the committed events are not read again
    again.start()
    await again.wait_ready()
    await actors_held(am, set(actors))  # re-sends are an hour away: these came from the spool
    m = await again.wait_metrics(lambda m: m.v("output_spool_depth", output="alertmanager") == 0)
    assert m.v("events_received_total") == 0  # delivered from the spool, not by reading again
    assert again.stop() == 0


async def test_a_full_spool_pauses_consumption_until_it_drains(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess],
    alertmanagers: Callable[..., Alertmanager], rules: Path,
) -> None:  # fmt: skip
    port = free_port()
    topic = kafka_topic_factory(partitions=1, prefix="events")
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, rules=rules, max_batch=5,
                outputs=[am_output(f"http://127.0.0.1:{port}", resend_interval="1h")],
                extra={"spool": {"max_bytes": "4kB"}})  # fmt: skip
    d.start()
    await d.wait_ready()
    actors = [f"vendor-{n}" for n in range(40)]
    await produce(kafka_bootstrap, topic, reads(actors, int(time.time() * 1000)))
    m = await d.wait_metrics(lambda m: m.v("consumption_paused") == 1)
    await asyncio.sleep(1.0)  # paused: nothing more is read while the receiver is down
    m = await d.wait_metrics(lambda m: m.v("consumption_paused") == 1)
    held_back = m.v("events_received_total")
    assert held_back < len(actors)
    assert (await d.wait_metrics(lambda m: True)).v("events_received_total") == held_back
    status, ready = await d.get("/readyz", time.monotonic() + 10)
    assert status == 200 and "spool full" in str(ready)  # degraded, not down: it is working
    assert d.log_event("consumption_paused")["outputs"] == ["alertmanager"]

    am = alertmanagers(port)
    await actors_held(am, set(actors), timeout=60)  # it drained, resumed and read the rest
    m = await d.wait_metrics(lambda m: m.v("consumption_paused") == 0 and m.v("events_received_total") == len(actors))
    assert d.log_event("consumption_resumed")
    assert d.stop() == 0


async def test_open_episodes_survive_sigkill_and_their_resends_and_resolution_carry_on(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess],
    alertmanagers: Callable[..., Alertmanager], tmp_path: Path,
) -> None:  # fmt: skip
    """Re-sends and resolutions come from the table of open episodes, which is part of
    each partition's checkpoint: a daemon killed while an alert is open, restarted (its
    state from the checkpoint topic), re-sends it (here to a fresh Alertmanager that knew
    nothing of it) and resolves it, without reading an event again."""
    d_rules = tmp_path / "long-rules"
    d_rules.mkdir()
    (d_rules / "customer-read.yaml").write_text(RULE.replace("resolve_after: 3s", "resolve_after: 15s"))
    topic = kafka_topic_factory(partitions=2, prefix="events")
    state = tmp_path / "state"

    def make(name: str, url: str) -> DaemonProcess:
        return daemons(name, bootstrap=kafka_bootstrap, topic=topic, rules=d_rules, group="episodes-test",
                       extra={"state": {"dir": str(state)}, **FAST_IDLE}, outputs=[am_output(url)])

    first_am = alertmanagers()
    d = make("first", first_am.url)
    d.start()
    await d.wait_ready()
    await produce(kafka_bootstrap, topic, reads(["vendor-9"], int(time.time() * 1000)))
    [alert] = await actors_held(first_am, {"vendor-9"})
    # Delivered (the spool is empty, so the next run has nothing of it to send from
    # there), checkpointed with the episode open, and committed.
    await d.wait_metrics(lambda m: m.v("output_spool_depth", output="alertmanager") == 0
                         and m.v("checkpoints_total", outcome="saved") >= 1
                         and m.v("commits_total", outcome="success") >= 1 and m.v("episodes_open") == 1)  # fmt: skip
    d.kill()  # SIGKILL: no stop, nothing written at the end

    fresh = alertmanagers()  # a replaced Alertmanager: empty
    again = make("second", fresh.url)
    again.start()
    await again.wait_ready()
    assert "checkpoint_restored" in {e["event"] for e in again.log_events()}
    [resent] = await actors_held(fresh, {"vendor-9"})  # from the restored table's re-sends
    assert resent["labels"] == alert["labels"] and resent["fingerprint"] == alert["fingerprint"]
    m = await again.wait_metrics(lambda m: m.v("output_resends_total", output="alertmanager", outcome="success") >= 1)
    assert m.v("events_received_total") == 0  # nothing read again: the table alone carried it
    assert m.v("output_sends_total", output="alertmanager", outcome="success") == 0  # no spooled send either
    # The source stays quiet: 15 s after the read, the restarted daemon resolves the episode.
    await actors_held(fresh, set(), timeout=60)
    [resolution] = [r for r in again.stdout_records() if r["type"] == "resolved"]
    [fired] = d.stdout_alerts()
    assert resolution["id"] == fired["id"] and resolution["episode_start"] == fired["fired_at"]
    assert parse_ts(resolution["resolved_at"]) == parse_ts(fired["fired_at"]) + 15_000
    m = await again.wait_metrics(lambda m: m.v("episodes_open") == 0)
    assert again.stop() == 0
