"""Scale-out against the real broker: instances of one group share six partitions, and
rules whose groups span partitions are counted after repartitioning (the internal topic).

The claim compared is the README's for repartitioned rules: the same (rule, group) alerts
as one engine over every event (``replay``), ``fired_at`` within the lateness; rules
grouped by the producers' key keep exact ids. "Nothing counted twice" is checked with
canaries: rules without ``group_by`` whose threshold is exactly the count (and the sum of
``rows``) of their matching events fire, and the same rules one higher never do.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.engine.repartition import ROUTE_FIELD
from monitor.event import PROVENANCE
from monitor.simulate.generator import generate
from monitor.sources.repartition import chunks
from monitor.timeparse import parse_ts
from tests.integration.daemon_process import REPO, DaemonProcess, produce, settled
from tests.integration.test_daemon import by_actor, daemons, trickle
from tests.support.kafka import acreate_topic
from tests.support.rules import pack_with

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
__all__ = ["daemons"]

TopicFactory = Callable[..., str]
PARTITIONS = 6
LATENESS = "12h"  # covers an instance's stall (a kill, then the session timeout) at the test's pace
LATENESS_MS = 12 * 3600 * 1000
EXTRA = {"engine": {"allowed_lateness": LATENESS}, "checkpoint": {"interval": "500ms"}}

SCALE_RULES = """\
rules:
  - id: customer-read-by-many
    description: Several accounts read one customer's data within the hour
    severity: high
    match: {{resource.name: {{in: [customers, customer_addresses, payment_cards]}}, action: select, customer_id: {{exists: true}}}}
    group_by: [customer_id]
    window: 1h
    aggregate: {{distinct: actor.id}}
    threshold: {{gte: 2}}
  - id: card-reads-shop-wide
    description: Card-table reads in the whole shop within ten minutes
    severity: high
    match: {{resource.name: payment_cards, action: select}}
    window: 10m
    threshold: {{gte: 30}}
  - {{id: every-select-counted, severity: low, match: {{action: select}}, window: 24h, threshold: {{gte: {n}}}}}
  - {{id: none-counted-twice, severity: low, match: {{action: select}}, window: 24h, threshold: {{gte: {more}}}}}
  - id: every-row-summed
    severity: low
    match: {{action: select}}
    window: 24h
    aggregate: {{sum: rows}}
    threshold: {{gte: {rows}}}
  - id: no-row-summed-twice
    severity: low
    match: {{action: select}}
    window: 24h
    aggregate: {{sum: rows}}
    threshold: {{gte: {more_rows}}}
"""
SHOP_WIDE_VENDOR = """\
rules:
  - {id: vendor-reads-shop-wide, severity: high, match: {actor.type: vendor}, window: 1h, threshold: {gte: 1}}
