"""Dead letters: unusable Kafka records produced, unchanged, to the dead-letter topic.

Split from :mod:`monitor.sources.kafka` because it is a responsibility of its own: the
headers that say why and where a record came from, the truncated form of a record the
broker refuses whole, and the retries that make a batch wait until the broker has every
dead letter (or give up on a stop, raising :class:`~monitor.retry.Abandoned` so
that the batch is not marked processed). :meth:`KafkaSource.dead_letter
<monitor.sources.kafka.KafkaSource.dead_letter>` calls :func:`produce` with its producer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from monitor.retry import Backoff
from monitor.sources.produce import until_acknowledged
from monitor.telemetry import Telemetry

HEADER_PREFIX = "exfil_monitor."
# A dead letter the broker refuses as such, however often it is tried: sent truncated.
_REFUSED = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, CorruptRecordException)
TRUNCATED_BYTES = 64 * 1024  # what a truncated dead letter keeps of the key and of the value


async def produce(producer: Any, topic: str | None, items: Sequence[tuple[Any, str]],
                  telemetry: Telemetry, backoff: Backoff,
                  stopping: asyncio.Event | None) -> None:  # fmt: skip
    """Produce unusable records to ``topic`` unchanged, with headers saying why and where
    from; return only when the broker has all of them.

    A record the broker refuses for good (too large for the topic, invalid) is sent
    truncated instead (see :func:`_truncated`), and counted; one refused even so is
    counted and logged, and dropped. A stop while retrying raises :class:`Abandoned`.
    """

    async def one(record: Any, reason: str) -> BaseException | None:
        headers = [*(record.headers or ()), *_headers(record, reason)]
        key, value = record.key, record.value
        for last in (False, True):
            try:
                await (await producer.send(topic, value=value, key=key, headers=headers))
            except _REFUSED as exc:
                if last:
                    telemetry.source_error("dead_letter_dropped", f"{_where(record)} refused: {exc!r}")
                    return None
                telemetry.source_error("dead_letter_truncated", f"{_where(record)} refused: {exc!r}")
                key, value, headers = _truncated(record, reason)
                continue
            except KafkaError as exc:
                return exc  # type: ignore[no-any-return]
            return None
        return None  # unreachable

    def sent(done: list[tuple[Any, str]]) -> None:
        for reason, n in Counter(reason for _, reason in done).items():
            telemetry.dead_lettered(reason, n)

    async def send(pending: list[tuple[Any, str]]) -> list[BaseException | None]:
        return await asyncio.gather(*(one(record, reason) for record, reason in pending))

    await until_acknowledged(items, send, sent, what="dead letter", telemetry=telemetry, backoff=backoff,
                             stopping=stopping)  # fmt: skip


def _where(record: Any) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


def _truncated(record: Any, reason: str) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of a dead letter the broker refused whole: the key and the
    value cut to their first :data:`TRUNCATED_BYTES`, the record's own headers left out,
    and ``exfil_monitor.truncated`` giving the original value's size in bytes."""
    key, value = record.key, record.value
    size = str(len(value) if value is not None else 0).encode()
    return (
        key[:TRUNCATED_BYTES] if key is not None else None,
        value[:TRUNCATED_BYTES] if value is not None else None,
        [*_headers(record, reason), (f"{HEADER_PREFIX}truncated", size)],
    )


def _headers(record: Any, reason: str) -> list[tuple[str, bytes]]:
    p = HEADER_PREFIX
    return [
        (f"{p}reason", reason.encode()),
        (f"{p}source_topic", record.topic.encode()),
        (f"{p}source_partition", str(record.partition).encode()),
        (f"{p}source_offset", str(record.offset).encode()),
        (f"{p}source_timestamp", str(record.timestamp).encode()),
    ]
