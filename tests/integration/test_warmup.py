"""``exfil-monitor warmup`` against the real broker: a daemon that starts on checkpoints
learned from the shop's logs alerts on what follows as ``replay --warmup`` does, and does
not count the events Kafka still holds from the warm period twice."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from monitor.kafka_client import PARTITIONERS
from monitor.simulate import write_jsonl
from monitor.timeparse import parse_ts
from tests.integration.daemon_process import REPO, DaemonProcess, produce, settled
from tests.integration.test_daemon import by_actor, daemons, key, shop_events
from tests.support.kafka import skip_or_fail
from tests.support.rules import pack_with

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
__all__ = ["daemons"]

TopicFactory = Callable[..., str]
RULES = REPO / "rules"
LATENESS = "24h"
BY_CUSTOMER = """\
rules:
  - id: customer-read-by-many
    severity: high
    match: {resource.name: {in: [customers, customer_addresses, payment_cards]}, action: select,
            customer_id: {exists: true}}
    group_by: [customer_id]
    window: 6h
    aggregate: {distinct: actor.id}
    threshold: {gte: 2}
"""


def groups(alerts: list[dict[str, object]], rule: str) -> set[bytes]:
    return {orjson.dumps(a["group"], option=orjson.OPT_SORT_KEYS) for a in alerts if a["rule"] == rule}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True,
                          timeout=180, cwd=REPO)  # fmt: skip


def test_murmur2_places_keys_where_the_producers_do() -> None:
    place = PARTITIONERS["murmur2"]
    for k in (b"agent-007", b"payment-service", b"", "vendor-\u00e9".encode()):
        assert place(k, 6) == DefaultPartitioner()(k, list(range(6)), list(range(6)))


async def test_crc32_places_keys_where_librdkafka_does(kafka_bootstrap: str, kafka_topic_factory: TopicFactory) -> None:
    """kcat is librdkafka: its default partitioner puts a keyed record where crc32 says."""
    if shutil.which("kcat") is None:
        skip_or_fail("kcat is not installed (apt-get install kcat)")
    topic = kafka_topic_factory(partitions=6, prefix="crc")
    keys = [f"actor-{i}" for i in range(40)]
    lines = "".join(f"{k}\t{{}}\n" for k in keys).encode()
    kcat = subprocess.run(["kcat", "-b", kafka_bootstrap, "-t", topic, "-P", "-K", "\t"], input=lines,
                          capture_output=True, timeout=60)  # fmt: skip
    assert kcat.returncode == 0, kcat.stderr.decode()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    placed: dict[str, int] = {}
    deadline = time.monotonic() + 30
    try:
        while len(placed) < len(keys):
            assert time.monotonic() < deadline, f"read {len(placed)} of {len(keys)} records"
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                placed.update((r.key.decode(), tp.partition) for r in records if r.key is not None)
    finally:
        await consumer.stop()
    assert placed == {k: PARTITIONERS["crc32"](k.encode(), 6) for k in keys}


async def test_a_daemon_started_on_warm_checkpoints_alerts_as_replay_warmup(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    events = shop_events(seed=41, events=16_000)
    times = [parse_ts(e["ts"]) for e in events]
    half = next(i for i in range(len(events) // 2, len(events)) if times[i] > times[i - 1])  # a clean boundary
    warm_file, rest_file = tmp_path / "warm.jsonl", tmp_path / "rest.jsonl"
    with open(warm_file, "wb") as f:
        write_jsonl(events[:half], f)
    with open(rest_file, "wb") as f:
        write_jsonl(events[half:], f)
    topic = kafka_topic_factory(partitions=3, prefix="events")
    # Kafka holds the warm period too, each record stamped when it happened.
    await produce(kafka_bootstrap, topic, [(key(e), orjson.dumps(e)) for e in events], timestamps=times)

    rules = pack_with(tmp_path / "rules", **{"zz-by-customer.yaml": BY_CUSTOMER})  # one rule repartitioned
    # The backlog is read partition by partition, far apart in event time: the repartitioned
    # rule's groups need the lateness to cover that (README "Scaling out").
    extra = {"checkpoint": {"interval": "500ms"}, "engine": {"allowed_lateness": LATENESS}}
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, rules=rules, extra=extra)
    warmed = cli("warmup", "--config", str(d.config), str(warm_file))
    assert warmed.returncode == 0, warmed.stderr
    assert f"warm events: {half} read, {half} used" in warmed.stderr
    assert "internal partition 2 (repartitioned rules)" in warmed.stderr, "partitioned by their own group key"
    again = cli("warmup", "--config", str(d.config), str(warm_file))
    assert again.returncode == 1 and "checkpoints exist already" in again.stderr, again.stderr

    d.start()
    await d.wait_ready()
    await settled(kafka_bootstrap, topic, d.group, len(events), d, partitions=3)
    metrics = await d.metrics(time.monotonic() + 30)
    assert d.stop() == 0
    assert metrics.v("events_received_total") == len(events) - half, "the warm period was not read again"
    restored = [e for e in d.log_events() if e.get("event") == "checkpoint_restored" and e.get("offset") is not None]
    assert len(restored) == 6, "three partitions of the events topic, three of the internal topic"

    out = cli("replay", "--rules", str(rules), "--allowed-lateness", LATENESS, "--warmup", str(warm_file), str(rest_file))
    assert out.returncode == 0, out.stderr
    expected = [orjson.loads(line) for line in out.stdout.splitlines()]
    cold = cli("replay", "--rules", str(rules), "--allowed-lateness", LATENESS, str(rest_file)).stdout.splitlines()
    cold = [orjson.loads(x) for x in cold]
    assert by_actor(expected, rules) != by_actor(cold, rules), "the boundary should split a window"
    assert by_actor(d.stdout_alerts(), rules) == by_actor(expected, rules)
    rule = "customer-read-by-many"
    assert groups(expected, rule) != groups(cold, rule), "a customer's window spans the boundary"
    assert groups(d.stdout_alerts(), rule) == groups(expected, rule)
