"""Alerts produced to a Kafka topic, keyed by alert id.

Keyed by id so that the copies a restarted daemon re-sends (at-least-once) land in the
same partition as the first, and a compacted topic or a consumer can drop them. ``acks``
is ``all`` and the producer idempotent, so a retried batch is not written twice by the
broker itself; ``send`` returns only after the broker acknowledged every alert.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RecordTooLargeError

from monitor import kafka_client
from monitor.configtypes import TextList
from monitor.kafka_client import KafkaConfig
from monitor.outputs.base import Output, OutputConfigBase, Record, Rejected

# Refusals no retry can change: the alert itself is too large for this producer or topic.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


class KafkaOutputConfig(OutputConfigBase):
    type: Literal["kafka"]
    topic: str
    bootstrap_servers: TextList | None = None  # None: the source's, with its security


class KafkaOutput(Output):
    kind = "kafka"

    def __init__(self, name: str, topic: str, client_options: dict[str, Any], *, send_timeout: float = 30.0) -> None:
        super().__init__(name, send_timeout=send_timeout)
        self.topic = topic
        self.client_options = client_options
        self._producer: Any = None

    @classmethod
    def from_config(cls, config: KafkaOutputConfig, source: KafkaConfig) -> KafkaOutput:
        """Same brokers and security as the source unless ``bootstrap_servers`` is given."""
        options = source.client_options(config.bootstrap_servers)
        return cls(config.label, config.topic, options, send_timeout=config.send_timeout / 1000)

    async def _open(self) -> None:
        producer = AIOKafkaProducer(**self.client_options, acks="all", enable_idempotence=True, linger_ms=5)
        try:
            await producer.start()
        except KafkaConnectionError as exc:  # "Unable to bootstrap" also for a refused password
            await producer.stop()
            raise KafkaConnectionError(await kafka_client.explain(exc, self.client_options)) from exc
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def _send(self, records: Sequence[Record]) -> None:
        """Every record the broker takes is acknowledged before this returns; the first it
        refuses as too large (the producer's ``max_request_size`` or the topic's
        ``max.message.bytes``) raises :class:`Rejected`, so the drain parks it and sends
        the ones after it again (at least once: consumers deduplicate on the id)."""
        producer = self._producer
        items = [(orjson.dumps(r), str(r.get("id", "")).encode()) for r in records]
        sent: list[Any] = []
        for value, key in items:
            try:
                sent.append(await producer.send(self.topic, value=value, key=key))
            except TOO_LARGE as exc:
                sent.append(exc)
        results = await asyncio.gather(*(f for f in sent if not isinstance(f, BaseException)), return_exceptions=True)
        it = iter(results)
        outcomes = [f if isinstance(f, BaseException) else next(it) for f in sent]
        for i, r in enumerate(outcomes):
            if isinstance(r, TOO_LARGE):
                # The broker judges a whole record batch: a record that fits may share
                # the batch of one that does not. Each is tried alone before it is refused.
                try:
                    await (await producer.send(self.topic, value=items[i][0], key=items[i][1]))
                except TOO_LARGE as exc:
                    raise Rejected(f"{type(exc).__name__}: {exc}", index=i, reason="too_large") from exc
            elif isinstance(r, BaseException):
                raise r

    async def _flush(self) -> None:
        if self._producer is not None:
            await self._producer.flush()

    async def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
