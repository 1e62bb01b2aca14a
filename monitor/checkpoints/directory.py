"""Checkpoints as files under ``state.dir/checkpoints``: for one instance, or a file source.

Each key has ``<key>.ckpt`` and the one before it, ``<key>.prev.ckpt``. A save writes a
temporary file, fsyncs it, moves the current one to ``.prev`` and the new one into place,
and fsyncs the folder, so at every instant one complete good checkpoint exists. A load
reads the current one and, if it is torn or corrupted, the previous one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from monitor.checkpoints.base import Checkpoint, Loaded


class DirectoryStore:
    name = "directory"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    async def start(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)

    async def stop(self) -> None:
        return None

    async def load(self, keys: list[str]) -> dict[str, Loaded]:
        return await asyncio.to_thread(lambda: {k: self._load(k) for k in keys})

    async def save(self, checkpoints: Mapping[str, Checkpoint]) -> int:
        return await asyncio.to_thread(self._save, dict(checkpoints))

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"not a checkpoint key: {key!r}")
        return self.directory / f"{key}.ckpt", self.directory / f"{key}.prev.ckpt"

    def _load(self, key: str) -> Loaded:
        current, previous = self._paths(key)
        problems = []
        for path in (current, previous):
            try:
                blob = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(f"{path}: {exc.strerror or exc}")
                continue
            try:
                cp = Checkpoint.from_bytes(blob)
            except ValueError as exc:
                problems.append(f"{path}: {exc}")
                continue
            return Loaded(cp, "; ".join(problems) or None)
        if problems:
            return Loaded(None, error=f"no readable checkpoint for {key}: " + "; ".join(problems))
        return Loaded(None)

    def _save(self, checkpoints: dict[str, Checkpoint]) -> int:
        written = 0
        for key, cp in checkpoints.items():
            current, previous = self._paths(key)
            blob = cp.to_bytes()
            tmp = current.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            if current.exists():
                os.replace(current, previous)
            os.replace(tmp, current)
            written += len(blob)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return written
