"""Alerts appended as JSON lines to a file, made durable before offsets are committed.

``send`` hands the lines to the operating system (a crash of the daemon loses nothing);
``flush`` fsyncs, and the daemon flushes before every commit that follows new alerts, so a
power cut cannot lose an alert whose events were committed. Appending never truncates:
a restarted daemon adds to what an earlier run wrote.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Literal

from monitor.configtypes import RelPath
from monitor.engine.alert import Alert
from monitor.outputs.base import Output, OutputConfigBase


class FileOutputConfig(OutputConfigBase):
    type: Literal["file"]
    path: RelPath


class FileOutput(Output):
    kind = "file"

    def __init__(self, name: str, path: Path | str, *, send_timeout: float = 30.0) -> None:
        super().__init__(name, send_timeout=send_timeout)
        self.path = Path(path)
        self._file: BinaryIO | None = None
        self._dirty = False

    @classmethod
    def from_config(cls, config: FileOutputConfig) -> FileOutput:
        return cls(config.label, config.path, send_timeout=config.send_timeout / 1000)

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in _close

    async def _send(self, alerts: Sequence[Alert]) -> None:
        f = self._file
        assert f is not None
        f.write(b"".join(a.to_json() + b"\n" for a in alerts))
        f.flush()
        self._dirty = True

    async def _flush(self) -> None:
        f = self._file
        if f is not None and self._dirty:
            f.flush()
            await asyncio.to_thread(os.fsync, f.fileno())
            self._dirty = False

    async def _close(self) -> None:
        try:
            await self._flush()
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
