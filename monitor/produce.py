"""Producing events into Kafka: ``exfil-monitor simulate --to-kafka`` and the benchmarks.

Events are keyed by a field (``actor.id`` by default), as a shop's producers should key
them: one actor's events then stay in one partition, in order, which is what makes the
daemon's per-group results equal replay's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from monitor.event import Event, getter


async def produce(
    events: Iterable[Event],
    *,
    bootstrap: str,
    topic: str,
    key_field: str | None = "actor.id",
    rate: float | None = None,
    stamp: Callable[[Event], Event] | None = None,
    linger_ms: int = 5,
) -> int:
    """Send every event; with ``rate``, at that many events per second, steadily.

    ``stamp`` may rewrite an event just before it is sent (the latency benchmark puts the
    send time in). Returns the number sent, once the broker has acknowledged them all.
    """
    key_of = getter(key_field) if key_field else None
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all")
    await producer.start()
    sent = 0
    try:
        pending = []
        start = time.monotonic()
        for e in events:
            if rate is not None and sent % 50 == 0:
                delay = start + sent / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if stamp is not None:
                e = stamp(e)
            key = key_of(e) if key_of else None
            pending.append(
                await producer.send(
                    topic, orjson.dumps(e), key=None if key is None else str(key).encode()
                )
            )
            sent += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def create_topic(bootstrap: str, name: str, partitions: int = 1, *, timeout_s: float = 30.0,
                       configs: dict[str, str] | None = None) -> None:  # fmt: skip
    """Create a topic (with ``configs``, the topic's settings) and wait until every
    partition has a leader the broker reports (producing before that fails with
    NotLeaderForPartition and retries noisily)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
        deadline = time.monotonic() + timeout_s
        while True:
            (described,) = await admin.describe_topics([name])
            leaders = [p["leader"] for p in described["partitions"]]
            if described["error_code"] == 0 and len(leaders) == partitions and min(leaders) >= 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name!r} not ready after {timeout_s}s: {described}")
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
