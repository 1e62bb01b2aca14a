"""A durable, bounded queue of alert records on disk, one per output.

An alert counts as delivered (for the offset commit) once it is fsynced into the spool of
every output it is routed to, so the spool, not the receiver, is what the consumer waits
for: a receiver that is down or slow then holds back only its own output, and a restart
delivers whatever the spool still holds.

Layout of the directory (``state.dir/spool/<output name>``)::

    0000000000000001.seg   segments of framed entries, appended in order
    cursor                 where the oldest unacknowledged entry starts (segment, offset)
    parked/parked.jsonl    entries a receiver rejected, with its answer

Each entry is ``MAGIC | length u32 | crc32 u32 | appended_at ms u64 | payload``; the CRC
covers the timestamp and payload. A process killed mid-write leaves a torn tail in the
last segment: it fails the length or CRC check on the next open, and is cut off (and
counted in :attr:`Spool.torn_bytes`) instead of crashing the daemon or being delivered
half. A bad frame in an older segment (which was fsynced before the next one began) can
only be disk damage: the rest of that segment is dropped and counted the same way, and
the later segments are still read.

Delivery is in order: :meth:`Spool.peek` returns the oldest undelivered entries,
:meth:`Spool.ack` acknowledges every entry up to and including the one given, and
:meth:`Spool.park` sets one aside as rejected and acknowledges through it. The cursor is
fsynced on every ack, so an acknowledged entry is not delivered again after a restart;
an entry sent but not yet acknowledged when the process dies is sent again (at least
once: the receivers deduplicate on the alert's labels or id).

The methods do blocking file I/O (fsync); the daemon calls them once per batch, not per
event, and may move them to a thread.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from monitor.timeparse import format_ts

__all__ = ["DEFAULT_MAX_BYTES", "Entry", "Spool", "SpoolError", "SpoolFull"]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024
MAGIC = b"\xe5\x70"  # marks a frame start, so a zeroed or foreign tail is never read as one
_HEAD = struct.Struct(">2sIIQ")  # magic, payload length, crc32(ts + payload), appended_at ms
_CURSOR = struct.Struct(">QQI")  # segment, offset, crc32 of the first 16 bytes
MAX_ENTRY = 64 * 1024 * 1024  # a longer length field is damage, not an alert
_SUFFIX = ".seg"


class SpoolError(Exception):
    """The spool directory cannot be used (not writable, a file where a folder should be)."""


class SpoolFull(SpoolError):
    """The undelivered entries reached ``max_bytes``: nothing was written."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One undelivered record: where it is, when it was spooled, and its bytes."""

    segment: int
    offset: int
    size: int  # frame size on disk, header included
    appended_at_ms: int
    data: bytes


@dataclass(slots=True)
class _Slot:
    segment: int
    offset: int
    size: int
    appended_at_ms: int


def _segment_name(n: int) -> str:
    return f"{n:016d}{_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _frame(data: bytes, ts_ms: int) -> bytes:
    ts = ts_ms.to_bytes(8, "big")
    crc = zlib.crc32(data, zlib.crc32(ts))
    return _HEAD.pack(MAGIC, len(data), crc, ts_ms) + data


def _scan(buf: bytes, start: int) -> tuple[list[tuple[int, int, int]], int]:
    """Valid frames of ``buf`` from ``start`` as (offset, size, ts); and where they stop."""
    frames: list[tuple[int, int, int]] = []
    pos, end = start, len(buf)
    while pos + _HEAD.size <= end:
        magic, length, crc, ts = _HEAD.unpack_from(buf, pos)
        stop = pos + _HEAD.size + length
        if magic != MAGIC or length > MAX_ENTRY or stop > end:
            break
        body = buf[pos + _HEAD.size : stop]
        if zlib.crc32(body, zlib.crc32(ts.to_bytes(8, "big"))) != crc:
            break
        frames.append((pos, stop - pos, ts))
        pos = stop
    return frames, pos


