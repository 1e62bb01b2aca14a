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

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RecordTooLargeError

from monitor import kafka_client
from monitor.configtypes import TextList
from monitor.engine.alert import Alert
from monitor.kafka_client import KafkaConfig
from monitor.outputs.base import Output, OutputConfigBase, Refused

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

    async def _send(self, alerts: Sequence[Alert]) -> None:
        """Every alert the broker takes is acknowledged before this returns; one it refuses
        as too large (the producer's ``max_request_size`` or the topic's
        ``max.message.bytes``) is reported in :class:`Refused`, never retried."""
        producer = self._producer
        refused: list[tuple[Alert, str]] = []
        sent: list[tuple[Alert, Any]] = []
        for a in alerts:
            try:
                sent.append((a, await producer.send(self.topic, value=a.to_json(), key=a.id.encode())))
            except TOO_LARGE as exc:
                refused.append((a, f"{type(exc).__name__}: {exc}"))
        results = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
        again: list[Alert] = []
        for (a, _), r in zip(sent, results, strict=True):
            if isinstance(r, TOO_LARGE):
                again.append(a)
            elif isinstance(r, BaseException):
                raise r
        # The broker judges a whole record batch: an alert that fits may share the batch
        # of one that does not. Each is tried alone before it counts as refused.
        for a in again:
            try:
                await (await producer.send(self.topic, value=a.to_json(), key=a.id.encode()))
            except TOO_LARGE as exc:
                refused.append((a, f"{type(exc).__name__}: {exc}"))
        if refused:
            raise Refused(refused)

    async def _flush(self) -> None:
        if self._producer is not None:
            await self._producer.flush()

    async def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
