"""Follows growing log files like ``tail -F``: the database writes, the monitor reads.

Files are known by device and inode, not by name, so a rotation by rename (the log becomes
``x.1``) is the same file under a new name and a new ``x`` is a new file; the renamed file
is read to its end, even when its new name no longer matches the glob, before it is let go.
A file shorter than its position was truncated (``copytruncate``) and is read from the start.
New files matching the glob are read from their start, so nothing written is missed.

Positions are byte offsets (with the line number there, for provenance) kept only at record
boundaries (a csvlog record may span lines; the format frames them) and advance only when
the caller :meth:`commits <Follower.commit>` what it has processed: at-least-once, like the
Kafka source. :meth:`Follower.save` writes them to one JSON file in the directory given, to
a temporary file that is fsynced and renamed (and the directory fsynced), so a crash leaves
the old or the new positions, never half of them, and a saved position survives a power
cut. A saved position also keeps a digest of the file's first bytes: an inode that the
file system gave to a new file after the old one was deleted does not resume at the old
file's offset.

A trailing record without its newline waits until more is written or the file is rotated
away; a file truncated and rewritten past its old size between two passes is not noticed
as truncated (as with ``tail -F``).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from monitor.inputs.base import Format, record_lines
from monitor.statedir import write_atomic

STATE_FILE = "follow-positions.json"
HEAD_BYTES = 1024  # how much of a file's start identifies it (see _head)


class Events:
    """What the follower tells its owner: the telemetry hooks, all optional."""

    def __init__(self, *, followed: Callable[[int], None] | None = None, read: Callable[[int], None] | None = None,
                 rotated: Callable[[str], None] | None = None,
                 error: Callable[[str, str], None] | None = None) -> None:  # fmt: skip
        self.followed = followed or (lambda n: None)  # files open now
        self.read = read or (lambda n: None)  # bytes read
        self.rotated = rotated or (lambda kind: None)  # "rotated" (renamed away) or "truncated"
        self.error = error or (lambda kind, message: None)  # ("open" | "read", message)


@dataclass(frozen=True)
class Chunk:
    """Whole records read from one file: ``records`` lie between byte ``start`` and ``end``."""

    path: str
    key: str  # "device:inode"
    start: int
    end: int
    records: list[bytes]
    lines: list[int] = field(default_factory=list)  # the line each record starts on
    end_line: int = 1  # the line at ``end``


@dataclass
class _File:
    path: str
    handle: BinaryIO
    offset: int  # committed position
    read_to: int  # position after the last chunk handed out (not yet committed)
    line: int = 1  # line number at offset
    read_line: int = 1  # line number at read_to
    gone: bool = False  # renamed out of the glob: being drained
    head: str = ""  # digest of the first bytes up to the committed offset (see _head)


class Follower:
    def __init__(self, pattern: str, fmt: Format, state_dir: Path, *, max_read: int = 1 << 20,
                 state_file: str = STATE_FILE, events: Events | None = None,
                 positions: dict[str, Any] | None = None) -> None:  # fmt: skip
        """``positions`` (what :meth:`positions` gave, kept in a checkpoint) wins over the
        positions file: the checkpoint is the state's own record of what it has read."""
        self.pattern = pattern
        self.format = fmt
        self.state_path = Path(state_dir) / state_file
        self.max_read = max_read
        self.events = events or Events()
        self._files: dict[str, _File] = {}
        self._saved = self._load() if positions is None else _valid(positions)
        self._unreadable: dict[str, str] = {}  # path -> why it cannot be opened
        self._passes = 0

    @property
    def problems(self) -> list[str]:
        """Files matching the glob that cannot be opened (permissions), as of the last pass."""
        # Read from the event loop while a pass may run in a worker thread: copied at once
        # (one C call, under the GIL) before anything iterates.
        return [f"{path}: {why}" for path, why in sorted(list(self._unreadable.items()))]

    @property
    def keys(self) -> set[str]:
        """The files open now, as ``device:inode``."""
        return set(self._files)

    @property
    def followed(self) -> list[str]:
        return sorted([f.path for f in list(self._files.values())])

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OSError(f"{self.state_path}: unreadable follow positions ({exc})") from None
        return _valid(data.get("files", {}) if isinstance(data, dict) else {})

    def poll(self) -> list[Chunk]:
        """One pass: find files, read what was completed in each since the last pass."""
        seen = set()
        for path in sorted(glob.glob(self.pattern)):
            try:
                st = os.stat(path)
            except OSError:
                continue  # rotated between glob and stat: found by inode next pass
            key = f"{st.st_dev}:{st.st_ino}"
            seen.add(key)
            f = self._files.get(key)
            if f is None:
                f = self._open(path, key)
                if f is None:
                    continue
            f.path = path
        if self._passes == 0:
            # Positions of files gone while the daemon was down are forgotten, not kept for
            # ever; a file still there (unreadable for now) keeps its position.
            self._saved = {k: v for k, v in self._saved.items() if isinstance(v.get("path"), str) and os.path.exists(v["path"])}
        self._passes += 1
        opened = len(self._files)
        chunks = []
        for key, f in list(self._files.items()):
            rotated_away = key not in seen
            if rotated_away and not f.gone:
                f.gone = True
                f.path = _current_name(f.handle, f.path)  # where its records are now
                self.events.rotated("rotated")
            try:
                chunk = self._read(key, f, final=rotated_away)
            except OSError as exc:
                self.events.error("read", f"{f.path}: {exc.strerror or exc}")
                continue
            if chunk is not None:
                chunks.append(chunk)
            elif rotated_away and f.read_to == f.offset:
                f.handle.close()  # drained and committed: let it go
                del self._files[key]
        if len(self._files) != opened or opened == 0:
            self.events.followed(len(self._files))
        return chunks

    def _open(self, path: str, key: str) -> _File | None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open across rotations
        except OSError as exc:
            why = exc.strerror or str(exc)
            if self._unreadable.get(path) != why:  # said once, not every pass
                self.events.error("open", f"{path}: {why}")
            self._unreadable[path] = why
            return None
        self._unreadable.pop(path, None)
        f = _File(path, handle, 0, 0)
        saved = self._saved.pop(key, None)
        if saved is not None:
            offset, line = saved["offset"], saved.get("line", 1)
            if _head(handle, offset) == saved.get("head", _head(handle, offset)):
                f.offset = f.read_to = offset
                f.line = f.read_line = line if isinstance(line, int) and line > 0 else 1
            # else the inode was given to another file: it is new, read from its start
        f.head = _head(handle, f.offset)
        self._files[key] = f
        self.events.followed(len(self._files))
        return f

    def _read(self, key: str, f: _File, final: bool) -> Chunk | None:
        size = os.fstat(f.handle.fileno()).st_size
        if size < f.read_to:  # truncated in place
            f.offset = f.read_to = 0
            f.line = f.read_line = 1
            self.events.rotated("truncated")
        if size == f.read_to:
            return None
        want = self.max_read
        while True:
            f.handle.seek(f.read_to)
            data = f.handle.read(want)
            last = final and f.read_to + len(data) >= size
            records, used = self.format.frame(data, last)
            if used or len(data) < want:
                break
            want *= 2  # one record longer than max_read: read on until it is whole
        self.events.read(len(data))
        if used == 0:
            return None
        lines, end_line = record_lines(data, records, f.read_line, used)
        start = f.read_to
        f.read_to = start + used
        f.read_line = end_line
        return Chunk(f.path, key, start, f.read_to, records, lines, end_line)

    def commit(self, chunk: Chunk, *, save: bool = True) -> None:
        """Marks ``chunk`` processed; with ``save``, saves every file's position now."""
        f = self._files.get(chunk.key)
        if f is not None and chunk.end > f.offset:
            if f.offset < HEAD_BYTES:
                f.head = _head(f.handle, chunk.end)
            f.offset, f.line = chunk.end, chunk.end_line
        if save:
            self.save()

    def rewind(self) -> None:
        """Forgets chunks handed out but not committed: they are read again."""
        for f in self._files.values():
            f.read_to, f.read_line = f.offset, f.line

    def positions(self) -> dict[str, Any]:
        """Every file's committed position, as plain data (the positions file's ``files``)."""
        files: dict[str, Any] = {
            k: {"path": f.path, "offset": f.offset, "line": f.line, "head": f.head} for k, f in self._files.items()
        }
        files.update(self._saved)
        return files

    def save(self) -> None:
        files = self.positions()
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state_path, json.dumps({"version": 1, "files": files}, indent=1).encode())

    def close(self) -> None:
        """Closes every file (idempotent); positions stay as last committed."""
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.handle.close()
        if self._files:
            self._files.clear()
            self.events.followed(0)


def _valid(files: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(v, dict) and isinstance(v.get("offset"), int)}


def _head(handle: BinaryIO, offset: int) -> str:
    """A digest of the file's first bytes up to ``offset`` (at most :data:`HEAD_BYTES`):
    what a saved position is checked against before it is trusted."""
    n = min(offset, HEAD_BYTES)
    if n == 0:
        return ""
    data = os.pread(handle.fileno(), n, 0)
    return hashlib.sha256(data).hexdigest()[:16]


def _current_name(handle: BinaryIO, old: str) -> str:
    """The name a file renamed away has now (Linux), so provenance names where it is."""
    try:
        name = os.readlink(f"/proc/self/fd/{handle.fileno()}")
    except OSError:
        return old
    return old if name.endswith(" (deleted)") else name
