"""Follows growing log files like ``tail -F``: the database writes, the monitor reads.

Files are known by device and inode, not by name, so a rotation by rename (the log becomes
``x.1``) is the same file under a new name and a new ``x`` is a new file; the renamed file
is read to its end, even when its new name no longer matches the glob, before it is let go.
A file shorter than its position was truncated (``copytruncate``) and is read from the start.
New files matching the glob are read from their start, so nothing written is missed.

Positions are byte offsets kept only at record boundaries (a csvlog record may span lines;
the format frames them) and advance only when the caller :meth:`commits <Follower.commit>`
what it has processed: at-least-once, like the Kafka source. They are saved in one JSON file
in the directory given (written to a temporary file and renamed, so a crash leaves the old
or the new positions, never half of them).

Not yet wired into the daemon's config. A trailing record without its newline waits until
more is written or the file is rotated away; a file truncated and rewritten past its old
size between two passes is not noticed as truncated (as with ``tail -F``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from monitor.inputs.base import Format

STATE_FILE = "follow-positions.json"


@dataclass(frozen=True)
class Chunk:
    """Whole records read from one file: ``records`` lie between byte ``start`` and ``end``."""

    path: str
    key: str  # "device:inode"
    start: int
    end: int
    records: list[bytes]


@dataclass
class _File:
    path: str
    handle: BinaryIO
    offset: int  # committed position
    read_to: int  # position after the last chunk handed out (not yet committed)


class Follower:
    def __init__(
        self, pattern: str, fmt: Format, state_dir: Path, *, max_read: int = 1 << 20
    ) -> None:
        self.pattern = pattern
        self.format = fmt
        self.state_path = Path(state_dir) / STATE_FILE
        self.max_read = max_read
        self._files: dict[str, _File] = {}
        self._saved = self._load()

    def _load(self) -> dict[str, int]:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OSError(f"{self.state_path}: unreadable follow positions ({exc})") from None
        files = data.get("files", {}) if isinstance(data, dict) else {}
        return {
            k: v["offset"]
            for k, v in files.items()
            if isinstance(v, dict) and isinstance(v.get("offset"), int)
        }

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
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - kept open across rotations
                except OSError:
                    continue
                offset = self._saved.pop(key, 0)
                f = self._files[key] = _File(path, handle, offset, offset)
            f.path = path
        chunks = []
        for key, f in list(self._files.items()):
            rotated_away = key not in seen
            chunk = self._read(key, f, final=rotated_away)
            if chunk is not None:
                chunks.append(chunk)
            elif rotated_away and f.read_to == f.offset:
                f.handle.close()  # drained and committed: let it go
                del self._files[key]
        return chunks

    def _read(self, key: str, f: _File, final: bool) -> Chunk | None:
        size = os.fstat(f.handle.fileno()).st_size
        if size < f.read_to:  # truncated in place
            f.offset = f.read_to = 0
        if size == f.read_to:
            return None
        f.handle.seek(f.read_to)
        data = f.handle.read(self.max_read)
        last = final and f.read_to + len(data) >= size
        records, used = self.format.frame(data, last)
        if used == 0:
            return None
        start = f.read_to
        f.read_to = start + used
        return Chunk(f.path, key, start, f.read_to, records)

    def commit(self, chunk: Chunk) -> None:
        """Marks ``chunk`` processed and saves every file's position."""
        f = self._files.get(chunk.key)
        if f is not None and chunk.end > f.offset:
            f.offset = chunk.end
        self.save()

    def rewind(self) -> None:
        """Forgets chunks handed out but not committed: they are read again."""
        for f in self._files.values():
            f.read_to = f.offset

    def save(self) -> None:
        files = {k: {"path": f.path, "offset": f.offset} for k, f in self._files.items()}
        files.update({k: {"path": None, "offset": o} for k, o in self._saved.items()})
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": 1, "files": files}, indent=1))
        os.replace(tmp, self.state_path)

    def close(self) -> None:
        """Closes every file (idempotent); positions stay as last committed."""
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.handle.close()
        self._files.clear()
