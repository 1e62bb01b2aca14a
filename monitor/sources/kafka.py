"""Data-access events from Kafka: batches, at-least-once commits, dead letters, reconnects.

The daemon holds :attr:`KafkaSource.lock` while it processes a batch; a rebalance waits
for it, commits what was processed, then lets the partitions go, so a partition's new
owner starts exactly after the last event whose alerts were delivered. Offsets are
committed only for processed events, and only after their alerts and dead letters were
acknowledged (the caller's ``before_commit`` flushes outputs first).

aiokafka reconnects by itself once started, so a broker restart needs nothing here but
patience; what it does not do is start against a broker that is down, which
:meth:`KafkaSource.start` retries with backoff. Commits and dead letters that fail are
retried; a commit that cannot succeed in time is left for the next one, which is safe
because commits only move forward over processed events.

A stop (the event given to :meth:`KafkaSource.start`) interrupts every wait: a fetch
(also one stuck in a rebalance), the backoff between retries, and dead letters the broker
keeps refusing, which raise :class:`~monitor.outputs.base.Abandoned` so that the batch in
hand is not marked processed and is read again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    CorruptRecordException,
    IllegalStateError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from monitor.config import KafkaConfig
from monitor.outputs.base import Abandoned, Backoff, wait_or_stop
from monitor.telemetry import Telemetry

Records = dict[TopicPartition, list[Any]]  # aiokafka ConsumerRecords by partition
HEADER_PREFIX = "exfil_monitor."
_NOT_RETRIABLE = (CommitFailedError, IllegalStateError)  # the partitions have moved on
# A dead letter the broker refuses as such, however often it is tried: sent truncated.
_REFUSED = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError, CorruptRecordException)
TRUNCATED_BYTES = 64 * 1024  # what a truncated dead letter keeps of the key and of the value


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.source._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.source._assigned(assigned)


class KafkaSource:
    def __init__(self, config: KafkaConfig, telemetry: Telemetry, *,
                 before_commit: Callable[[], Awaitable[None]] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.config = config
        self.telemetry = telemetry
        self.before_commit = before_commit
        self.monotonic = monotonic
        self.wall_clock = wall_clock  # aiokafka stamps fetch responses with wall-clock time
        self.lock = asyncio.Lock()
        self.joined = False
        self.problem: str | None = "not started"
        self.newest: dict[TopicPartition, int] = {}  # newest event time per assigned partition
        # The partitions the group gave us, as the rebalance listener saw it. aiokafka's own
        # assignment() can change under a batch (a new topic matching topic_pattern
        # replaces the subscription before any revoke callback).
        self.assignment: set[TopicPartition] = set()
        self._stopping: asyncio.Event | None = None
        self._processed: dict[TopicPartition, int] = {}  # next offset, after processed events
        self._committed: dict[TopicPartition, int] = {}
        self._last_commit = 0.0
        self._is_connected: bool | None = None
        self.outage: str | None = None  # set while fetches go unanswered
        self._consumer: Any = None
        self._producer: Any = None
        self._backoff = Backoff(config.retry_backoff / 1000, config.retry_backoff_max / 1000)

    # -------------------------------------------------------------- lifecycle

    async def start(self, stopping: asyncio.Event) -> bool:
        """Connect and subscribe, retrying while the broker is unreachable.

        Returns False when asked to stop before it could connect.
        """
        c = self.config
        self._stopping = stopping
        while not stopping.is_set():
            consumer = AIOKafkaConsumer(
                **c.client_options(), group_id=c.group_id, enable_auto_commit=False,
                auto_offset_reset=c.auto_offset_reset, max_poll_records=c.max_batch,
                fetch_max_wait_ms=c.fetch_max_wait, fetch_max_bytes=c.fetch_max_bytes,
                max_partition_fetch_bytes=c.max_partition_fetch_bytes,
                session_timeout_ms=c.session_timeout, heartbeat_interval_ms=c.heartbeat_interval,
                max_poll_interval_ms=c.max_poll_interval,
            )  # fmt: skip
            producer = None
            try:
                await consumer.start()
                if c.dead_letter_topic:
                    # Larger than any record the consumer fetches, with room for our headers.
                    producer = AIOKafkaProducer(**c.client_options(), acks="all", enable_idempotence=True,
                                                max_request_size=c.max_partition_fetch_bytes + 65536)  # fmt: skip
                    await producer.start()
            except (KafkaError, OSError) as exc:
                for client in (producer, consumer):
                    if client is not None:
                        await _quietly(client.stop())
                self._set_problem(f"broker unreachable: {exc}", "connect")
                await _wait(stopping, self._backoff.next())
                continue
            listener = _Listener(self)
            if c.topic_pattern:
                consumer.subscribe(pattern=c.topic_pattern, listener=listener)
            else:
                consumer.subscribe(topics=list(c.topics), listener=listener)
            self._consumer, self._producer = consumer, producer
            self._backoff.reset()
            self.problem = "joining the consumer group"
            self._connected(True)
            return True
        return False

    async def stop(self) -> None:
        """Commit what was processed, leave the group (so partitions move at once), close.

        Each step is bounded by ``request_timeout``: with the broker gone, a stop that
        hangs would be killed anyway, and uncommitted events are only read again.
        """
        consumer, producer = self._consumer, self._producer
        limit = self.config.request_timeout / 1000
        if consumer is not None:
            async with _locked(self.lock, limit) as locked:  # a revoke may hold it
                if locked:
                    await _quietly(self._commit(set(self._processed), attempts=3), limit)
            await _quietly(consumer.stop(), limit)  # sends LeaveGroup
        if producer is not None:
            await _quietly(producer.stop(), limit)
        self._consumer = self._producer = None
        self.joined = False
        self.problem = "stopped"
        self._connected(False)

    def ready(self) -> tuple[bool, str]:
        if self.outage is not None:
            return False, self.outage
        if self.joined:
            return True, "consuming"
        return False, self.problem or "not joined"

    # -------------------------------------------------------------- reading

    async def fetch(self) -> Records:
        """One batch (possibly empty), at most ``max_batch`` records; empty once stopping.

        ``getmany`` ignores its timeout while the group rebalances (it waits for the
        assignment, for as long as the slowest member takes), so it is raced with the stop.
        """
        c = self.config
        stopping = self._stopping
        try:
            getmany = self._consumer.getmany(timeout_ms=c.poll_timeout, max_records=c.max_batch)
            if stopping is None:
                records: Records = await getmany
            else:
                fetch, stop = asyncio.ensure_future(getmany), asyncio.ensure_future(stopping.wait())
                await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if not fetch.done():
                    fetch.cancel()
                    await asyncio.gather(fetch, return_exceptions=True)
                    return {}
                records = fetch.result()
        except KafkaError as exc:
            self._set_problem(f"fetch failed: {exc}", "fetch")
            await wait_or_stop(stopping, self._backoff.next())
            return {}
        self._backoff.reset()
        if not records:
            self._check_silence()
        elif self.outage is not None:
            self._silence_over()
        return records

    def _check_silence(self) -> None:
        """Notice a broker outage while running: aiokafka reconnects quietly, but the fetch
        responses (which come every ``fetch_max_wait`` even on an idle topic) stop."""
        consumer = self._consumer
        assigned = consumer.assignment() if consumer is not None and self.joined else set()
        stamps = [consumer.last_poll_timestamp(tp) for tp in assigned]
        if not stamps or None in stamps:
            return
        silent = self.wall_clock() - max(stamps) / 1000
        if silent * 1000 > max(self.config.session_timeout, 5 * self.config.fetch_max_wait):
            if self.outage is None:
                self.outage = f"broker unreachable: no fetch response for {silent:.0f}s"
                self.telemetry.source_error("fetch", self.outage)
                self._connected(False)
        elif self.outage is not None:
            self._silence_over()

    def _silence_over(self) -> None:
        self.outage = None
        self._connected(True)

    def owned(self, records: Records) -> Records:
        """Drop records of partitions revoked since they were fetched: their new owner
        reads them again from the committed offset."""
        return {tp: recs for tp, recs in records.items() if tp in self.assignment and recs}

    def observe(self, tp: TopicPartition, newest_event_ms: int) -> None:
        if newest_event_ms > self.newest.get(tp, newest_event_ms - 1):
            self.newest[tp] = newest_event_ms

    def clock(self, oldest_in_batch: dict[TopicPartition, int]) -> int | None:
        """The forgetting clock for a batch: the oldest of the assigned partitions' newest
        event times, so a partition that lags behind does not lose its groups early.

        The engine uses one clock for a whole batch, so it must not run ahead of any event
        in it: each partition counts with its newest time *before* this batch, or, if it
        brings its first events now, their oldest time. A partition that has delivered
        nothing yet does not hold the clock back.
        """
        known = {**oldest_in_batch, **self.newest}
        return min(known.values()) if known else None

    def processed(self, records: Records) -> None:
        """Mark records as done (alerts delivered, dead letters acknowledged)."""
        for tp, recs in records.items():
            if recs and tp in self.assignment:
                self._processed[tp] = recs[-1].offset + 1
        current = self._consumer.assignment()  # highwater() asserts the partition is in it
        for tp in records:
            if tp not in current:
                continue
            high, position = self._consumer.highwater(tp), self._processed.get(tp)
            if high is not None and position is not None:
                self.telemetry.consumer_lag(tp.topic, tp.partition, max(0, high - position))

    async def maybe_commit(self) -> None:
        if self.monotonic() - self._last_commit >= self.config.commit_interval / 1000:
            await self._commit(set(self._processed), attempts=1)

    # -------------------------------------------------------------- dead letters

    async def dead_letter(self, items: Sequence[tuple[Any, str]]) -> None:
        """Produce unusable records to the dead-letter topic unchanged, with headers saying
        why and where from; return only when the broker has all of them.

        A record the broker refuses for good (too large for the topic, invalid) is sent
        truncated instead (see :func:`_truncated`), and counted; one refused even so is
        counted and logged, and dropped. A stop while retrying raises :class:`Abandoned`.
        """
        if not items or self._producer is None:
            return
        producer, topic = self._producer, self.config.dead_letter_topic

        async def one(record: Any, reason: str) -> BaseException | None:
            headers = [*(record.headers or ()), *_headers(record, reason)]
            key, value = record.key, record.value
            for last in (False, True):
                try:
                    await (await producer.send(topic, value=value, key=key, headers=headers))
                except _REFUSED as exc:
                    if last:
                        self.telemetry.source_error("dead_letter_dropped", f"{_where(record)} refused: {exc!r}")
                        return None
                    self.telemetry.source_error("dead_letter_truncated", f"{_where(record)} refused: {exc!r}")
                    key, value, headers = _truncated(record, reason)
                    continue
                except KafkaError as exc:
                    return exc  # type: ignore[no-any-return]
                return None
            return None  # unreachable

        pending = list(items)
        backoff = Backoff(self.config.retry_backoff / 1000, self.config.retry_backoff_max / 1000)
        while pending:
            errors = await asyncio.gather(*(one(record, reason) for record, reason in pending))
            sent = Counter(reason for (_, reason), e in zip(pending, errors, strict=True) if e is None)
            for reason, n in sent.items():
                self.telemetry.dead_lettered(reason, n)
            failed = [item for item, e in zip(pending, errors, strict=True) if e is not None]
            if failed:
                error = next(e for e in errors if e is not None)
                self.telemetry.source_error("dead_letter", f"{len(failed)} not acknowledged: {error!r}")
                if await wait_or_stop(self._stopping, backoff.next()):
                    raise Abandoned(f"stopping; {len(failed)} dead letters not acknowledged: {error!r}")
            pending = failed

    # -------------------------------------------------------------- commits and rebalances

    async def _commit(self, partitions: set[TopicPartition], attempts: int) -> None:
        self._last_commit = self.monotonic()
        if self._consumer is None:
            return
        current = self._consumer.assignment()  # aiokafka refuses to commit any other partition
        offsets = {
            tp: off for tp, off in self._processed.items()
            if tp in partitions and tp in current and self._committed.get(tp) != off
        }  # fmt: skip
        if not offsets:
            return
        if self.before_commit is not None:
            await self.before_commit()
        for attempt in range(attempts):
            try:
                async with asyncio.timeout(self.config.request_timeout / 1000):
                    await self._consumer.commit(offsets)
            except _NOT_RETRIABLE as exc:
                self.telemetry.commit_failed(f"partitions moved to another consumer: {exc!r}")
                return
            except (KafkaError, TimeoutError) as exc:
                self.telemetry.commit_failed(repr(exc))
                if attempt + 1 < attempts:  # bounded: a stop commits with attempts too
                    await asyncio.sleep(self._backoff.next())
                continue
            self._committed.update(offsets)
            self.telemetry.committed(len(offsets))
            return

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        self.joined = False
        self.problem = "rebalancing"
        # The batch in hand finishes first; one stuck (an output failing) for longer than
        # request_timeout must not hold up the whole group: its partitions are then given
        # up without a commit, and their new owner reads them again.
        async with _locked(self.lock, self.config.request_timeout / 1000) as locked:
            if locked:
                with contextlib.suppress(Abandoned):  # a stop while flushing: no commit
                    await self._commit(set(revoked), attempts=2)
            for tp in revoked:  # newest stays: see _assigned
                self._processed.pop(tp, None)
                self._committed.pop(tp, None)
            self.assignment -= revoked
        self.telemetry.partitions_revoked([(tp.topic, tp.partition) for tp in revoked])

    def _assigned(self, assigned: set[TopicPartition]) -> None:
        # aiokafka revokes every partition at each rebalance, also those it gives straight
        # back: their newest event times (the forgetting clock) are kept.
        for tp in set(self.newest) - assigned:
            del self.newest[tp]
        self.assignment = set(assigned)
        self.joined = True
        self.problem = None
        if self.outage is not None:  # the group coordinator answered: the broker is back
            self._silence_over()
        self.telemetry.partitions_assigned([(tp.topic, tp.partition) for tp in assigned])

    def _set_problem(self, problem: str, kind: str) -> None:
        self.problem = problem
        self.telemetry.source_error(kind, problem)
        if kind == "connect":
            self._connected(False)

    def _connected(self, connected: bool) -> None:
        if connected != self._is_connected:
            self._is_connected = connected
            self.telemetry.source_connected(connected)


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


@contextlib.asynccontextmanager
async def _locked(lock: asyncio.Lock, timeout: float) -> AsyncIterator[bool]:
    """Hold ``lock`` if it can be had within ``timeout``; yields whether it is held."""
    try:
        async with asyncio.timeout(timeout):
            await lock.acquire()
    except TimeoutError:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def _quietly(aw: Awaitable[Any], timeout: float | None = None) -> None:
    """Await, ignoring failure: closing a client that never fully started, or giving up.

    aiokafka's ``stop()`` can raise CancelledError from its own cancelled internals when
    the broker is down; that is a failure to ignore too, unless this task itself is
    being cancelled, which must go on."""
    try:
        async with asyncio.timeout(timeout):
            await aw
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # the caller is shutting down either way
        pass
