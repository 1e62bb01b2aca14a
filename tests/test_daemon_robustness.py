"""Review of the daemon (issue 3): each test demonstrates a suspected bug or pins a behaviour.

Unit tests first (no broker); the ``kafka`` ones run an in-process :class:`Daemon` against
the real broker of tests/support/kafka_fixtures.py.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import CollectorRegistry

from monitor.app import EXIT_OK, Daemon
from monitor.checkpoints.base import key_of
from monitor.checkpoints.directory import DirectoryStore
from monitor.checkpoints.keeper import Keeper
from monitor.config import ConfigError, load_config
from monitor.engine import Engine
from monitor.engine.alert import Alert
from monitor.engine.partitioned import Partitioned
from monitor.health import READY, Health, Report
from monitor.http import HttpServer
from monitor.outputs import Delivery, Output
from monitor.outputs.base import Record
from monitor.outputs.spool import Spool
from monitor.outputs.stdout import StdoutOutput
from monitor.retry import RetryPolicy
from monitor.rules.loader import load_rules
from monitor.sources.assignor import StickyAssignor
from monitor.telemetry import Metrics, Telemetry, configure_logging
from tests.support.kafka import acreate_topic

TopicFactory = Callable[..., str]
MINUTE = 60_000
HOUR = 60 * MINUTE

SUM_RULE = """\
rules:
  - id: bulk-read
    description: Too many rows read.
    severity: high
    match: {action: select}
    group_by: [actor.id]
    window: 10m
    aggregate: {sum: rows}
    threshold: {gt: 5000}
"""

COUNT_RULE = """\
rules:
  - id: three-reads
    description: Three reads by one actor within ten minutes.
    severity: high
    match: {action: select}
    group_by: [actor.id]
    window: 10m
    threshold: {gte: 3}
"""

PROBE_RULE = """\
rules:
  - id: every-event
    description: One alert per event.
    severity: info
    match: {id: {exists: true}}
    group_by: [id]
