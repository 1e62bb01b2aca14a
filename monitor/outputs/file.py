"""Alert and resolution records appended as JSON lines to a file.

``send`` writes and fsyncs before it returns, since the spool drops what an output
acknowledged: a power cut after that must not lose the line. Appending never truncates:
a restarted daemon adds to what an earlier run wrote.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import orjson

from monitor.configtypes import RelPath
from monitor.outputs.base import Output, OutputConfigBase, Record


class FileOutputConfig(OutputConfigBase):
    type: Literal["file"]
    path: RelPath


class FileOutput(Output):
    kind = "file"

    def __init__(self, name: str, path: Path | str, *, send_timeout: float = 30.0) -> None:
        super().__init__(name, send_timeout=send_timeout)
        self.path = Path(path)
        self._file: BinaryIO | None = None

    @classmethod
    def from_config(cls, config: FileOutputConfig) -> FileOutput:
        return cls(config.label, config.path, send_timeout=config.send_timeout / 1000)

    async def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in _close

    async def _send(self, records: Sequence[Record]) -> None:
        f = self._file
        assert f is not None
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
        f.flush()
        # fsynced before the spool lets go of them: acknowledged means on disk
        await asyncio.to_thread(os.fsync, f.fileno())

    async def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
