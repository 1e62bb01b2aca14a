"""What the daemon's record loop needs of a source, whichever it is (Kafka, log files).

A source hands out batches as *streams* (a partition, a file) mapped to their records in
order, each record with a ``value`` (the raw bytes); :meth:`Source.where` names a record's
provenance the way log lines and alerts show it (``topic/partition@offset``,
``file:line``). The daemon processes a batch under :attr:`Source.lock`, marks it
:meth:`processed <Source.processed>` once its alerts and dead letters are acknowledged,
and a source saves positions only for processed records, after the ``before_commit``
callback it was built with (which flushes the outputs): at-least-once for every source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from typing import Any, Protocol

from monitor.health import Condition
from monitor.inputs.base import Format

Batch = dict[Any, list[Any]]  # stream -> its records, oldest first


class SourceUnavailable(Exception):
    """The source cannot start for a reason retrying will not fix (the daemon exits 1)."""


class Source(Protocol):
    lock: asyncio.Lock
    paused: bool  # a full spool: fetch returns nothing until resume
    format_name: str  # the input format of its records (``format:``), resolved with the rules
    timezone: str  # for formats whose timestamps have no zone

    def bind(self, fmt: Format) -> None:
        """The resolved input format, given before :meth:`start` (a file source frames by it)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the ``starting`` log line says about the source."""
        ...

    async def start(self, stopping: asyncio.Event) -> bool: ...

    async def stop(self) -> None: ...

    def condition(self) -> Condition | None: ...

    async def fetch(self) -> Batch: ...

    def owned(self, records: Batch) -> Batch: ...

    def where(self, stream: Any, record: Any) -> str: ...

    def partition(self, stream: Any) -> Hashable:
        """The unit of state a stream's events belong to (a Kafka partition; a whole file source)."""
        ...

    def offset_after(self, stream: Any, records: list[Any]) -> int:
        """Where reading goes on after ``records`` of ``stream``: the checkpoint's offset."""
        ...

    def held(self) -> set[Any]:
        """The partitions (of :meth:`partition`) this instance owns now."""
        ...

    def check_keys(self, records: list[Any], where: list[str], good: list[Any]) -> None:
        """Count events whose record is keyed otherwise than the source promises."""
        ...

    async def dead_letter(self, items: Sequence[tuple[Any, str]]) -> None: ...

    def processed(self, records: Batch) -> None: ...

    async def maybe_commit(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def caught_up(self) -> bool:
        """Read to the end of every stream: with no events, the wall clock may resolve."""
        ...