"""


def telemetry() -> Telemetry:
    return Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "info", io.StringIO()))


def load_rules_text(text: str) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return load_rules(rules_dir(Path(folder), text))


def rules_dir(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "r.yaml").write_text(text)
    return folder


def write_config(tmp_path: Path, kafka: dict[str, Any], rules: Path, outputs: list[dict[str, Any]] | None = None,
                 **extra: Any) -> Path:  # fmt: skip
    base = {
        "group_id": f"review-{uuid.uuid4().hex[:8]}", "auto_offset_reset": "earliest", "poll_timeout": "200ms",
        "retry_backoff": "200ms", "retry_backoff_max": "1s",
        "session_timeout": "6s", "heartbeat_interval": "500ms", "request_timeout": "5s",
    }  # fmt: skip
    config = {"kafka": {**base, **kafka}, "rules": {"path": str(rules)}, "state": {"dir": str(tmp_path / "state")},
              "outputs": outputs or [{"type": "stdout"}], "http": {"listen": "127.0.0.1:0"},
              "checkpoint": {"interval": "200ms"}, **extra}  # fmt: skip
    path = tmp_path / "monitor.yaml"
    path.write_bytes(orjson.dumps(config))  # JSON is YAML
    return path


def event(i: int, ts: int, actor: str = "a", **fields: Any) -> dict[str, Any]:
    return {"id": f"e{i}", "ts": ts, "action": "select", "actor": {"id": actor}, **fields}


# ----------------------------------------------------------------------------- unit


async def test_an_alert_whose_sum_exceeds_64_bits_does_not_stall_delivery(tmp_path: Path) -> None:
    """An event with ``rows`` = 2**64-1 (valid JSON, accepted by orjson) on top of any other
    makes a sum orjson cannot serialise: ``Alert.to_json`` raises TypeError in every output, Delivery
    retries it forever, and the daemon never processes another event (nor on restart: the
    same events come back). One crafted event pair blinds the monitor."""
    ruleset = load_rules(rules_dir(tmp_path, SUM_RULE))
    engine = Engine(ruleset)
    now = int(time.time() * 1000)
    alerts = engine.process(
        [(event(1, now, rows=5000), now), (event(2, now + 1, rows=2**64 - 1), now + 1)]
    )
    assert [a.value for a in alerts] == [2**64 + 4999]
    out = io.BytesIO()
    delivery = Delivery([StdoutOutput(stream=out)], telemetry(), tmp_path / "spool",
                        policy=RetryPolicy(initial=0.01, maximum=0.05))  # fmt: skip
    await delivery.start()
    try:
        delivery.submit([a.to_dict() for a in alerts])  # orjson must take the record
        async with asyncio.timeout(2):
            await delivery.drained()
    except TimeoutError:
        pytest.fail(f"delivery never completes: {delivery.failing}")
    finally:
        await delivery.stop()
    assert len(out.getvalue().splitlines()) == 1


@pytest.mark.parametrize("rebalance", [False, True], ids=["steady", "after-rebalance"])
async def test_forgetting_clock_still_waits_for_a_slow_partition_after_a_rebalance(
    tmp_path: Path, rebalance: bool
) -> None:
    """aiokafka rebalances eagerly: every rebalance revokes *all* partitions, even those
    given straight back. Each partition forgets by its own clock, and a partition handed
    back keeps its engine, so a fast partition two hours ahead never sweeps the slow
    partition's groups (still in memory, still being fed) and no alert is missed."""
    engines = Partitioned(load_rules(rules_dir(tmp_path, COUNT_RULE)))
    keeper = Keeper(DirectoryStore(tmp_path / "checkpoints"), engines, telemetry(), Health(),
                    key=lambda tp: key_of(tp.topic, tp.partition))  # fmt: skip
    await keeper.start()
    fast, slow = TopicPartition("t", 0), TopicPartition("t", 1)
    t0 = int(time.time() * 1000) - 3 * HOUR
    offsets = {fast: 0, slow: 0}
    await keeper.restore({fast, slow})

    def batch(parts: dict[TopicPartition, list[dict[str, Any]]]) -> list[Alert]:
        for tp, evs in parts.items():
            offsets[tp] += len(evs)
        return engines.process({tp: [(e, e["ts"]) for e in evs] for tp, evs in parts.items()},
                               {tp: offsets[tp] for tp in parts})  # fmt: skip

    # The slow partition is two hours behind the fast one; "s" has 2 of its 3 reads.
    assert not batch(
        {slow: [event(1, t0, "s"), event(2, t0 + 1000, "s")], fast: [event(3, t0 + 2 * HOUR, "f")]}
    )
    if rebalance:  # e.g. another instance joined and left; we keep both partitions
        assert await keeper.save()
        kept = {tp: slot.engine for tp, slot in engines}
        restored = await keeper.restore({fast, slow})
        assert {tp: r.offset for tp, r in restored.items()} == {fast: 1, slow: 2}
        assert {tp: slot.engine for tp, slot in engines} == kept, "handed straight back: kept in memory"
    assert not batch({fast: [event(4, t0 + 2 * HOUR + 1000, "f")]})
    alerts = batch({slow: [event(5, t0 + 2000, "s")]})
    assert [a.group for a in alerts] == [{"actor.id": "s"}], "the third read of 's' must alert"
    await keeper.stop()


def test_no_metric_label_carries_an_actor_customer_table_or_address(tmp_path: Path) -> None:
    """Pin: everything the daemon counts for a batch (alerts, matches, groups, invalid input,
    outputs, lag) leaves the event's identifying values out of the exported series."""
    from prometheus_client import generate_latest

    t = telemetry()
    engine = Engine(load_rules(rules_dir(tmp_path, SUM_RULE)))
    now = int(time.time() * 1000)
    secret = {"actor": {"id": "ACTOR-7f3a"}, "customer": "CUST-9c1d", "resource": {"name": "TABLE-4b2e"},
              "client": {"ip": "203.0.113.77"}}  # fmt: skip
    alerts = engine.process([({**event(1, now, rows=9000), **secret}, now)])
    assert alerts
    for a in alerts:
        t.alert_fired(a)
    t.batch_done(engine, 0.01, now, now)
    t.invalid_event("invalid_json", "ACTOR-7f3a CUST-9c1d", "t/0@1")
    t.output_result("stdout", "success", 1)
    t.consumer_lag("t", 0, 5)
    text = generate_latest(t.metrics.registry).decode()
    for value in ("ACTOR-7f3a", "CUST-9c1d", "TABLE-4b2e", "203.0.113.77"):
        assert value not in text


async def test_alerts_limit_with_a_non_ascii_digit_is_a_400_not_a_500() -> None:
    """``str.isdigit`` accepts '²' but ``int`` does not: the handler raises, aiohttp answers 500."""
    import aiohttp

    class Status:
        def health(self) -> Report:
            return Report(READY)

        def rules(self) -> dict[str, Any] | None:
            return None

        def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
            return []

    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), Status())
    port = await server.start()
    try:
        async with aiohttp.ClientSession() as s:
            for bad in ("²", "9" * 5000):
                async with s.get(f"http://127.0.0.1:{port}/alerts", params={"limit": bad}) as r:
                    assert r.status == 400, (bad[:10], r.status)
    finally:
        await server.stop()


