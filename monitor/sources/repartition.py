"""The internal topic: events forwarded to it by their rule's group key, and read back once.

What is forwarded is decided in :mod:`monitor.engine.repartition`; this module is the
wire: the record, the topic, and counting each forwarded event exactly once although
forwarding is at least once.

Why not Kafka transactions: they would make "forwarded and the source offset committed"
atomic, but the daemon's commit already waits for each partition's checkpoint (state
and offset in the store, then the commit), which a transaction cannot include; and a
member killed in the middle of one leaves the internal partitions it wrote unreadable to
``read_committed`` consumers until the transaction times out. Instead each forwarded
event is stamped with where it came from: its source partition, its source offset and
its place ``n`` among the events of that record (an input format can make several of
one record). A source partition's events are forwarded in offset order and, per internal
partition, arrive in that order (one producer, idempotent, one batch in flight per
partition, retries in order). An internal partition's engine therefore keeps, per source
partition and route (:mod:`monitor.engine.repartition`), the highest ``(offset, n)`` it
has counted (its *marks*, checkpointed with its state), and drops any event at or below
it: after a crash the source partition is read again from its checkpoint and forwards
again what the internal partition may have counted already. The stamps depend on the
record alone, so a reload that changes which routes match changes nothing for the
others. Two instances forwarding the same source partition at once (one not yet told it
lost it) interleave two runs of the same increasing sequence, and the marks still count
each event once.

What the marks cannot repair is a record the broker refused for good while a later one
to the same internal partition was written: sent again, it would be below the mark.
That needs a send to fail after every retry while the next batch, sent after it,
succeeds; it is counted (``exfil_monitor_repartition_errors_total{kind="reordered"}``)
and logged, never silent.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from monitor.engine.repartition import ROUTE_FIELD, Split
from monitor.event import PROVENANCE, Event
from monitor.kafka_client import PARTITIONERS
from monitor.retry import Backoff
from monitor.sources.produce import until_acknowledged
from monitor.telemetry import Telemetry

VERSION = 1
Mark = tuple[int, int]  # (source offset, n)
Forwarded = tuple[str, Mark, int, Event]  # (source, mark, event time, reduced event)
Stamped = tuple[int, int, Forwarded]  # (event time, internal partition, forwarded event)
_REFUSED = (MessageSizeTooLargeError, RecordTooLargeError)
# One record carries many forwarded events bound for one internal partition: a Kafka
# record costs more to produce and fetch than the event in it.
CHUNK_EVENTS = 500
CHUNK_BYTES = 256 * 1024  # of events' JSON, well under a topic's default max.message.bytes (1 MiB)


def stamp(split: Split, source: str, offsets: dict[str, int], good: list[tuple[Event, int]],
          place: Callable[[bytes], int]) -> list[Stamped]:  # fmt: skip
    """A source partition's decoded events (``source``: ``topic/partition``; ``offsets``:
    each event's record offset by its provenance) as the events its routes forward, each
    stamped with its record's offset and its place among that record's events (an input
    format can make several): increasing per route in the order sent, and the same when
    the record is read again."""
    out: list[Stamped] = []
    previous, i = None, 0
    for e, ts in good:
        w = str(e.get(PROVENANCE))
        i = i + 1 if w == previous else 0
        previous = w
        for key, reduced in split.forward(e, ts):
            out.append((ts, place(key), (source, (offsets[w], i), ts, reduced)))
    return out


def records(stamped: Sequence[list[Stamped]], partitions: int) -> list[tuple[int, bytes, int]]:
    """A batch's stamped events, one list per source partition, as the records to produce:
    merged by event time (each partition's own order kept, as the marks need), so that the
    internal topic interleaves the batch's partitions as they happened."""
    merged = [(p, f) for _, p, f in heapq.merge(*stamped, key=lambda s: s[0])]
    return chunks(merged, partitions)


def chunks(events: Sequence[tuple[int, Forwarded]], partitions: int) -> list[tuple[int, bytes, int]]:
    """``(internal partition, forwarded event)`` in the order sent, as ``(partition,
    record, events in it)``: each partition's events in that order, at most :data:`CHUNK_EVENTS` or
    about :data:`CHUNK_BYTES` to a record. A source is ``topic/partition``, which no topic
    name can be mistaken for. ``partitions``: how many the sender placed keys over, for the
    reader to check (a group split over two partitions would count twice what is read again)."""
    open_: dict[int, tuple[list[bytes], list[int]]] = {}
    out: list[tuple[int, list[bytes]]] = []
    for partition, (source, (offset, n), ts, event) in events:
        item = orjson.dumps([source, offset, n, ts, event])
        held = open_.get(partition)
        if held is None or len(held[0]) >= CHUNK_EVENTS or held[1][0] + len(item) > CHUNK_BYTES:
            held = open_[partition] = ([], [0])
            out.append((partition, held[0]))
        held[0].append(item)
        held[1][0] += len(item)
    head = b'{"v":%d,"partitions":%d,"events":[' % (VERSION, partitions)
    return [(p, head + b",".join(items) + b"]}", len(items)) for p, items in out]


def decode(value: bytes | None) -> tuple[int, list[Forwarded]]:
    """A record's partition count (see :func:`chunks`) and forwarded events; raises
    ValueError saying what is wrong with a record that is not one of ours."""
    try:
        d = orjson.loads(value or b"")
        version, partitions, events = d["v"], d["partitions"], d["events"]
        out = [(source, (offset, n), ts, event) for source, offset, n, ts, event in events]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a record of forwarded events: {exc}") from None
    if version != VERSION:
        raise ValueError(f"forwarded by a daemon of record version {version!r}, this one reads {VERSION}")
    for source, (offset, n), ts, event in out:
        if not (isinstance(source, str) and isinstance(event, dict) and all(type(x) is int for x in (offset, n, ts))):
            raise ValueError("not a record of forwarded events: fields of the wrong type")
    return partitions, out


def admit(marks: dict[str, Any], source: str, route: str, mark: Mark) -> bool:
    """Whether a forwarded event is new to the internal partition whose ``marks`` these are
    (``source -> route -> mark``, updated when it is); marks restored from a checkpoint
    are JSON lists."""
    routes = marks.get(source)
    if routes is None:
        routes = marks[source] = {}
    last = routes.get(route)
    if last is not None and (last[0], last[1]) >= mark:
        return False
    routes[route] = mark
    return True


def count(value: bytes | None, marks: dict[str, Any], partitions: int) -> tuple[list[tuple[Event, int]], int, int]:
    """A record of the internal topic as (events to count, duplicates dropped, the
    partition count it was placed over when that is not ``partitions``, else 0); the
    ``marks`` of its internal partition move on. Raises ValueError for a record that is not
    one of ours."""
    placed_over, forwarded = decode(value)
    events, duplicates = [], 0
    for source, mark, ts, e in forwarded:
        if admit(marks, source, str(e.get(ROUTE_FIELD)), mark):
            events.append((e, ts))
        else:
            duplicates += 1
    return events, duplicates, (placed_over if placed_over != partitions else 0)


async def forward(producer: Any, topic: str, records: Sequence[tuple[int, bytes, int]], telemetry: Telemetry,
                  backoff: Backoff, stopping: asyncio.Event | None) -> None:  # fmt: skip
    """Produce ``(partition, record, events)`` (:func:`chunks`), in order; return when the broker has
    them all (a stop meanwhile raises :class:`~monitor.retry.Abandoned`: the batch is then
    not processed, and forwarded again by whoever reads it next)."""
    first_failed: dict[int, int] = {}  # partition -> the first record (index) not written
    last_written: dict[int, int] = {}  # partition -> the last record written
    refused = [0]  # of the round: settled, not forwarded

    async def send(pending: list[tuple[int, tuple[int, bytes, int]]]) -> list[BaseException | None]:
        # Enqueued one after the other (the order the marks need), then awaited together:
        # a task per record, or sends racing for a full batch, would cost more than the send.
        queued: list[Any] = []
        for _, (partition, value, _) in pending:
            try:
                queued.append(await producer.send(topic, value=value, partition=partition))
            except KafkaError as exc:  # refused before it was queued (too large, say)
                queued.append(exc)
        waiting = [q for q in queued if not isinstance(q, BaseException)]
        answers = iter(await asyncio.gather(*waiting, return_exceptions=True))
        errors: list[BaseException | None] = []
        for (i, (partition, value, events)), q in zip(pending, queued, strict=True):
            outcome = q if isinstance(q, BaseException) else next(answers)
            if isinstance(outcome, _REFUSED):  # too large for the topic, whatever is tried: cannot be counted
                telemetry.repartition_error("refused", f"a record of forwarded events ({len(value)} bytes) was "
                                            f"refused: {outcome!r}", n=events)  # fmt: skip
                refused[0] += events
                errors.append(None)
            elif isinstance(outcome, BaseException):
                if not isinstance(outcome, KafkaError):
                    raise outcome
                first_failed[partition] = min(i, first_failed.get(partition, i))
                errors.append(outcome)
            else:
                last_written[partition] = max(i, last_written.get(partition, i))
                errors.append(None)
        return errors

    def sent(done: list[tuple[int, tuple[int, bytes, int]]]) -> None:
        telemetry.forwarded(sum(events for _, (_, _, events) in done) - refused[0])
        refused[0] = 0
        if hazard := sorted(p for p, i in first_failed.items() if last_written.get(p, -1) > i):
            telemetry.repartition_error("reordered", f"sends to internal partitions {hazard} failed while later "
                                        "ones were written: the failed events, sent again, are below the marks "
                                        "and go uncounted by repartitioned rules")  # fmt: skip
        first_failed.clear()
        last_written.clear()

    await until_acknowledged(list(enumerate(records)), send, sent, what="forwarded event", telemetry=telemetry,
                             backoff=backoff, stopping=stopping)  # fmt: skip


def partitioner(n: int) -> Callable[[bytes], int]:
    """Where a key goes among the internal topic's ``n`` partitions, as the Java client and
    aiokafka place it (murmur2, in Python: remembered for the keys seen lately)."""
    place = PARTITIONERS["murmur2"]
    seen: dict[bytes, int] = {}

    def where(key: bytes) -> int:
        p = seen.get(key)
        if p is None:
            if len(seen) >= 100_000:
                seen.clear()
            p = seen[key] = place(key, n)
        return p

    return where
