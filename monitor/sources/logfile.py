"""Data-access events from log files the database writes: the daemon's file source.

``sources: [{type: file, path: /var/log/postgresql/*.csv, format: pgaudit}]`` follows the
files matching the glob like ``tail -F`` (:class:`~monitor.sources.follow.Follower` does the
following and the framing); this module is its life cycle in the daemon: batches, where
each record came from (``file:line``), and positions saved under ``state.dir`` only for
processed records, after the outputs were flushed, so a restart resumes where it stopped
and reads again at most what was not yet committed (at-least-once, like Kafka).

Files are read in a worker thread (a local read is quick, but a slow disk must not stall
the HTTP endpoints); nothing else touches the follower meanwhile, because the daemon's
loop fetches, processes and commits in turn. There is no dead-letter file: a record the
format cannot read is logged with its file and line and counted as invalid, and the file
itself still holds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from monitor.configtypes import Duration, Model, PositiveInt, RelPath, TimeZone
from monitor.health import DEGRADED, NOT_READY, Condition
from monitor.inputs.base import Format
from monitor.retry import wait_or_stop
from monitor.sources.base import Batch, SourceUnavailable
from monitor.sources.follow import Chunk, Events, Follower
from monitor.telemetry import Telemetry


class FileSourceConfig(Model):
    type: Literal["file"]
    name: str | None = None  # the `source` label; distinct per source (its positions file too)
    path: RelPath  # a glob: /var/log/postgresql/*.csv
    format: str = "jsonl"
    timezone: TimeZone = "UTC"  # for formats whose timestamps have no zone (mariadb-audit)
    poll_interval: Duration = Field(default=250, gt=0)
    max_read: PositiveInt = 1 << 20  # bytes read from one file per batch

    @property
    def label(self) -> str:
        return self.name or self.type



@dataclass(frozen=True, slots=True)
class Line:
    """One framed record of a followed file: its bytes and where it starts."""

    value: bytes
    path: str
    line: int


class FileSource:
    def __init__(self, config: FileSourceConfig, telemetry: Telemetry, state_dir: Path, *,
                 before_commit: Callable[[Any], Awaitable[bool]] | None = None, commit_interval: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        """``before_commit(positions)`` checkpoints the state with the positions it
        reflects (False: the positions are not saved either)."""
        self.config = config
        self.telemetry = telemetry
        self.state_dir = state_dir
        self.before_commit = before_commit
        self.commit_interval = commit_interval
        self._restored: dict[str, Any] | None = None  # positions from the checkpoint
        self.monotonic = monotonic
        self.format_name = config.format
        self.timezone = config.timezone
        self.lock = asyncio.Lock()
        self.follower: Follower | None = None
        self.format: Format | None = None
        self._stopping: asyncio.Event | None = None
        self._pending: dict[str, Chunk] = {}  # handed out, not yet processed
        self._unsaved = 0  # chunks processed since the last save
        self._last_commit = 0.0
        self._state = "not started"
        self.paused = False
        self._idle = False

    @property
    def pattern(self) -> str:
        return str(self.config.path)

    def bind(self, fmt: Format) -> None:
        self.format = fmt

    def describe(self) -> dict[str, Any]:
        return {"source": self.config.label, "path": self.pattern, "format": self.format_name}

    # -------------------------------------------------------------- lifecycle

    async def start(self, stopping: asyncio.Event) -> bool:
        if self.follower is not None or self._state != "not started":
            raise RuntimeError("the file source was started already")
        if self.format is None:
            raise RuntimeError("bind() the input format before start()")
        label = self.config.label
        t = self.telemetry
        events = Events(
            followed=lambda n: t.files_followed(label, n),
            read=lambda n: t.file_bytes_read(label, n),
            rotated=lambda kind: t.file_rotated(label, kind),
            error=lambda kind, message: t.source_error(f"file_{kind}", message),
        )
        self._stopping = stopping
        try:
            self.follower = await asyncio.to_thread(
                Follower, self.pattern, self.format, self.state_dir, max_read=self.config.max_read,
                state_file=f"follow-{label}.json", events=events, positions=self._restored,
            )  # fmt: skip
        except OSError as exc:  # the positions file is unreadable: guessing would skip or repeat
            self._state = "positions unreadable"
            raise SourceUnavailable(f"{exc}; move it away to read the files from their start") from None
        self._last_commit = self.monotonic()
        self._state = "running"
        return True

    async def stop(self) -> None:
        """Save the positions of what was processed (after the outputs flush), close. Idempotent."""
        follower, self.follower = self.follower, None
        if follower is None:
            return
        self._state = "stopped"
        try:
            await self._save(follower)
        finally:
            follower.close()

    def condition(self) -> Condition | None:
        follower = self.follower
        if follower is None:
            return Condition(NOT_READY, self._state)
        if follower.problems:
            return Condition(DEGRADED, "cannot read: " + "; ".join(follower.problems[:5]))
        if not follower.followed:
            return Condition(DEGRADED, f"no file matches {self.pattern}")
        return None

    # -------------------------------------------------------------- reading

    async def fetch(self) -> Batch:
        """What was completed in each file since the last fetch; after an idle pass, waits
        ``poll_interval`` (cut short by a stop) and returns nothing."""
        follower = self.follower
        if follower is None or (self._stopping is not None and self._stopping.is_set()):
            return {}
        if self.paused:  # a full spool: read on once it drains
            await wait_or_stop(self._stopping, self.config.poll_interval / 1000)
            return {}
        try:
            chunks = await asyncio.to_thread(follower.poll)
        except OSError as exc:  # the glob's folder vanished, a disk error
            self.telemetry.source_error("file_read", str(exc))
            chunks = []
        batch: Batch = {}
        for chunk in chunks:
            self._pending[chunk.key] = chunk
            batch[chunk.key] = [Line(r, chunk.path, n) for r, n in zip(chunk.records, chunk.lines, strict=True)]
            if not chunk.records:  # only blank lines: nothing to process, but the position moves
                self._pending.pop(chunk.key)
                follower.commit(chunk, save=False)
                self._unsaved += 1
                del batch[chunk.key]
        self._idle = not chunks
        if not chunks:
            await wait_or_stop(self._stopping, self.config.poll_interval / 1000)
        return batch

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def caught_up(self) -> bool:
        """The last pass found nothing new in any file."""
        return self._idle and not self._pending

    def owned(self, records: Batch) -> Batch:
        return records  # files are not shared with other instances

    def where(self, stream: Any, record: Line) -> str:
        return f"{record.path}:{record.line}"

    def restore(self, positions: Any) -> None:
        """Before :meth:`start`: read on from where the restored checkpoint's state stops."""
        self._restored = positions if isinstance(positions, dict) else None

    def positions(self) -> Any:
        """Where the processed records end, per file: what a checkpoint taken now reflects."""
        return self.follower.positions() if self.follower is not None else None

    def partition(self, stream: Any) -> str:
        return self.config.label  # the whole source is one stream of state

    def offset_after(self, stream: Any, records: list[Any]) -> int:
        return 0  # a file source's position is its follow positions, kept with the checkpoint

    def held(self) -> set[str]:
        return {self.config.label}

    def check_keys(self, records: list[Any], where: list[str], good: list[Any]) -> None:
        return None  # files have no keys

    async def dead_letter(self, items: Sequence[tuple[Any, str]]) -> None:
        return None  # the file keeps the record; the pipeline logged it with file:line

    def processed(self, records: Batch) -> None:
        follower = self.follower
        for key in records:
            chunk = self._pending.pop(key, None)
            if chunk is not None and follower is not None:
                follower.commit(chunk, save=False)
                self._unsaved += 1

    async def maybe_commit(self) -> None:
        if self.monotonic() - self._last_commit >= self.commit_interval and self.follower is not None:
            await self._save(self.follower)

    async def _save(self, follower: Follower) -> None:
        self._last_commit = self.monotonic()
        if not self._unsaved:
            return
        if self.before_commit is not None and not await self.before_commit(follower.positions()):
            return  # the checkpoint failed (said): the positions stay as saved, retried next time
        n, self._unsaved = self._unsaved, 0
        try:
            await asyncio.to_thread(follower.save)
        except OSError as exc:
            self._unsaved += n  # tried again at the next commit
            self.telemetry.commit_failed(f"{follower.state_path}: {exc.strerror or exc}")
            return
        self.telemetry.committed(n)