"""
REPARTITIONED = {"customer-read-by-many", "card-reads-shop-wide", "every-select-counted", "none-counted-twice",
                 "every-row-summed", "no-row-summed-twice"}  # fmt: skip


def scale_events() -> list[dict[str, Any]]:
    return list(generate(seed=31, start="2026-11-27T00:00:00Z", hours=6, events=12_000))


def scale_rules(folder: Path, events: list[dict[str, Any]]) -> Path:
    selects = [e for e in events if e["action"] == "select"]
    rows = sum(e.get("rows", 0) for e in selects)
    text = SCALE_RULES.format(n=len(selects), more=len(selects) + 1, rows=rows, more_rows=rows + 1)
    return pack_with(folder, **{"zz-scale.yaml": text})


def replay(rules: Path, events: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    out = subprocess.run([sys.executable, "-m", "monitor", "replay", "--rules", str(rules), "--allowed-lateness",
                          LATENESS, str(path)], capture_output=True, check=True, timeout=180, cwd=REPO)  # fmt: skip
    return [orjson.loads(line) for line in out.stdout.splitlines()]


def fired(alerts: list[dict[str, Any]]) -> dict[tuple[str, bytes], list[int]]:
    """(rule, group) -> its distinct fired_at times, of the repartitioned rules."""
    out: dict[tuple[str, bytes], set[int]] = defaultdict(set)
    for a in alerts:
        if a["rule"] in REPARTITIONED:
            out[(a["rule"], orjson.dumps(a["group"], option=orjson.OPT_SORT_KEYS))].add(parse_ts(a["fired_at"]) or 0)
    return {k: sorted(v) for k, v in out.items()}


def assert_as_replay(alerts: list[dict[str, Any]], expected: list[dict[str, Any]], rules: Path) -> None:
    got, want = fired(alerts), fired(expected)
    assert set(got) == set(want), "the same (rule, group) alerts as one engine over every event"
    for k, times in want.items():  # episodes may split differently in another arrival order: the first is compared
        assert abs(got[k][0] - times[0]) <= LATENESS_MS, k
    assert ("every-select-counted", b"{}") in got, "every select counted"
    assert not any(rule == "none-counted-twice" for rule, _ in got), "none counted twice"
    assert ("every-row-summed", b"{}") in got, "the repartitioned sum is replay's: every row summed..."
    assert not any(rule == "no-row-summed-twice" for rule, _ in got), "...and none twice"
    assert sum(1 for rule, _ in got if rule == "customer-read-by-many") >= 5, "groups spanning partitions fire"


async def test_three_instances_started_stopped_and_killed_alert_as_one_engine(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """A deploy stops one instance and starts it again, a crash kills another mid-run (it
    had forwarded events it had not checkpointed: they are forwarded again, and dropped)."""
    events = scale_events()
    rules = scale_rules(tmp_path / "rules", events)
    expected = replay(rules, events, tmp_path)
    topic = kafka_topic_factory(partitions=PARTITIONS, prefix="events")
    group = f"scale-{uuid.uuid4().hex[:8]}"
    a, b, c = (daemons(bootstrap=kafka_bootstrap, topic=topic, group=group, rules=rules, max_batch=300, extra=EXTRA)
               for _ in range(3))  # fmt: skip
    for d in (a, b, c):
        d.start()
    for d in (a, b, c):
        await d.wait_ready()
    gate = asyncio.Event()
    producing = asyncio.create_task(trickle(kafka_bootstrap, topic, events, gate=gate))
    await b.wait_metrics(lambda m: m.v("repartition_forwarded_total") >= 300)
    assert c.stop() == 0  # a deploy
    b.kill()  # a crash, between checkpoints
    gate.set()
    b.start()
    c.start()
    await asyncio.wait_for(producing, 240)
    await settled(kafka_bootstrap, topic, group, len(events), a, b, c, partitions=PARTITIONS)
    assert a.stop() == 0 and b.stop() == 0 and c.stop() == 0

    alerts = [x for d in (a, b, c) for x in d.stdout_alerts()]
    assert_as_replay(alerts, expected, rules)
    assert by_actor(alerts, rules) == by_actor(expected, rules), "rules keyed as the producers key: exact ids"
    internal = [e for d in (a, b, c) for e in d.log_events() if e.get("event") == "checkpoint_restored"
                and str(e["partition"]).startswith(f"{group}.repartition.") and e.get("offset") is not None]  # fmt: skip
    assert internal, "internal partitions moved with their checkpoints (state and marks)"


async def test_an_unkeyed_producer_with_keyed_false_alerts_as_one_engine(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """Records keyed by nothing in particular (round robin over partitions): every rule
    that remembers a group is repartitioned, and the alerts are one engine's."""
    events = scale_events()
    rules = scale_rules(tmp_path / "rules", events)
    expected = replay(rules, events, tmp_path)
    topic = kafka_topic_factory(partitions=PARTITIONS, prefix="events")
    await produce(kafka_bootstrap, topic, [(str(i % 97).encode(), orjson.dumps(e)) for i, e in enumerate(events)])
    group = f"unkeyed-{uuid.uuid4().hex[:8]}"
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, group=group, rules=rules, extra=EXTRA)
    config = orjson.loads(d.config.read_bytes())
    config["kafka"]["keyed"] = False
    d.config.write_bytes(orjson.dumps(config))
    d.start()
    await d.wait_ready()  # the internal topic is made before the group is joined
    await settled(kafka_bootstrap, topic, group, len(events), d, partitions=PARTITIONS)
    assert d.stop() == 0

    alerts = d.stdout_alerts()
    assert_as_replay(alerts, expected, rules)
    keyed_by_actor = {(a["rule"], orjson.dumps(a["group"], option=orjson.OPT_SORT_KEYS)) for a in alerts
                      if a["rule"] not in REPARTITIONED}  # fmt: skip
    assert keyed_by_actor == {(a["rule"], orjson.dumps(a["group"], option=orjson.OPT_SORT_KEYS)) for a in expected
                              if a["rule"] not in REPARTITIONED}, "actor rules whole although keys are not actors"  # fmt: skip


async def test_an_internal_partition_the_group_never_read_is_read_from_its_start(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """With ``auto_offset_reset: latest`` for the events, what was forwarded before an
    internal partition was first assigned (to a member since gone) is still counted."""
    topic = kafka_topic_factory(partitions=1, prefix="events")
    group = f"latest-{uuid.uuid4().hex[:8]}"
    internal = f"{group}.repartition"
    await acreate_topic(kafka_bootstrap, internal, 1)
    vendor = {"id": "fwd-1", PROVENANCE: f"{topic}/0@0", "actor": {"id": "hvac", "type": "vendor"}, ROUTE_FIELD: "[]"}
    [(_, record, _)] = chunks([(0, (f"{topic}/0", (0, 0), 1_795_737_600_000, vendor))], 1)
    await produce(kafka_bootstrap, internal, [(b"", record)])
    rules = pack_with(tmp_path / "rules", **{"zz.yaml": SHOP_WIDE_VENDOR})
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, group=group, rules=rules)
    config = orjson.loads(d.config.read_bytes())
    config["kafka"]["auto_offset_reset"] = "latest"
    d.config.write_bytes(orjson.dumps(config))
    d.start()
    await d.wait_metrics(lambda m: m.v("repartition_counted_total") == 1)
    assert d.stop() == 0
    assert [a["rule"] for a in d.stdout_alerts()] == ["vendor-reads-shop-wide"]
