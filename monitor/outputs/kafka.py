"""Alerts produced to a Kafka topic, keyed by alert id.

Keyed by id so that the copies a restarted daemon re-sends (at-least-once) land in the
same partition as the first, and a compacted topic or a consumer can drop them. ``acks``
is ``all`` and the producer idempotent, so a retried batch is not written twice by the
broker itself; ``send`` returns only after the broker acknowledged every alert.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from monitor.config import KafkaConfig, KafkaOutputConfig
from monitor.engine.alert import Alert
from monitor.outputs.base import Output
from monitor.sources import connect_errors


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
            raise KafkaConnectionError(await connect_errors.explain(exc, self.client_options)) from exc
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def _send(self, alerts: Sequence[Alert]) -> None:
        producer = self._producer
        futures = [
            await producer.send(self.topic, value=a.to_json(), key=a.id.encode()) for a in alerts
        ]
        await asyncio.gather(*futures)

    async def _flush(self) -> None:
        if self._producer is not None:
            await self._producer.flush()

    async def _close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
