"""State per partition, checkpointed with offsets, against the real broker: what a crash,
a deploy or a rebalance must not change is the set of alerts on-call gets.

Each test compares alert ids (rule, group and fired_at make an id), so "the same alerts"
is exact: none missing, none new. Re-deliveries of ids already sent are allowed
(at-least-once), and are why sets are compared.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.rules.loader import load_rules
from monitor.timeparse import parse_ts
from tests.integration.daemon_process import REPO, DaemonProcess, committed_offsets, produce
from tests.integration.test_daemon import by_actor, daemons, key, replay, shop_events, trickle

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
__all__ = ["daemons"]  # the fixture, shared with test_daemon

TopicFactory = Callable[..., str]
PARTITIONS = 6
RULES = REPO / "rules"


def ids(*runs: DaemonProcess) -> set[str]:
    return {a["id"] for d in runs for a in d.stdout_alerts()}


async def caught_up(bootstrap: str, topic: str, group: str, produced: int, d: DaemonProcess,
                    timeout: float = 90.0) -> None:  # fmt: skip
    """Until the group's committed offsets cover everything produced: processed, its state
    checkpointed, then committed (a commit comes only after its checkpoint)."""
    deadline = time.monotonic() + timeout
    while sum((await committed_offsets(bootstrap, topic, group, PARTITIONS)).values()) < produced:
        assert d.alive(), d.stderr_tail()
        assert time.monotonic() < deadline, f"not committed up to {produced}:\n{d.stderr_tail()}"
        await asyncio.sleep(0.25)


async def single_instance(bootstrap: str, topic: str, total: int, make: Callable[..., DaemonProcess]) -> set[str]:
    """An uninterrupted run over the whole topic: the alerts to compare with."""
    group = f"single-{uuid.uuid4().hex[:8]}"
    d = make(bootstrap=bootstrap, topic=topic, group=group, extra={"checkpoint": {"interval": "1s"}})
    d.start()
    await caught_up(bootstrap, topic, group, total, d)
    assert d.stop() == 0
    return ids(d)


def cuts_inside_windows(events: list[dict[str, Any]], alerts: list[dict[str, Any]], n: int) -> list[int]:
    """``n`` positions in the stream, each just before the event that fires an alert of a
    windowed rule grouped by actor.id: a kill there splits that alert's window in two."""
    windowed = {r.id for r in load_rules(RULES).rules
                if r.spec.window_ms is not None and r.spec.group_by[:1] == ("actor.id",)}  # fmt: skip
    fired = sorted(parse_ts(a["fired_at"]) for a in alerts if a["rule"] in windowed)
    assert len(fired) >= n, "the simulated incidents should fire windowed rules"
    times = [e["ts"] if isinstance(e["ts"], int) else parse_ts(e["ts"]) for e in events]
    picks = [fired[(i + 1) * len(fired) // (n + 1)] for i in range(n)]
    return sorted({next(i for i, t in enumerate(times) if t >= at) for at in picks})


async def test_sigkill_mid_window_loses_no_alert_and_raises_none_new(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """Simulated shop traffic into six partitions in segments; after each segment the
    daemon catches up, checkpoints and commits, and is SIGKILLed in the middle of an
    alert's window, then restarted for the next segment with the default checkpoint
    settings. Once, it is killed before it could checkpoint what it read, so that part
    is read and evaluated again."""
    events = shop_events(seed=23, events=12_000)
    expected = replay(RULES, events, tmp_path)
    cuts = cuts_inside_windows(events, expected, 3)
    topic = kafka_topic_factory(partitions=PARTITIONS, prefix="events")
    group = f"crash-{uuid.uuid4().hex[:8]}"
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, group=group, extra={"checkpoint": {}})  # defaults
    bounds = [0, *cuts, len(events)]
    for n, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        await produce(kafka_bootstrap, topic, [(key(e), orjson.dumps(e)) for e in events[lo:hi]])
        d.start()
        if n == 1:  # read, not yet checkpointed (the interval is 10 s): read again after the kill
            await d.wait_metrics(lambda m, hi=hi, lo=lo: m.v("events_received_total") >= hi - lo)
            d.kill()
            d.start()
        await caught_up(kafka_bootstrap, topic, group, hi, d)
        if hi < len(events):
            d.kill()
    assert d.stop() == 0

    restored = [e for e in d.log_events() if e.get("event") == "checkpoint_restored"]
    assert len(restored) >= PARTITIONS * 3, "every restart restored the partitions' state"
    crashed = ids(d)
    assert crashed == await single_instance(kafka_bootstrap, topic, len(events), daemons)
    assert by_actor(d.stdout_alerts(), RULES) == by_actor(expected, RULES)


async def test_two_instances_one_stopped_and_started_give_a_single_instances_alerts(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess]
) -> None:
    """Its partitions move to the other instance with their state, then come back."""
    events = shop_events(seed=29, events=10_000)
    topic = kafka_topic_factory(partitions=PARTITIONS, prefix="events")
    group = f"pair-{uuid.uuid4().hex[:8]}"
    fast = {"checkpoint": {"interval": "500ms"}}
    a = daemons(bootstrap=kafka_bootstrap, topic=topic, group=group, max_batch=300, extra=fast)
    b = daemons(bootstrap=kafka_bootstrap, topic=topic, group=group, max_batch=300, extra=fast)
    a.start()
    b.start()
    await a.wait_ready()
    await b.wait_ready()
    gate = asyncio.Event()
    producing = asyncio.create_task(trickle(kafka_bootstrap, topic, events, gate=gate))
    await b.wait_metrics(lambda m: m.v("events_received_total") >= 500)
    assert b.stop() == 0  # a deploy: its partitions go to a, with their checkpoints
    await a.wait_metrics(lambda m: m.v("partitions_assigned") == 2 * PARTITIONS)  # and the internal topic's
    gate.set()
    b.start()  # back: the group rebalances again and b restores what a checkpointed
    await asyncio.wait_for(producing, 180)
    await caught_up(kafka_bootstrap, topic, group, len(events), a)
    assert a.stop() == 0 and b.stop() == 0

    moved = [e for e in b.log_events() if e.get("event") == "checkpoint_restored"]
    assert moved, "b's partitions came back with state a checkpointed"
    assert ids(a, b) == await single_instance(kafka_bootstrap, topic, len(events), daemons)


async def test_a_corrupt_checkpoint_stops_the_daemon_unless_told_to_start_empty(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, tmp_path: Path
) -> None:
    topic = kafka_topic_factory(partitions=1, prefix="events")
    group = f"corrupt-{uuid.uuid4().hex[:8]}"
    events = shop_events(seed=31, events=500)
    await produce(kafka_bootstrap, topic, [(key(e), orjson.dumps(e)) for e in events])

    def make(on_corrupt: str) -> DaemonProcess:
        checkpoint = {"store": "directory", "interval": "200ms", "on_corrupt": on_corrupt}
        return DaemonProcess(tmp_path / "d", bootstrap=kafka_bootstrap, topic=topic, group=group,
                             extra={"checkpoint": checkpoint})  # fmt: skip

    d = make("stop")
    d.start()
    try:
        await caught_up(kafka_bootstrap, topic, group, len(events), d)
        assert d.stop() == 0
        files = sorted((tmp_path / "d" / "state" / "checkpoints").glob("*.ckpt"))
        assert files, "the directory store writes under state.dir/checkpoints"
        for f in files:
            f.write_bytes(f.read_bytes()[:-7] + b"garbage")

        d.start()
        assert d.proc is not None and d.proc.wait(60) == 1, "no readable checkpoint: it stops"
        corrupt = d.log_event("checkpoint_corrupt")
        assert "checksum" in corrupt["error"] or "torn" in corrupt["error"], corrupt

        d = make("start_empty")
        d.start()
        status, body = 0, {}
        deadline = time.monotonic() + 60
        while "started empty" not in str(body):
            status, body = await d.get("/readyz", deadline)
            assert time.monotonic() < deadline, f"/readyz: {status} {body}\n{d.stderr_tail()}"
            await asyncio.sleep(0.2)
        assert status == 200 and body["status"] == "degraded"
        assert d.stop() == 0
    finally:
        d.kill()
