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
keeps refusing, which raise :class:`~monitor.retry.Abandoned` so that the batch in
hand is not marked processed and is read again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from monitor import kafka_client
from monitor.event import PROVENANCE, Event, getter
from monitor.health import DEGRADED, NOT_READY, Condition
from monitor.kafka_client import KafkaConfig, TopicError, ensure_topic
from monitor.retry import Abandoned, Backoff, wait_or_stop
from monitor.sources import aio, deadletter, repartition
from monitor.sources.assignor import StickyAssignor
from monitor.sources.deadletter import HEADER_PREFIX, TRUNCATED_BYTES
from monitor.sources.partitions import Listener, Partitions, Records
from monitor.telemetry import Telemetry

__all__ = ["HEADER_PREFIX", "TRUNCATED_BYTES", "KafkaSource", "Records"]


class KafkaSource:
    def __init__(self, config: KafkaConfig, telemetry: Telemetry, *,
                 before_commit: Callable[[Collection[TopicPartition]], Awaitable[bool]] | None = None,
                 on_assign: Callable[[set[TopicPartition]], Awaitable[Mapping[TopicPartition, int | None]]] | None = None,
                 commit_interval: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        """``before_commit(partitions)`` checkpoints them (False: do not commit);
        ``on_assign(partitions)`` restores their state and says where to read each on from
        (an ``offset`` per partition, None for the committed one; a partition left out
        is not read at all)."""
        self.config = config
        self.telemetry = telemetry
        self.format_name = config.format
        self.timezone = config.timezone
        self.before_commit = before_commit
        self.on_assign = on_assign
        self.commit_interval = commit_interval
        # Assignments seen (a generation), the one the last fetch's records were taken in,
        # and the generation in which each partition was last sought: see owned().
        self._generation = 0
        self._fetch_generation = 0
        self._sought: dict[TopicPartition, int] = {}
        self._key_of = getter(config.key_field)
        self._mismatched_at: float | None = None  # monotonic time of the last key mismatch
        self.monotonic = monotonic
        self.wall_clock = wall_clock  # aiokafka stamps fetch responses with wall-clock time
        self.lock = asyncio.Lock()
        self.joined = False
        self.problem: str | None = "not started"
        self.partitions = Partitions(telemetry)  # assignment, offsets
        self._stopping: asyncio.Event | None = None
        self._last_commit = 0.0
        self._is_connected: bool | None = None
        self.outage: str | None = None  # set while fetches go unanswered
        self.paused = False  # a full spool: fetching waits (pause, resume)
        self._consumer: Any = None
        self._producer: Any = None
        self.internal_partitions = 0  # of the internal topic, known once started
        self.place = repartition.partitioner(1)  # a group key's internal partition, once started
        self._watch: asyncio.Future[None] | None = None
        self._backoff = Backoff(config.retry_backoff / 1000, config.retry_backoff_max / 1000)

    @property
    def assignment(self) -> set[TopicPartition]:
        return self.partitions.assignment  # as the rebalance listener saw it

    def bind(self, fmt: Any) -> None:
        """Messages are mapped by the daemon (one record, one message): nothing to frame."""

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"group_id": c.group_id, "topics": list(c.topics) or c.topic_pattern, "format": c.format}

    def where(self, tp: TopicPartition, record: Any) -> str:
        return f"{tp.topic}/{tp.partition}@{record.offset}"

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
                # Partitions stay where they were over a rebalance where they can, so the
                # state in memory is reused rather than restored from its checkpoint. One
                # protocol only: members offering two (this and round robin) were seen to
                # rebalance for ever when they joined at the same moment.
                partition_assignment_strategy=(StickyAssignor(),),
            )  # fmt: skip
            producer = None
            try:
                self.internal_partitions = await self._internal_topic()
                self.place = repartition.partitioner(self.internal_partitions)
                await consumer.start()
                # Dead letters and forwarded events. Larger than any record the consumer
                # fetches, with room for our headers; idempotent, so retries keep order.
                producer = AIOKafkaProducer(**c.client_options(), acks="all", enable_idempotence=True,
                                            max_request_size=c.max_partition_fetch_bytes + 65536,
                                            max_batch_size=FORWARD_BATCH_BYTES)  # fmt: skip
                await producer.start()
            except TopicError as exc:
                await aio.quietly(consumer.stop())
                self._set_problem(str(exc), "connect")
                await aio.wait(stopping, self._backoff.next())
                continue
            except (KafkaError, OSError) as exc:
                for client in (producer, consumer):
                    if client is not None:
                        await aio.quietly(client.stop())
                # aiokafka says "Unable to bootstrap" for a refused password too: ask why.
                self._set_problem(await kafka_client.explain(exc, c.client_options()), "connect")
                await aio.wait(stopping, self._backoff.next())
                continue
            listener = Listener(self)
            internal = c.repartition_topic  # read by the same group: see monitor.sources.repartition
            if c.topic_pattern:
                consumer.subscribe(pattern=_with_topic(c.topic_pattern, internal), listener=listener)
            else:
                consumer.subscribe(topics=[*c.topics, internal], listener=listener)
            self._consumer, self._producer = consumer, producer
            self._watch = asyncio.ensure_future(self._watch_silence(stopping))
            self._backoff.reset()
            self.problem = "joining the consumer group"
            self._connected(True)
            return True
        return False

    async def _internal_topic(self) -> int:
        """Make the internal topic if it is missing (with as many partitions as the most
        partitioned topic consumed, unless configured) and say how many partitions it has."""
        c = self.config
        topic = c.repartition_topic
        admin = AIOKafkaAdminClient(**c.client_options())
        await admin.start()
        try:
            listed = await admin.list_topics()
            if topic not in listed:
                wanted = c.repartition.partitions or await self._most_partitions(admin, listed)
                await ensure_topic(admin, topic, partitions=wanted, replication_factor=c.repartition.replication_factor,
                                   configs={}, what="internal topic")  # fmt: skip
        finally:
            await admin.close()
        parts, error = await kafka_client.describe_partitions(c.client_options(), topic)
        if error or not parts:
            raise TopicError(f"the internal topic {topic} cannot be read (error code {error})")
        return len(parts)

    async def _most_partitions(self, admin: AIOKafkaAdminClient, listed: list[str]) -> int:
        """The partition count of the most partitioned topic consumed; 1, and a warning, if
        none exists yet."""
        names = [t for t in listed if self.config.consumes(t)]
        described = await admin.describe_topics(names) if names else []
        most = max([len(d.get("partitions") or []) for d in described], default=0)
        if not most:
            self.telemetry.log.warning("repartition_topic_default", topic=self.config.repartition_topic, partitions=1,
                                       detail="no consumed topic exists yet to take the partition count from: set "
                                              "kafka.repartition.partitions")  # fmt: skip
        return most or 1

    async def stop(self) -> None:
        """Commit what was processed, leave the group (so partitions move at once), close.

        Each step is bounded by ``request_timeout``: with the broker gone, a stop that
        hangs would be killed anyway, and uncommitted events are only read again.
        """
        consumer, producer = self._consumer, self._producer
        limit = self.config.request_timeout / 1000
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        if consumer is not None:
            async with aio.locked(self.lock, limit) as locked:  # a revoke may hold it
                if locked:
                    await aio.quietly(self._commit(set(self.partitions.processed), attempts=3), limit)
            await aio.quietly(consumer.stop(), limit)  # sends LeaveGroup
        if producer is not None:
            await aio.quietly(producer.stop(), limit)
        self._consumer = self._producer = None
        self.joined = False
        self.problem = "stopped"
        self._connected(False)

    def condition(self) -> Condition | None:
        """For :class:`~monitor.health.Health`, evaluated at each probe: the silence of the
        broker is measured now, not at the last fetch, so a loop blocked in a commit or a
        retry cannot freeze the answer, and the reason shows the current age."""
        silent = self._silent_for()
        if silent is not None and silent > self.silence_limit:
            return Condition(NOT_READY, f"broker unreachable: no fetch response for {silent:.0f}s")
        if not self.joined:
            return Condition(NOT_READY, self.problem or "not joined")
        if self._mismatched_at is not None and self.monotonic() - self._mismatched_at < MISMATCH_MEMORY:
            return Condition(DEGRADED, f"records keyed by something other than kafka.key_field "
                                       f"({self.config.key_field}) in the last {MISMATCH_MEMORY // 60:.0f} minutes: "
                                       "their groups are split over partitions (exfil_monitor_key_mismatches_total)")  # fmt: skip
        return None

    @property
    def silence_limit(self) -> float:
        """Seconds without fetch responses before the broker counts as unreachable: half
        the session timeout (the group gives our partitions away at the full one), at least
        three fetch waits (a response comes every ``fetch_max_wait`` on an idle topic), and
        never more than nine tenths of the session timeout."""
        c = self.config
        return min(0.9 * c.session_timeout, max(3 * c.fetch_max_wait, c.session_timeout / 2)) / 1000

    def _silent_for(self) -> float | None:
        consumer = self._consumer
        if consumer is None or not self.joined:
            return None
        stamps = [consumer.last_poll_timestamp(tp) for tp in consumer.assignment()]
        if not stamps or None in stamps:
            return None
        return max(0.0, self.wall_clock() - float(max(stamps)) / 1000)

    # -------------------------------------------------------------- reading

    async def fetch(self) -> Records:
        """One batch (possibly empty), at most ``max_batch`` records; empty once stopping.

        ``getmany`` ignores its timeout while the group rebalances (it waits for the
        assignment, for as long as the slowest member takes), so it is raced with the stop.
        """
        c = self.config
        stopping = self._stopping
        try:
            getmany = self._getmany(c.poll_timeout, c.max_batch)
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

    async def _watch_silence(self, stopping: asyncio.Event) -> None:
        """Check for silence every second beside the loop: a loop blocked in a commit or
        a fetch waiting for a coordinator must not hide an outage from logs and metrics."""
        while not await wait_or_stop(stopping, 1.0):
            self._check_silence()

    def _check_silence(self) -> None:
        """Notice a broker outage while running: aiokafka reconnects quietly, but the fetch
        responses (which come every ``fetch_max_wait`` even on an idle topic) stop. This
        logs and counts it; readiness measures the silence itself (:meth:`condition`)."""
        silent = self._silent_for()
        if silent is None:
            return
        if silent > self.silence_limit:
            if self.outage is None:
                self.outage = f"broker unreachable: no fetch response for {silent:.0f}s"
                self.telemetry.source_error("fetch", self.outage)
                self._connected(False)
        elif self.outage is not None:
            self._silence_over()

    def _silence_over(self) -> None:
        self.outage = None
        self._connected(True)

    async def _getmany(self, timeout_ms: int, max_records: int) -> Records:
        """``getmany``, noting the assignment generation the records were taken in: from
        aiokafka draining its buffer to this line nothing else runs (no ``await``), so a
        seek after it is one the records predate (see :meth:`owned`)."""
        records: Records = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        self._fetch_generation = self._generation
        return records

    def owned(self, records: Records) -> Records:
        """Drop records of partitions revoked since they were fetched, and of partitions
        sought to their checkpoint's offset since: a batch taken from the committed
        offset while the assignment's restore ran is read again from the sought offset
        (processed twice otherwise). Records taken after the seek are aiokafka's to
        check: it discards those fetched from the old position."""
        owned = self.partitions.owned(records)
        sought = self._sought
        return {tp: recs for tp, recs in owned.items() if sought.get(tp, 0) <= self._fetch_generation}

    def partition(self, tp: TopicPartition) -> TopicPartition:
        return tp  # a Kafka partition is its own unit of state

    def offset_after(self, tp: TopicPartition, records: list[Any]) -> int:
        return int(records[-1].offset) + 1

    def held(self) -> set[TopicPartition]:
        return set(self.partitions.assignment)

    def check_keys(self, records: list[Any], where: list[str], good: list[tuple[Event, int]]) -> None:
        """Count records whose key is not their ``key_field`` value: a producer keying by
        something else splits groups over partitions (README "Scaling out")."""
        keys = {w: r.key for w, r in zip(where, records, strict=True)}
        key_of = self._key_of
        bad, example = 0, None
        for e, _ in good:
            key = keys.get(str(e.get(PROVENANCE)))
            value = key_of(e)
            expected = None if value is None else str(value).encode()
            if key != expected:
                bad += 1
                if example is None:
                    example = (e.get(PROVENANCE), key, expected)
        if example is not None:
            self._mismatched_at = self.monotonic()
            w, key, expected = example
            self.telemetry.key_mismatch(bad, str(w), _text(key), _text(expected), self.config.key_field)

    def pause(self) -> None:
        """Stop fetching (a full spool) without leaving the group: heartbeats go on, and
        the pause is applied again to whatever a rebalance assigns (:meth:`_assigned`)."""
        self.paused = True
        if self._consumer is not None:
            self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        self.paused = False
        if self._consumer is not None:
            self._consumer.resume(*self._consumer.assignment())

    def caught_up(self) -> bool:
        """Every assigned partition processed to its high watermark as last fetched."""
        consumer = self._consumer
        if consumer is None or not self.joined:
            return False
        for tp in self.partitions.assignment & consumer.assignment():  # highwater asserts assigned
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = self.partitions.processed.get(tp, self.partitions.committed.get(tp))
            if done is None:
                continue  # nothing read yet: an idle partition, or one never written
            if done < high:
                return False
        return True

    def processed(self, records: Records) -> None:
        """Mark records as done (alerts delivered, dead letters acknowledged)."""
        self.partitions.mark_processed(records, self._consumer)

    async def maybe_commit(self) -> None:
        if self.monotonic() - self._last_commit >= self.commit_interval:
            await self._commit(set(self.partitions.processed), attempts=1)

    # -------------------------------------------------------------- dead letters

    async def dead_letter(self, items: Sequence[tuple[Any, str]]) -> None:
        """Produce unusable records to the dead-letter topic; return only when the broker
        has all of them (see :func:`monitor.sources.deadletter.produce`)."""
        if not items or self._producer is None or not self.config.dead_letter_topic:
            return
        backoff = Backoff(self.config.retry_backoff / 1000, self.config.retry_backoff_max / 1000)
        await deadletter.produce(self._producer, self.config.dead_letter_topic, items,
                                 self.telemetry, backoff, self._stopping)  # fmt: skip

    # -------------------------------------------------------------- the internal topic

    def internal(self, tp: TopicPartition) -> bool:
        return bool(tp.topic == self.config.repartition_topic)

    async def forward(self, stamped: Sequence[list[repartition.Stamped]]) -> None:
        """Produce a batch's stamped events (one list per source partition) to the internal
        topic; return when the broker has them all (see
        :func:`monitor.sources.repartition.forward`)."""
        records = repartition.records(stamped, self.internal_partitions)
        if not records:
            return
        assert self._producer is not None, "forward before start"
        backoff = Backoff(self.config.retry_backoff / 1000, self.config.retry_backoff_max / 1000)
        await repartition.forward(self._producer, self.config.repartition_topic, records,
                                  self.telemetry, backoff, self._stopping)  # fmt: skip

    # -------------------------------------------------------------- commits and rebalances

    async def _commit(self, partitions: set[TopicPartition], attempts: int) -> None:
        self._last_commit = self.monotonic()
        if self._consumer is None:
            return
        await self.partitions.commit(self._consumer, partitions, attempts,
                                     before_commit=self.before_commit,
                                     timeout=self.commit_timeout,
                                     backoff=self._backoff)  # fmt: skip

    @property
    def commit_timeout(self) -> float:
        """One commit attempt waits at most the session timeout (or ``request_timeout`` if
        shorter): with the broker gone, the loop must get back to fetching and telling."""
        return min(self.config.request_timeout, self.config.session_timeout) / 1000

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        self.joined = False
        self.problem = "rebalancing"
        # The batch in hand finishes first; one stuck (an output failing) for longer than
        # request_timeout must not hold up the whole group: its partitions are then given
        # up without a commit, and their new owner reads them again.
        async with aio.locked(self.lock, self.config.request_timeout / 1000) as locked:
            if locked:
                with contextlib.suppress(Abandoned):  # a stop while flushing: no commit
                    await self._commit(set(revoked), attempts=2)
            self.partitions.revoke(revoked)  # their engines stay until the assignment: see _assigned
        self.telemetry.partitions_revoked([(tp.topic, tp.partition) for tp in revoked])

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        """Restore the state of what was assigned and read each partition on from where
        its state stops (the checkpoint, not the committed offset, is the source of
        truth). Nothing is fetched until this returns: a partition is read only once its
        state is in place."""
        consumer = self._consumer
        async with self.lock:
            where = await self.on_assign(set(assigned)) if self.on_assign is not None else {tp: None for tp in assigned}
            starts = [tp for tp, offset in where.items() if offset == 0 and self.internal(tp)]
            if starts and consumer is not None:
                # Read from its start (monitor.app._read_from): the log's, should retention
                # have removed offset 0. Asked before any seek: nothing may come between those.
                where = {**where, **await consumer.beginning_offsets(starts)}
            left_out = set(assigned) - set(where)  # its checkpoint unreadable: not read at all
            self._generation += 1
            for tp, offset in where.items():
                if offset is not None and consumer is not None:
                    consumer.seek(tp, offset)
                    self._sought[tp] = self._generation
            self.partitions.assign(set(assigned) - left_out)
        if consumer is not None and (left_out or (self.paused and assigned)):
            consumer.pause(*(assigned if self.paused else left_out))  # a pause does not survive a reassignment
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


FORWARD_BATCH_BYTES = 1024 * 1024  # per partition and request: a batch forwards thousands of events
MISMATCH_MEMORY = 600.0  # seconds a key mismatch keeps /readyz degraded


def _with_topic(pattern: str, topic: str) -> str:
    """``pattern`` (matched from the start, as aiokafka does) or exactly ``topic``; global
    inline flags (``(?i)``) stay in front, where Python wants them."""
    flags = re.match(r"\(\?[aiLmsux]+\)", pattern)
    head = flags.group(0) if flags else ""
    return f"{head}(?:{pattern[len(head):]})|{re.escape(topic)}$"


def _text(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", "replace")
