"""The kafka output against a real broker: keyed by alert id, acknowledged before returning."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from monitor.config import KafkaConfig, KafkaOutputConfig
from monitor.outputs.base import Rejected
from monitor.outputs.kafka import KafkaOutput
from tests.outputs.conftest import MakeAlert

pytestmark = pytest.mark.kafka


def source(bootstrap: str) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=[bootstrap], topics=["events"], request_timeout="5s")  # type: ignore[arg-type]


async def read_all(bootstrap: str, topic: str, n: int, timeout_s: float = 30.0) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return got


async def test_alerts_land_on_the_topic_keyed_by_id(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], make_alert: MakeAlert
) -> None:
    topic = kafka_topic_factory(partitions=3, prefix="alerts")
    out = KafkaOutput.from_config(KafkaOutputConfig(type="kafka", topic=topic), source(kafka_bootstrap))
    assert out.client_options["bootstrap_servers"] == [kafka_bootstrap]
    await out.start()
    try:
        alerts = [make_alert(n) for n in range(5)]
        await out.send([a.to_dict() for a in alerts])  # returns once the broker acknowledged (acks=all)
    finally:
        await out.stop()
    got = await read_all(kafka_bootstrap, topic, 5)
    assert sorted(got) == sorted((a.id.encode(), a.to_json()) for a in alerts)
    assert {orjson.loads(v)["rule"] for _, v in got} == {"bulk-customer-read"}


async def test_an_unreachable_broker_fails_start_so_delivery_retries() -> None:
    out = KafkaOutput.from_config(
        KafkaOutputConfig(type="kafka", topic="alerts", bootstrap_servers=["127.0.0.1:1"]),
        source("127.0.0.1:1"),
    )
    with pytest.raises(Exception, match=r"[Uu]nable to bootstrap"):
        await out.start()
    assert not out.started
    await out.stop()


async def test_a_record_too_large_for_the_topic_is_rejected_with_its_index(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], make_alert: MakeAlert
) -> None:
    topic = kafka_topic_factory(partitions=1, prefix="alerts")
    out = KafkaOutput.from_config(KafkaOutputConfig(type="kafka", topic=topic), source(kafka_bootstrap))
    await out.start()
    big = {**make_alert(1).to_dict(), "description": "x" * 2_000_000}  # over max_request_size
    try:
        with pytest.raises(Rejected) as info:
            await out.send([make_alert(0).to_dict(), big, make_alert(2).to_dict()])
    finally:
        await out.stop()
    assert info.value.index == 1 and "TooLarge" in info.value.answer
    got = await read_all(kafka_bootstrap, topic, 1)
    assert [orjson.loads(v)["id"] for _, v in got][:1] == [make_alert(0).id]