class Spool:
    """The spool in one directory. Opening it recovers what a previous process left.

    ``max_bytes`` bounds the undelivered entries: once they reach it, :attr:`full` is
    true (the daemon pauses consumption) and :meth:`append` raises :class:`SpoolFull`
    rather than drop anything, unless told ``over_max``: the daemon does so for the
    alerts of the batch in hand, so the spool overshoots by at most one batch's alerts.
    """

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.clock = clock
        self.torn_bytes = 0  # dropped by recovery at open: a torn tail or damage
        self.parked = 0
        self._slots: deque[_Slot] = deque()
        self._bytes = 0
        self._fd: int | None = None
        self._active = 0
        self._active_size = 0
        self._dirty = False
        self._closed = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / "parked").mkdir(exist_ok=True)
            self._recover()
        except OSError as exc:
            raise SpoolError(f"spool {self.directory}: {exc.strerror or exc}") from exc

    # -- recovery --------------------------------------------------------------------

    def _segments(self) -> list[int]:
        found = []
        for p in self.directory.iterdir():
            if p.name.endswith(_SUFFIX) and p.name[: -len(_SUFFIX)].isdigit():
                found.append(int(p.name[: -len(_SUFFIX)]))
        return sorted(found)

    def _read_cursor(self) -> tuple[int, int]:
        try:
            raw = (self.directory / "cursor").read_bytes()
        except FileNotFoundError:
            return 0, 0
        if len(raw) == _CURSOR.size:
            seg, off, crc = _CURSOR.unpack(raw)
            if zlib.crc32(raw[:16]) == crc:
                return seg, off
        # The cursor is replaced atomically (rename), so this is damage: deliver again
        # from the oldest segment still on disk rather than skip anything.
        return 0, 0

    def _recover(self) -> None:
        cur_seg, cur_off = self._read_cursor()
        segments = self._segments()
        for n in segments:
            if n < cur_seg:
                (self.directory / _segment_name(n)).unlink()  # acknowledged before a crash
        segments = [n for n in segments if n >= cur_seg]
        for i, n in enumerate(segments):
            path = self.directory / _segment_name(n)
            buf = path.read_bytes()
            start = cur_off if n == cur_seg else 0
            start = min(start, len(buf))
            frames, stop = _scan(buf, start)
            if stop < len(buf):
                self.torn_bytes += len(buf) - stop
                if i == len(segments) - 1:
                    os.truncate(path, stop)  # the tail a killed writer left; append after it
            for off, size, ts in frames:
                self._slots.append(_Slot(n, off, size, ts))
                self._bytes += size
        if segments:
            self._open_segment(segments[-1])
        else:
            self._open_segment(max(cur_seg, 1))
        self._write_cursor()  # onto a frame boundary that exists, whatever recovery cut
        parked = self.directory / "parked" / "parked.jsonl"
        if parked.exists():
            with parked.open("rb") as f:
                self.parked = sum(1 for line in f if line.endswith(b"\n"))

    def _open_segment(self, n: int) -> None:
        if self._fd is not None:
            os.fsync(self._fd)  # a segment is complete on disk before the next one begins
            os.close(self._fd)
        path = self.directory / _segment_name(n)
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._active = n
        self._active_size = os.fstat(self._fd).st_size
        if created:
            _fsync_dir(self.directory)

    # -- writing ---------------------------------------------------------------------

    def append(self, data: bytes, *, over_max: bool = False) -> None:
        """Write one record; it is durable after the next :meth:`flush`.

        ``over_max`` writes it even when the spool is full: the alerts of a batch the
        consumer already evaluated must land (the daemon stops fetching, not writing).
        """
        self._check_open()
        if self.full and not over_max:
            raise SpoolFull(
                f"spool {self.directory} is full: {self._bytes} bytes undelivered "
                f"(max_bytes {self.max_bytes})"
            )
        if self._active_size >= self.segment_bytes:
            self._open_segment(self._active + 1)
        ts = int(self.clock() * 1000)
        frame = _frame(data, ts)
        assert self._fd is not None
        written = os.write(self._fd, frame)
        if written != len(frame):  # a full disk: cut the partial frame off again
            os.ftruncate(self._fd, self._active_size)
            raise SpoolError(f"spool {self.directory}: short write ({written} of {len(frame)})")
        self._slots.append(_Slot(self._active, self._active_size, len(frame), ts))
        self._active_size += len(frame)
        self._bytes += len(frame)
        self._dirty = True

    def flush(self) -> None:
        """fsync what was appended: from here on it survives a crash or power loss."""
        self._check_open()
        if self._dirty and self._fd is not None:
            os.fsync(self._fd)
            self._dirty = False

    # -- reading and acknowledging ----------------------------------------------------

    def peek(self, limit: int = 100) -> list[Entry]:
        """The oldest ``limit`` undelivered entries, in order (appended ones included)."""
        self._check_open()
        out: list[Entry] = []
        handle = None
        handle_seg = -1
        try:
            for slot in itertools.islice(self._slots, limit):
                if slot.segment != handle_seg:
                    if handle is not None:
                        handle.close()
                    handle = open(self.directory / _segment_name(slot.segment), "rb")  # noqa: SIM115
                    handle_seg = slot.segment
                assert handle is not None
                handle.seek(slot.offset + _HEAD.size)
                data = handle.read(slot.size - _HEAD.size)
                out.append(Entry(slot.segment, slot.offset, slot.size, slot.appended_at_ms, data))
        finally:
            if handle is not None:
                handle.close()
        return out

    def ack(self, entry: Entry) -> None:
        """Acknowledge ``entry`` and every entry before it (delivery is in order)."""
        self._check_open()
        where = (entry.segment, entry.offset)
        if not self._slots or where < (self._slots[0].segment, self._slots[0].offset):
            return  # acknowledged already: a second ack changes nothing
        # Made durable first: a cursor past data a crash can still lose would skip, after
        # the restart, the entries appended where that data was.
        self.flush()
        while self._slots and (self._slots[0].segment, self._slots[0].offset) <= where:
            self._bytes -= self._slots.popleft().size
        self._write_cursor()

    def park(self, entry: Entry, answer: str) -> None:
        """Set ``entry`` aside as rejected, with the receiver's answer, and acknowledge it.

        A rejected alert is never retried (a misconfigured receiver must not fill the
        spool and stop detection), but it is not lost either: ``parked/parked.jsonl``
        keeps it for a person, one JSON object a line.
        """
        self._check_open()
        line: dict[str, object] = {
            "parked_at": format_ts(int(self.clock() * 1000)),
            "spooled_at": format_ts(entry.appended_at_ms),
            "answer": answer,
        }
        try:
            line["record"] = entry.data.decode("utf-8")
        except UnicodeDecodeError:
            line["record_base64"] = base64.b64encode(entry.data).decode("ascii")
        path = self.directory / "parked" / "parked.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, orjson.dumps(line) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        self.parked += 1
        self.ack(entry)

    def _write_cursor(self) -> None:
        """Persist where the oldest undelivered entry starts, then drop finished segments."""
        if self._slots:
            segment, offset = self._slots[0].segment, self._slots[0].offset
        else:
            segment, offset = self._active, self._active_size
        head = struct.pack(">QQ", segment, offset)
        tmp = self.directory / "cursor.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, head + zlib.crc32(head).to_bytes(4, "big"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.directory / "cursor")
        _fsync_dir(self.directory)
        for n in self._segments():
            if n < segment:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / _segment_name(n)).unlink()

    # -- state for metrics and the daemon ------------------------------------------------

    @property
    def depth(self) -> int:
        """Undelivered entries."""
        return len(self._slots)

    @property
    def bytes(self) -> int:
        """Bytes of the undelivered entries on disk, frames included."""
        return self._bytes

    @property
    def full(self) -> bool:
        return self._bytes >= self.max_bytes

    def oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest undelivered entry was spooled; 0 when none is."""
        if not self._slots:
            return 0.0
        now = self.clock() if now is None else now
        return max(0.0, now - self._slots[0].appended_at_ms / 1000)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Flush and release the segment; closing twice is fine."""
        if self._closed:
            return
        if self._fd is not None:
            if self._dirty:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self.directory} is closed")

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
