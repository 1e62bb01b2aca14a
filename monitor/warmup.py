"""``exfil-monitor warmup``: the daemon's first checkpoints, learned from a shop's logs.

A daemon started on an empty checkpoint store knows nothing: every window is empty, so
an incident already under way when it starts is seen only from its start on. This
command reads the shop's recent logs the way the daemon would have read them, through
the same decoder and engines, and writes what they learned to the checkpoint store, so
the daemon's first start restores it like any checkpoint.

The events are placed as the producers place them: each event's ``kafka.key_field``
value is the record key, and the partition is the one the producers' partitioner picks
(``murmur2``, the Java client's and aiokafka's default; ``crc32`` for librdkafka's), so
every partition's engine holds what the daemon's engine for that partition would hold.
Each checkpoint's offset is that of the partition's first record stamped after the warm
files' last event (Kafka's ``offsets_for_times``; producers stamp records when they send
them, as a live producer sends an event when it happens), so the daemon reads on from
there and the events Kafka still holds from the warm period are not counted twice.
Alerts the warm events raise are held back, and their episodes forgotten (nobody was
told of them).

Rules counted after repartitioning (:mod:`monitor.engine.repartition`) learn as the
daemon counts them: each event they match goes to the internal topic's partition its
group key picks, as the daemon would forward it, and that partition's checkpoint is
written too, to be read on from the internal topic's end.

It refuses to replace checkpoints the group already has (the daemon's own state is
newer than any log) unless ``--force``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from monitor.checkpoints.base import key_of
from monitor.checkpoints.config import build_store
from monitor.checkpoints.keeper import Keeper
from monitor.config import Config
from monitor.decode import Decoder
from monitor.engine.partitioned import Partitioned
from monitor.engine.repartition import Router
from monitor.event import Event, getter
from monitor.health import Health
from monitor.kafka_client import PARTITIONERS, describe_partitions
from monitor.pipeline import Counts, Pipeline, where_in
from monitor.rules.loader import RuleSet
from monitor.sources import repartition
from monitor.sources.files import FileSource
from monitor.telemetry import quiet_telemetry


class WarmupError(Exception):
    """Why the warm state was not written (said to the operator, exit 1)."""


@dataclass
class WarmResult:
    counts: Counts = field(default_factory=Counts)
    unkeyed: int = 0  # events without a key_field value: placed as a producer would (randomly): left out
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> where the daemon reads on
    groups: dict[int, int] = field(default_factory=dict)  # partition -> window groups learned
    internal_groups: dict[int, int] = field(default_factory=dict)  # the same, of the internal topic's partitions
    newest_ms: int | None = None


async def warm(config: Config, ruleset: RuleSet, files: Iterable[str], *, partitioner: str = "murmur2",
               force: bool = False) -> WarmResult:  # fmt: skip
    kafka = config.kafka
    if kafka is None:
        raise WarmupError("warmup writes the checkpoints of a kafka: source; a file source reads its own logs")
    if len(kafka.topics) != 1:
        raise WarmupError("warmup needs exactly one topic in kafka.topics (events carry no topic to place them by)")
    topic, internal = kafka.topics[0], kafka.repartition_topic
    place = PARTITIONERS[partitioner]
    n = await _partitions(config, topic)
    # The internal topic as the daemon makes it (or as it is, if it exists already).
    inner, inner_exists = await _internal_partitions(config, internal, n)
    place_forwarded = repartition.partitioner(inner)
    router = Router(kafka.key_field, kafka.keyed, internal)
    engines = Partitioned(ruleset, config.engine.options(), router)
    split = router.split(ruleset)
    result = WarmResult()
    decoder = Decoder(time_field=config.engine.time_field, max_future_skew_ms=0)  # logs of the past
    pipeline = Pipeline(decoder, engines, quiet_telemetry(), counts=result.counts)
    key_of_event = getter(kafka.key_field)
    for batch in FileSource(list(files)).batches():
        good, _ = pipeline.decode(batch.lines, partial(where_in, batch))
        streams: dict[Hashable, list[tuple[Event, int]]] = {}
        for e, ts in good:
            result.newest_ms = ts if result.newest_ms is None else max(result.newest_ms, ts)
            for key, reduced in split.forward(e, ts):  # as the daemon forwards it, whatever its key
                streams.setdefault(TopicPartition(internal, place_forwarded(key)), []).append((reduced, ts))
            value = key_of_event(e)
            if value is None:
                result.unkeyed += 1
                continue
            streams.setdefault(TopicPartition(topic, place(str(value).encode(), n)), []).append((e, ts))
        pipeline.evaluate_streams(streams, {}, started=time.perf_counter(), newest_ms=None, now_ms=None)
        engines.resolutions()  # of alerts held back
    sources = [TopicPartition(topic, p) for p in range(n)]
    inners = [TopicPartition(internal, q) for q in range(inner)] if split.routes else []
    for tp in sources + inners:
        if tp not in engines:
            engines.add(tp, engines.fresh(tp), None)
    for _, slot in engines:
        slot.engine.warmed()
    result.offsets = await _offsets_after(config, topic, n, result.newest_ms)
    ends = await _offsets_after(config, internal, inner, None) if inners and inner_exists else {}
    for tp in sources + inners:
        slot = engines.slots[tp]
        # An internal partition: read on from its end (what is in it now is not of the warm
        # period), with no marks: everything forwarded from here on is new.
        slot.offset = result.offsets[tp.partition] if tp.topic == topic else ends.get(tp.partition, 0)
        groups = sum(len(st.groups) for st in slot.engine.states)
        if tp.topic == topic:
            result.groups[tp.partition] = groups
        else:
            result.internal_groups[tp.partition] = groups
    keeper = Keeper(build_store(config.checkpoint, kafka, config.state.dir), engines, quiet_telemetry(), Health(),
                    key=lambda tp: key_of(cast(TopicPartition, tp).topic, cast(TopicPartition, tp).partition))  # fmt: skip
    await keeper.start()
    try:
        if not force:
            found = await keeper.store.load([key_of(tp.topic, tp.partition) for tp in sources + inners])
            held = sorted(k for k, loaded in found.items() if loaded.checkpoint is not None or loaded.error)
            if held:
                raise WarmupError(f"checkpoints exist already for {', '.join(held)}: the daemon's own state is "
                                  "newer than any log (--force replaces it)")  # fmt: skip
        if not await keeper.save():
            raise WarmupError("the checkpoints could not be written (see the error above)")
    finally:
        await keeper.stop()
    return result


async def _internal_partitions(config: Config, topic: str, consumed: int) -> tuple[int, bool]:
    """How many partitions the internal topic has (True) or will have when the daemon makes it."""
    assert config.kafka is not None
    parts, error = await describe_partitions(config.kafka.client_options(), topic)
    if not error and parts:
        return len(parts), True
    return config.kafka.repartition.partitions or consumed, False


async def _partitions(config: Config, topic: str) -> int:
    assert config.kafka is not None
    parts, error = await describe_partitions(config.kafka.client_options(), topic)
    if error or not parts:
        raise WarmupError(f"topic {topic} does not exist (or has no partitions): create it first")
    return len(parts)


async def _offsets_after(config: Config, topic: str, n: int, newest_ms: int | None) -> dict[int, int]:
    """Per partition, the first record stamped after ``newest_ms``; the end where none is
    (everything the topic holds is of the warm period, or older)."""
    assert config.kafka is not None
    consumer = AIOKafkaConsumer(**config.kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(n)]
        end = await consumer.end_offsets(tps)
        if newest_ms is None:
            return {tp.partition: end[tp] for tp in tps}
        found = await consumer.offsets_for_times({tp: newest_ms + 1 for tp in tps})
        return {tp.partition: (found[tp].offset if found.get(tp) is not None else end[tp]) for tp in tps}
    finally:
        await consumer.stop()


def run(config: Config, ruleset: RuleSet, files: list[str], partitioner: str, force: bool) -> WarmResult:
    return asyncio.run(warm(config, ruleset, files, partitioner=partitioner, force=force))
