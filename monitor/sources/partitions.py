"""Partition bookkeeping for :class:`~monitor.sources.kafka.KafkaSource`: which partitions
the group gave us, how far each was processed and committed, and the commits themselves.

Split from :mod:`monitor.sources.kafka` so that the rules for offsets (commit only
processed events, only of partitions still ours, only after their checkpoint) read in one
place. The source keeps the lock and the
group's life cycle; the :class:`Listener` hands rebalances back to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from monitor.retry import Backoff
from monitor.telemetry import Telemetry

Records = dict[TopicPartition, list[Any]]  # aiokafka ConsumerRecords by partition
_NOT_RETRIABLE = (CommitFailedError, IllegalStateError)  # the partitions have moved on


class _Rebalanced(Protocol):
    async def _revoked(self, revoked: set[TopicPartition]) -> None: ...

    async def _assigned(self, assigned: set[TopicPartition]) -> None: ...


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: _Rebalanced) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.source._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.source._assigned(assigned)


class Partitions:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        # The partitions the group gave us, as the rebalance listener saw it. aiokafka's own
        # assignment() can change under a batch (a new topic matching topic_pattern
        # replaces the subscription before any revoke callback).
        self.assignment: set[TopicPartition] = set()
        self.processed: dict[TopicPartition, int] = {}  # next offset, after processed events
        self.committed: dict[TopicPartition, int] = {}

    def owned(self, records: Records) -> Records:
        """Drop records of partitions revoked since they were fetched: their new owner
        reads them again from the committed offset."""
        return {tp: recs for tp, recs in records.items() if tp in self.assignment and recs}

    def mark_processed(self, records: Records, consumer: Any) -> None:
        """Mark records as done and report the lag of their partitions."""
        for tp, recs in records.items():
            if recs and tp in self.assignment:
                self.processed[tp] = recs[-1].offset + 1
        current = consumer.assignment()  # highwater() asserts the partition is in it
        for tp in records:
            if tp not in current:
                continue
            high, position = consumer.highwater(tp), self.processed.get(tp)
            if high is not None and position is not None:
                self.telemetry.consumer_lag(tp.topic, tp.partition, max(0, high - position))

    async def commit(self, consumer: Any, partitions: set[TopicPartition], attempts: int, *,
                     before_commit: Callable[[Collection[TopicPartition]], Awaitable[bool]] | None,
                     timeout: float, backoff: Backoff) -> None:  # fmt: skip
        """Commit the processed offsets of ``partitions`` not committed yet, after their
        checkpoint (``before_commit``, which flushes the outputs first; when it fails,
        nothing is committed); ``attempts`` bounds the retries."""
        current = consumer.assignment()  # aiokafka refuses to commit any other partition
        offsets = {
            tp: off for tp, off in self.processed.items()
            if tp in partitions and tp in current and self.committed.get(tp) != off
        }  # fmt: skip
        if not offsets:
            return
        if before_commit is not None and not await before_commit(set(offsets)):
            return
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(timeout):
                    await consumer.commit(offsets)
            except _NOT_RETRIABLE as exc:
                self.telemetry.commit_failed(f"partitions moved to another consumer: {exc!r}")
                return
            except (KafkaError, TimeoutError) as exc:
                self.telemetry.commit_failed(repr(exc))
                if attempt + 1 < attempts:  # bounded: a stop commits with attempts too
                    await asyncio.sleep(backoff.next())
                continue
            self.committed.update(offsets)
            self.telemetry.committed(len(offsets))
            return

    def revoke(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.processed.pop(tp, None)
            self.committed.pop(tp, None)
        self.assignment -= revoked

    def assign(self, assigned: set[TopicPartition]) -> None:
        self.assignment = set(assigned)
