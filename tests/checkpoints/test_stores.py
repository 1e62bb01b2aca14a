"""Both stores keep the newest good checkpoint and the one before it, and fall back to it.

The directory store on a temporary folder; the Kafka store on the real local broker
(a compacted topic it creates itself), with a state larger than one message.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from monitor.checkpoints import Checkpoint, CheckpointError, Store, key_of
from monitor.checkpoints.directory import DirectoryStore
from monitor.checkpoints.kafka import KafkaStore
from monitor.kafka_client import KafkaConfig
from tests.support.kafka import acreate_topic

MakeStore = Callable[[], Store]


def cp(offset: int, size: int = 100) -> Checkpoint:
    return Checkpoint(offset, os.urandom(size), 1_796_000_000_000 + offset)


@pytest.fixture(params=["directory", "kafka"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    """Stores over one place (a folder, a topic): a second one is another process."""
    started: list[Store] = []
    if request.param == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        config = KafkaConfig(bootstrap_servers=[bootstrap], group_id="g", topics=["t"])
        topic = f"ckpt-{uuid.uuid4().hex[:8]}.checkpoints"

        def make() -> Store:
            s = KafkaStore(config, topic, replication_factor=1, chunk_bytes=64 * 1024)
            started.append(s)
            return s
    else:

        def make() -> Store:
            s = DirectoryStore(tmp_path / "checkpoints")
            started.append(s)
            return s

    yield make
    for s in started:
        await s.stop()


async def test_a_saved_checkpoint_loads_in_another_process(make_store: MakeStore) -> None:
    a = make_store()
    await a.start()
    first, big = cp(10), cp(20, size=300_000)  # several chunks in Kafka
    assert await a.save({key_of("events", 0): first, key_of("events", 1): big}) > 300_000
    b = make_store()
    await b.start()
    got = await b.load([key_of("events", 0), key_of("events", 1), key_of("events", 2)])
    assert got["events.0"].checkpoint == first and got["events.0"].fell_back is None
    assert got["events.1"].checkpoint == big
    assert got["events.2"].checkpoint is None  # never written: start from the committed offset


async def test_the_newest_wins_and_saves_alternate_so_the_previous_stays(make_store: MakeStore) -> None:
    a = make_store()
    await a.start()
    for offset in (1, 2, 3):
        await a.save({"events.0": cp(offset)})
    b = make_store()
    await b.start()
    assert (await b.load(["events.0"]))["events.0"].checkpoint.offset == 3  # type: ignore[union-attr]
    await b.save({"events.0": cp(4)})  # the new owner writes on from what it read
    c = make_store()
    await c.start()
    assert (await c.load(["events.0"]))["events.0"].checkpoint.offset == 4  # type: ignore[union-attr]


async def test_directory_corruption_falls_back_then_is_an_error(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    await store.start()
    await store.save({"events.0": cp(1)})
    await store.save({"events.0": cp(2)})
    current = tmp_path / "events.0.ckpt"
    blob = bytearray(current.read_bytes())
    blob[-1] ^= 0xFF  # a flipped byte at rest
    current.write_bytes(bytes(blob))
    loaded = (await store.load(["events.0"]))["events.0"]
    assert loaded.checkpoint is not None and loaded.checkpoint.offset == 1
    assert loaded.fell_back is not None and "checksum" in loaded.fell_back
    (tmp_path / "events.0.prev.ckpt").write_bytes(b"garbage")
    gone = (await store.load(["events.0"]))["events.0"]
    assert gone.checkpoint is None and gone.error is not None
    assert "no readable checkpoint for events.0" in gone.error
    assert not list(tmp_path.glob("*.tmp"))


async def test_kafka_torn_save_falls_back_to_the_previous_slot(kafka_bootstrap: str) -> None:
    config = KafkaConfig(bootstrap_servers=[kafka_bootstrap], group_id="g", topics=["t"])
    topic = f"ckpt-{uuid.uuid4().hex[:8]}.checkpoints"
    store = KafkaStore(config, topic, replication_factor=1, chunk_bytes=1000)
    await store.start()
    try:
        await store.save({"events.0": cp(1, 2500)})
        await store.save({"events.0": cp(2, 2500)})  # slot b, its manifest names slot a as prev
        # A crash in the next save: chunks of slot a rewritten, no manifest yet; and one
        # chunk of slot b lost (a torn segment): the manifest's slot is unreadable.
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"x" * 10, key=b"events.0#b#1")
        finally:
            await producer.stop()
        loaded = (await KafkaStore(config, topic).load(["events.0"]))["events.0"]
        assert loaded.checkpoint is not None and loaded.checkpoint.offset == 1
        assert loaded.fell_back is not None and "slot b" in loaded.fell_back
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            configs = {name: value for name, value, *_ in described.resources[0][4]}
        finally:
            await admin.close()
        assert configs["cleanup.policy"] == "compact"
    finally:
        await store.stop()


async def test_kafka_a_manifest_that_parses_but_is_none_is_corrupt_not_unavailable(kafka_bootstrap: str) -> None:
    """A readable record of the wrong shape under a key must fall back or be an error for
    that key (on_corrupt decides), never an exception the keeper retries for ever."""
    config = KafkaConfig(bootstrap_servers=[kafka_bootstrap], group_id="g", topics=["t"])
    topic = f"ckpt-{uuid.uuid4().hex[:8]}.checkpoints"
    store = KafkaStore(config, topic, replication_factor=1)
    await store.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b'["not", "a", "manifest"]', key=b"events.0")
            await producer.send_and_wait(topic, b'{"slot": "a"}', key=b"events.1")
        finally:
            await producer.stop()
        got = await KafkaStore(config, topic).load(["events.0", "events.1"])
        for key in ("events.0", "events.1"):
            assert got[key].checkpoint is None and got[key].error is not None, got[key]
    finally:
        await store.stop()


async def test_kafka_a_topic_that_deletes_old_checkpoints_is_refused(kafka_bootstrap: str) -> None:
    config = KafkaConfig(bootstrap_servers=[kafka_bootstrap], group_id="g", topics=["t"])
    topic = f"ckpt-{uuid.uuid4().hex[:8]}.checkpoints"
    await acreate_topic(kafka_bootstrap, topic, configs={"cleanup.policy": "compact,delete"})
    store = KafkaStore(config, topic, replication_factor=1)
    with pytest.raises(CheckpointError, match=r"cleanup.policy=compact,delete: it must be compact"):
        await store.start()
    await store.stop()
