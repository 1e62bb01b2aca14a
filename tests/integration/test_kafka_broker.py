"""The local Kafka 4.x broker works with aiokafka the way the daemon uses it.

Covers what the daemon relies on: multi-partition topics, keyed produce (per-key order), a
consumer group reading with ``getmany``, manual commits, and committed offsets plus running
clients surviving a broker restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from tests.support.kafka import Broker

pytestmark = pytest.mark.kafka

PARTITIONS = 3
MESSAGES = 100
KEYS = [f"user-{i}".encode() for i in range(10)]
CONSUME_TIMEOUT_S = 30.0

TopicFactory = Callable[..., str]


def _message(i: int) -> tuple[bytes, bytes]:
    """Message ``i``: key cycles through KEYS, value carries the sequence number."""
    return KEYS[i % len(KEYS)], f"{i:04d}".encode()


async def _produce(producer: AIOKafkaProducer, topic: str, seqs: range) -> dict[int, int]:
    """Send keyed messages, wait for all acks; return sequence number -> partition."""
    futures = []
    for i in seqs:
        key, value = _message(i)
        futures.append(await producer.send(topic, value=value, key=key))
    metadata = await asyncio.gather(*futures)
    return {i: md.partition for i, md in zip(seqs, metadata, strict=True)}


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)


def _group_consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=10,  # several getmany rounds, so partial consumption is possible
    )


async def _consume(consumer: AIOKafkaConsumer, at_least: int) -> list[ConsumerRecord]:
    """getmany until at least ``at_least`` records arrived (fails after CONSUME_TIMEOUT_S)."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while len(records) < at_least:
        assert time.monotonic() < deadline, f"got {len(records)} of {at_least} records"
        batches = await consumer.getmany(timeout_ms=500)
        for batch in batches.values():
            records.extend(batch)
    return records


async def _committed(bootstrap: str, topic: str, group: str) -> dict[int, int | None]:
    """The group's committed offsets as seen by a fresh client (not the one that committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def _values(records: list[ConsumerRecord]) -> list[int]:
    return sorted(int(r.value) for r in records)


async def test_topic_is_created_with_requested_partitions(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = kafka_topic_factory(partitions=PARTITIONS)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert topic in await admin.list_topics()
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()

    assert described["error_code"] == 0
    partitions = sorted(described["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in partitions] == list(range(PARTITIONS))
    assert all(p["leader"] >= 0 and p["isr"] == p["replicas"] for p in partitions)


async def test_keyed_messages_round_trip_through_a_consumer_group(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    topic = kafka_topic_factory(partitions=PARTITIONS)
    group = f"g-{uuid.uuid4().hex[:8]}"

    producer = _producer(kafka_bootstrap)
    await producer.start()
    try:
        sent_partition = await _produce(producer, topic, range(MESSAGES))
    finally:
        await producer.stop()

    consumer = _group_consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        records = await _consume(consumer, MESSAGES)
        # Nothing beyond the 100 produced arrives.
        extra = await consumer.getmany(timeout_ms=300)
        await consumer.commit()
    finally:
        await consumer.stop()

    assert not any(extra.values())
    assert _values(records) == list(range(MESSAGES))
    # Same key -> same partition, the one the producer was told, and per-key order is kept.
    by_key: dict[bytes, list[ConsumerRecord]] = defaultdict(list)
    for record in records:
        assert record.key == _message(int(record.value))[0]
        assert record.partition == sent_partition[int(record.value)]
        by_key[record.key].append(record)
    assert set(by_key) == set(KEYS)
    for key_records in by_key.values():
        assert len({r.partition for r in key_records}) == 1
        assert [r.offset for r in key_records] == sorted(r.offset for r in key_records)
        values = [int(r.value) for r in sorted(key_records, key=lambda r: r.offset)]
        assert values == sorted(values)
    assert len({r.partition for r in records}) > 1, "10 keys should spread over partitions"

    # The commit covers everything consumed: committed == end offset for every partition.
    ends = await _end_offsets(kafka_bootstrap, topic)
    assert sum(ends.values()) == MESSAGES
    assert await _committed(kafka_bootstrap, topic, group) == ends


@pytest.mark.slow
async def test_committed_offsets_survive_a_broker_restart(
    restartable_kafka_broker: Broker, kafka_topic_factory: TopicFactory
) -> None:
    broker = restartable_kafka_broker
    topic = kafka_topic_factory(partitions=PARTITIONS)
    group = f"g-{uuid.uuid4().hex[:8]}"

    producer = _producer(broker.bootstrap)
    await producer.start()
    try:
        await _produce(producer, topic, range(MESSAGES))
    finally:
        await producer.stop()

    # Consume part of the topic and commit exactly that.
    consumer = _group_consumer(broker.bootstrap, topic, group)
    await consumer.start()
    try:
        first = await _consume(consumer, MESSAGES // 2)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert MESSAGES // 2 <= len(first) < MESSAGES
    committed_before = await _committed(broker.bootstrap, topic, group)

    await asyncio.to_thread(broker.restart)

    assert await _committed(broker.bootstrap, topic, group) == committed_before
    # The group resumes where it committed: exactly the rest, no duplicates.
    consumer = _group_consumer(broker.bootstrap, topic, group)
    await consumer.start()
    try:
        rest = await _consume(consumer, MESSAGES - len(first))
        extra = await consumer.getmany(timeout_ms=300)
    finally:
        await consumer.stop()
    assert not any(extra.values())
    assert _values(first + rest) == list(range(MESSAGES))


@pytest.mark.slow
async def test_running_clients_survive_a_broker_restart(
    restartable_kafka_broker: Broker, kafka_topic_factory: TopicFactory
) -> None:
    broker = restartable_kafka_broker
    topic = kafka_topic_factory(partitions=PARTITIONS)
    group = f"g-{uuid.uuid4().hex[:8]}"
    half = MESSAGES // 2

    producer = _producer(broker.bootstrap)
    consumer = _group_consumer(broker.bootstrap, topic, group)
    await producer.start()
    try:
        await consumer.start()
        try:
            await _produce(producer, topic, range(half))
            before = await _consume(consumer, half)
            await consumer.commit()

            # Same clients, across a stop/start of the broker on the same port.
            await asyncio.to_thread(broker.restart)

            await _produce(producer, topic, range(half, MESSAGES))
            after = await _consume(consumer, MESSAGES - len(before))
            await consumer.commit()
        finally:
            await consumer.stop()
    finally:
        await producer.stop()

    assert _values(before + after) == list(range(MESSAGES))
    ends = await _end_offsets(broker.bootstrap, topic)
    assert sum(ends.values()) == MESSAGES
    assert await _committed(broker.bootstrap, topic, group) == ends
