"""Alert and resolution records as JSON lines on standard output, for containers whose logs are collected.

Logs go to standard error, so standard output carries nothing but alerts and can be piped
into ``jq`` or a collector as is.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from typing import IO, Any, Literal

import orjson

from monitor.outputs.base import Output, OutputConfigBase, Record


class StdoutOutputConfig(OutputConfigBase):
    type: Literal["stdout"]


class StdoutOutput(Output):
    kind = "stdout"

    def __init__(self, name: str = "stdout", *, stream: IO[Any] | None = None, send_timeout: float = 30.0) -> None:
        super().__init__(name, send_timeout=send_timeout)
        self._stream = stream

    @classmethod
    def from_config(cls, config: StdoutOutputConfig, stdout: IO[Any] | None = None) -> StdoutOutput:
        return cls(config.label, stream=stdout, send_timeout=config.send_timeout / 1000)

    async def _open(self) -> None:
        if self._stream is None:
            self._stream = sys.stdout

    async def _send(self, records: Sequence[Record]) -> None:
        stream = self._stream
        assert stream is not None
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
        # Written and flushed in one go: a reader never sees half an alert, and "sent"
        # means the bytes left this process, not that they sit in a buffer.
        if not isinstance(stream, io.TextIOBase):
            stream.write(data)
        elif getattr(stream, "buffer", None) is not None:
            stream.flush()  # whatever was printed as text goes first
            stream.buffer.write(data)
            stream.buffer.flush()
        else:
            stream.write(data.decode())
        stream.flush()

    async def _flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    async def _close(self) -> None:
        await self._flush()  # standard output is not ours to close