def test_a_topic_pattern_that_matches_the_dead_letter_topic_is_rejected(tmp_path: Path) -> None:
    """aiokafka matches ``topic_pattern`` with ``re.match`` (a prefix match): the natural
    ``data-access-events.*`` also subscribes to ``data-access-events.dead-letter``, so every
    dead letter is read back, is unusable again and is dead-lettered again, forever."""
    path = write_config(tmp_path, {"bootstrap_servers": "127.0.0.1:1", "topic_pattern": "data-access-events.*",
                                   "dead_letter_topic": "data-access-events.dead-letter"}, tmp_path)  # fmt: skip
    with pytest.raises(ConfigError):
        load_config(path, {})


@pytest.mark.parametrize("servers", [None, "elsewhere:9092"], ids=["same-cluster", "other-cluster"])
def test_topics_that_include_a_kafka_outputs_topic_are_rejected_on_the_same_cluster(
    tmp_path: Path, servers: str | None
) -> None:
    output: dict[str, Any] = {"type": "kafka", "topic": "alerts"}
    if servers:
        output["bootstrap_servers"] = servers
    path = write_config(tmp_path, {"bootstrap_servers": "127.0.0.1:1", "topics": ["events", "alerts"]},
                        tmp_path, [output])  # fmt: skip
    if servers:
        load_config(path, {})
        return
    with pytest.raises(ConfigError, match=r"monitor.yaml:\d+:\d+: kafka.topics.1: consumes the alerts topic"):
        load_config(path, {})


def test_an_invalid_topic_pattern_is_a_config_error(tmp_path: Path) -> None:
    """Otherwise ``re.compile`` fails inside ``consumer.subscribe`` at run time: 'crashed', exit 1."""
    path = write_config(
        tmp_path, {"bootstrap_servers": "127.0.0.1:1", "topic_pattern": "events-("}, tmp_path
    )
    with pytest.raises(ConfigError):
        load_config(path, {})


# ----------------------------------------------------------------------------- real broker


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class _Running:
    """An in-process daemon and its run task."""

    def __init__(self, config: Path, *, outputs: Sequence[Output] | None = None) -> None:
        self.stdout, self.stderr, self.exits = io.BytesIO(), io.StringIO(), []  # type: ignore[var-annotated]
        self.daemon = Daemon(load_config(config, {}), registry=CollectorRegistry(), stdout=self.stdout,
                             stderr=self.stderr, outputs=list(outputs) if outputs is not None else None,
                             exit_now=self.exits.append)  # fmt: skip
        self.task = asyncio.ensure_future(self.daemon.run())

    def log(self, event: str) -> list[dict[str, Any]]:
        lines = [orjson.loads(x) for x in self.stderr.getvalue().splitlines() if x.startswith("{")]
        return [x for x in lines if x.get("event") == event]

    async def stop_within(self, seconds: float) -> bool:
        """Request a stop; True if run() returned within ``seconds``."""
        self.daemon.request_stop("SIGTERM")
        done, _ = await asyncio.wait({self.task}, timeout=seconds)
        return bool(done)

    async def kill(self) -> None:
        if not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def _produce(
    bootstrap: str, topic: str, values: list[bytes], max_request_size: int = 1048576
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=max_request_size
    )
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, key=b"k")
    finally:
        await producer.stop()


