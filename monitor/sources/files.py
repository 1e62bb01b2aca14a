"""JSON-lines files (plain, gzip, or standard input) read as batches of raw lines.

Several files are one stream in the order given. Each batch carries the file name and
the line number of its first line, so bad input can be reported where it is.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Batch:
    name: str
    first_line: int
    lines: list[bytes]  # blank lines already dropped; numbers in ``line_numbers``
    line_numbers: list[int]
    bytes_read: int


def _open(name: str) -> BinaryIO:
    if name == "-":
        raw: BinaryIO = sys.stdin.buffer
        if isinstance(raw, io.BufferedReader) and raw.peek(2)[:2] == GZIP_MAGIC:
            return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
        return raw
    f = open(name, "rb")  # noqa: SIM115 - closed by the caller's generator
    if f.read(2) == GZIP_MAGIC:
        f.close()
        return gzip.open(name, "rb")  # type: ignore[return-value]
    f.seek(0)
    return f


class FileSource:
    """Yields :class:`Batch` objects of up to ``batch_size`` lines from each file in turn."""

    def __init__(self, names: list[str], batch_size: int = 4096) -> None:
        self.names = names
        self.batch_size = batch_size

    def check_readable(self) -> list[str]:
        """Problems opening the files, found before any event is processed."""
        problems = []
        for name in self.names:
            if name == "-":
                continue
            try:
                with open(name, "rb"):
                    pass
            except OSError as exc:
                problems.append(f"{name}: {exc.strerror or exc}")
        return problems

    def batches(self) -> Iterator[Batch]:
        for name in self.names:
            f = _open(name)
            try:
                yield from self._read(name, f)
            finally:
                if name != "-":
                    f.close()

    def _read(self, name: str, f: BinaryIO) -> Iterator[Batch]:
        label = "<stdin>" if name == "-" else name
        lineno = 0
        lines: list[bytes] = []
        numbers: list[int] = []
        size = 0
        first = 1
        for line in f:
            lineno += 1
            size += len(line)
            if line.isspace() or not line:
                continue
            lines.append(line)
            numbers.append(lineno)
            if len(lines) >= self.batch_size:
                yield Batch(label, first, lines, numbers, size)
                lines, numbers, size, first = [], [], 0, lineno + 1
        if lines or size:
            yield Batch(label, first, lines, numbers, size)