async def _committed(bootstrap: str, topic: str, group: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))  # type: ignore[no-any-return]
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_sigterm_while_an_output_fails_stops_commits_and_keeps_the_alert_spooled(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """A SIGTERM while an output keeps failing (here: a file output on /dev/full, ENOSPC)
    used to be ignored: delivery retried forever inside the batch, so the daemon never
    committed, never left the group and was SIGKILLed by the orchestrator. With a spool
    per output the batch is done once its alert is fsynced there: the stop commits it,
    and the alert waits in the output's spool for the next start."""
    topic = kafka_topic_factory(1)
    config = write_config(tmp_path, {"bootstrap_servers": kafka_bootstrap, "topics": [topic]},
                          rules_dir(tmp_path, PROBE_RULE), [{"type": "file", "path": "/dev/full"}])  # fmt: skip
    await _produce(kafka_bootstrap, topic, [orjson.dumps(event(1, int(time.time() * 1000)))])
    run = _Running(config)
    try:
        await _until(lambda: bool(run.daemon.delivery.failing), 30, "the output to fail")
        assert "No space left" in run.daemon.delivery.failing["file"]
        assert await run.stop_within(10), "SIGTERM ignored while an output fails"
        assert run.task.result() == EXIT_OK
        group = run.daemon.config.kafka.group_id
        assert (await _committed(kafka_bootstrap, topic, group)) == 1, "the spooled batch is committed"
        with Spool(run.daemon.config.state.dir / "spool" / "file") as spool:
            [entry] = spool.peek()
        assert orjson.loads(entry.data)["rule"] == "every-event"
    finally:
        await run.kill()


@pytest.mark.kafka
async def test_sigterm_during_a_slow_rebalance_stops_promptly(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """aiokafka's ``getmany`` waits for the assignment while a rebalance is in progress,
    ignoring ``timeout_ms``. The rebalance lasts until every member has rejoined, up to
    the slowest member's ``max_poll_interval`` (300 s by default) - e.g. another instance
    whose revoke waits for its own stuck batch, or for ever with the broker gone during
    the join. ``_loop`` awaits ``fetch()`` without racing ``stopping``, so SIGTERM waits too."""
    topic = kafka_topic_factory(1)
    group = f"review-{uuid.uuid4().hex[:8]}"
    assigned, stuck, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    class SlowMember(ConsumerRebalanceListener):  # type: ignore[misc]
        calls = 0

        async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
            self.calls += 1
            if self.calls > 1:  # the first call is the empty one of the first join
                stuck.set()
                await release.wait()

        async def on_partitions_assigned(self, partitions: set[TopicPartition]) -> None:
            assigned.set()

    other = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False,
                             max_poll_interval_ms=90_000, session_timeout_ms=45_000, heartbeat_interval_ms=1000,
                             partition_assignment_strategy=(StickyAssignor(),))  # the daemon's group protocol  # fmt: skip
    await other.start()
    other.subscribe([topic], listener=SlowMember())
    run: _Running | None = None
    try:
        await asyncio.wait_for(assigned.wait(), 30)
        config = write_config(tmp_path, {"bootstrap_servers": kafka_bootstrap, "topics": [topic], "group_id": group},
                              rules_dir(tmp_path, PROBE_RULE))  # fmt: skip
        run = _Running(config)
        await asyncio.wait_for(stuck.wait(), 30)
        await asyncio.sleep(1)  # the daemon is in its loop, in getmany
        assert not run.task.done()
        assert await run.stop_within(10), "SIGTERM ignored while the group rebalances"
    finally:
        release.set()
        if run is not None:
            await run.kill()
        await other.stop()


class GateOutput(Output):
    """An output whose first send waits for the test: a slow destination, made controllable."""

    kind = "gate"

    def __init__(self) -> None:
        super().__init__("gate")
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        self.ids: list[str] = []

    async def _open(self) -> None:
        return None

    async def _send(self, records: Sequence[Record]) -> None:
        self.entered.set()
        await self.release.wait()
        self.ids.extend(r["id"] for r in records if r["type"] == "alert")


@pytest.mark.kafka
async def test_a_new_topic_matching_the_pattern_during_a_batch_does_not_crash_the_daemon(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """With ``topic_pattern``, aiokafka replaces the subscription as soon as metadata shows
    a new matching topic, before any revoke callback: ``consumer.assignment()`` is empty
    while the batch in hand is being delivered. ``processed`` then calls
    ``consumer.highwater(tp)``, which asserts the partition is assigned: AssertionError,
    'crashed', exit 1 - on an ordinary topic creation."""
    prefix = f"pat{uuid.uuid4().hex[:8]}"
    first = kafka_topic_factory(1, prefix=prefix)
    config = write_config(tmp_path, {"bootstrap_servers": kafka_bootstrap, "topic_pattern": f"^{prefix}-",
                                     "metadata_max_age": "300ms"}, rules_dir(tmp_path, PROBE_RULE))  # fmt: skip
    gate = GateOutput()
    run = _Running(config, outputs=[gate])
    try:
        await _until(lambda: run.daemon.source.joined, 30, "the daemon to join")
        await _produce(kafka_bootstrap, first, [orjson.dumps(event(1, int(time.time() * 1000)))])
        await asyncio.wait_for(gate.entered.wait(), 30)
        await acreate_topic(kafka_bootstrap, f"{prefix}-second-{uuid.uuid4().hex[:6]}")
        consumer = run.daemon.source._consumer
        await _until(lambda: not consumer.assignment(), 15, "aiokafka to replace the subscription")
        gate.release.set()
        await asyncio.sleep(2)
        crashed = [e.get("error") for e in run.log("crashed")]
        assert not run.task.done(), f"daemon exited {run.task.result()}: {crashed}"
        assert await run.stop_within(20)
        assert gate.ids
    finally:
        gate.release.set()
        await run.kill()


@pytest.mark.kafka
async def test_a_dead_letter_too_large_to_produce_does_not_stop_consumption(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """The consumer reads messages up to ``max_partition_fetch_bytes`` (4 MiB) but the
    dead-letter producer keeps aiokafka's default ``max_request_size`` (1 MiB): a larger
    unusable message raises MessageSizeTooLargeError (a KafkaError, not retriable) and
    ``dead_letter`` retries it for ever. Consumption stops; ``/readyz`` still says ready."""
    topic = f"big-{uuid.uuid4().hex[:8]}"
    await acreate_topic(kafka_bootstrap, topic, configs={"max.message.bytes": str(4 << 20)})
    dlq = kafka_topic_factory(1, prefix="dlq")
    await _produce(kafka_bootstrap, topic, [b"x" * 1_500_000, orjson.dumps(event(1, int(time.time() * 1000)))],
                   max_request_size=4 << 20)  # fmt: skip
    config = write_config(tmp_path, {"bootstrap_servers": kafka_bootstrap, "topics": [topic], "max_batch": 1,
                                     "dead_letter_topic": dlq}, rules_dir(tmp_path, PROBE_RULE))  # fmt: skip
    run = _Running(config)
    try:
        try:
            await _until(lambda: run.daemon.alerts_total >= 1, 20, "the event after the big one")
        except AssertionError:
            m = run.daemon.metrics.registry
            errors = m.get_sample_value(
                "exfil_monitor_source_errors_total", {"kind": "dead_letter"}
            )
            pytest.fail(f"consumption stopped at the big message; dead_letter errors: {errors}; "
                        f"ready: {run.daemon.health()}")  # fmt: skip
        m = run.daemon.metrics.registry
        assert m.get_sample_value("exfil_monitor_source_errors_total", {"kind": "dead_letter_truncated"}) == 1
        consumer = AIOKafkaConsumer(dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            letter = await asyncio.wait_for(consumer.getone(), 20)
        finally:
            await consumer.stop()
        headers = dict(letter.headers)
        assert headers["exfil_monitor.truncated"] == b"1500000"
        assert headers["exfil_monitor.reason"] == b"invalid_json"
        assert letter.value == b"x" * 65536
    finally:
        await run.kill()


# ----------------------------------------------------------------------------- issue 6: hostile events

BIG_NAME_RULE = """\
rules:
  - id: named-read
    description: A read, named.
    severity: high
    match: {action: select}
    group_by: [actor.name]
    annotations:
      summary: "{actor.name} read; again {actor.name}, {actor.name} and {actor.name}"
"""


def test_an_alert_keeps_to_its_size_budget_and_marks_what_it_cut() -> None:
    """A 350 KB account name, named four times in the summary and used as the group: the
    alert had 1.4 MB of summary, more than a broker accepts by default."""
    from monitor.engine.alert import ALERT_MAX_BYTES, VALUE_MAX_BYTES

    rs = load_rules_text(BIG_NAME_RULE)
    name = "n" * 358_400
    e = {**event(1, HOUR), "actor": {"id": "x", "name": name}}
    alerts = Engine(rs).process([(e, HOUR)], clock=None)
    assert len(alerts) == 1
    a = alerts[0]
    d = a.to_dict()
    assert len(a.to_json()) <= ALERT_MAX_BYTES
    marker = "...[truncated, 358400 bytes]"
    assert d["group"]["actor.name"] == "n" * VALUE_MAX_BYTES + marker
    assert d["summary"].count(marker) == 4
    assert a.group["actor.name"] == name  # the id is of the full value: no two groups merge
    wide = Alert(**{**a.__dict__, "summary": "é" * 200_000, "annotations": {"x": "y" * 200_000}})
    assert len(wide.to_json()) <= ALERT_MAX_BYTES
    assert wide.to_dict()["summary"].endswith("...[truncated, 400000 bytes]")


@pytest.mark.kafka
async def test_an_alert_the_broker_refuses_is_parked_and_later_alerts_and_commits_go_on(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """Before: the 1.4 MB alert raised MessageSizeTooLargeError on every attempt, and
    delivery retried it for ever; nothing after it was sent or committed, /readyz said ready.
    Here the alert fits the budget but not the alerts topic (max.message.bytes 3000)."""
    topic = kafka_topic_factory(1)
    alerts_topic = f"small-alerts-{uuid.uuid4().hex[:8]}"
    await acreate_topic(kafka_bootstrap, alerts_topic, configs={"max.message.bytes": "3000"})
    now = int(time.time() * 1000)
    big = {**event(1, now), "actor": {"id": "x", "name": "n" * 358_400}}
    small = {**event(2, now + 1), "actor": {"id": "y", "name": "yvonne"}}
    await _produce(kafka_bootstrap, topic, [orjson.dumps(big), orjson.dumps(small)])
    config = write_config(tmp_path, {"bootstrap_servers": kafka_bootstrap, "topics": [topic]},
                          rules_dir(tmp_path, BIG_NAME_RULE),
                          [{"type": "stdout"}, {"type": "kafka", "topic": alerts_topic}])  # fmt: skip
    run = _Running(config)
    try:
        group = run.daemon.config.kafka.group_id
        try:
            await _until(lambda: getattr(run.daemon.delivery.spools.get("kafka"), "parked", 0) == 1, 30, "the big alert to be parked")
        except AssertionError:
            pytest.fail(f"not parked; the daemon log ends:\n{run.stderr.getvalue()[-3000:]}")
        consumer = AIOKafkaConsumer(alerts_topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            delivered = orjson.loads((await asyncio.wait_for(consumer.getone(), 20)).value)
        finally:
            await consumer.stop()
        assert delivered["group"] == {"actor.name": "yvonne"}
        deadline = time.monotonic() + 20
        while (await _committed(kafka_bootstrap, topic, group)) != 2:
            assert time.monotonic() < deadline, "the commit waited behind the parked alert"
            await asyncio.sleep(0.2)
        m = run.daemon.metrics.registry
        assert m.get_sample_value("exfil_monitor_alerts_rejected_total", {"output": "kafka"}) == 1
        report = run.daemon.health()
        assert report.status == "degraded" and report.ready
        assert any("kafka rejected 1 record" in r for r in report.reasons), report
        (parked,) = run.log("alert_rejected")
        assert parked["output"] == "kafka" and "MessageSizeTooLarge" in parked["answer"]
        fired = [a for a in run.log("alert") if "truncated" in a["summary"]]
        assert fired and "[truncated, 358400 bytes]" in fired[0]["group"]["actor.name"]
        lines = [orjson.loads(x) for x in run.stdout.getvalue().splitlines()]
        assert len([x for x in lines if x["type"] == "alert"]) == 2  # stdout has both: parking is per output
    finally:
        await run.kill()


@pytest.mark.kafka
async def test_empty_messages_and_tombstones_are_invalid_and_dead_lettered(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    """Before: a value of None (a tombstone) or b"" was read, skipped as a blank line, and
    neither counted nor dead-lettered."""
    topic = kafka_topic_factory(1)
    dlq = kafka_topic_factory(1, prefix="dlq")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for v in (None, b"", orjson.dumps(event(1, int(time.time() * 1000)))):
            await producer.send_and_wait(topic, v, key=b"k")
    finally:
        await producer.stop()
    config = write_config(tmp_path, {"bootstrap_servers": kafka_bootstrap, "topics": [topic],
                                     "dead_letter_topic": dlq}, rules_dir(tmp_path, PROBE_RULE))  # fmt: skip
    run = _Running(config)
    try:
        await _until(lambda: run.daemon.alerts_total >= 1, 30, "the event after the empty ones")
        m = run.daemon.metrics.registry
        assert m.get_sample_value("exfil_monitor_events_invalid_total", {"reason": "empty"}) == 2
        consumer = AIOKafkaConsumer(dlq, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            letters = [await asyncio.wait_for(consumer.getone(), 20) for _ in range(2)]
        finally:
            await consumer.stop()
        assert [dict(x.headers)["exfil_monitor.reason"] for x in letters] == [b"empty", b"empty"]
        assert [x.offset for x in letters] == [0, 1]
        assert sorted(e["where"] for e in run.log("invalid_event")) == [f"{topic}/0@0", f"{topic}/0@1"]
        deadline = time.monotonic() + 20
        while (await _committed(kafka_bootstrap, topic, run.daemon.config.kafka.group_id)) != 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
    finally:
        await run.kill()
