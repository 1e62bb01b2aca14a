"""Files in any input format read as batches of canonical JSON lines for the Decoder.

The Decoder and engine only know canonical JSON; this reader frames each file's bytes
per format (a csvlog record may span lines, a CloudTrail delivery file is one record of
many events), maps the records, and hands on the events re-encoded, with the line each
came from, the skips (not data access) and the invalid records (with where and a sample).
Only non-``jsonl`` formats take this path: ``jsonl`` replays read lines directly.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson

from monitor.inputs.base import Format, Skip, record_lines
from monitor.sources.files import Batch, _open

CHUNK = 1 << 20


@dataclass
class MappedBatch(Batch):
    """A batch of canonical events; ``numbers[i]`` is the line ``lines[i]`` came from."""

    numbers: list[int] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    invalid: list[tuple[int, str, bytes]] = field(default_factory=list)  # (line, reason, record)

    def line_number(self, index: int) -> int:
        return self.numbers[index]


def map_records(fmt: Format, name: str, records: list[bytes]) -> MappedBatch:
    """Records already framed (a rule test's inline events), numbered from 1, mapped."""
    batch = MappedBatch(name, 1, [])
    for n, rec in enumerate(records, 1):
        _map(fmt, batch, rec, n)
    return batch


def _map(fmt: Format, batch: MappedBatch, rec: bytes, line: int) -> None:
    for r in fmt.decode(rec):
        if isinstance(r, Skip):
            if r.invalid:
                batch.invalid.append((line, r.reason, rec))
            else:
                batch.skipped[r.reason] += 1
        else:
            batch.lines.append(orjson.dumps(r))
            batch.numbers.append(line)


class MappedFileSource:
    """Like :class:`monitor.sources.files.FileSource`, through an input format."""

    def __init__(self, names: list[str], fmt: Format) -> None:
        self.names = names
        self.format = fmt

    def batches(self) -> Iterator[MappedBatch]:
        for name in self.names:
            f = _open(name)
            label = "<stdin>" if name == "-" else name
            try:
                yield from self._read(label, f.read)
            except zlib.error as exc:
                raise OSError(f"{name}: corrupt gzip data ({exc})") from None
            finally:
                if name != "-":
                    f.close()

    def _read(self, label: str, read: Callable[[int], bytes]) -> Iterator[MappedBatch]:
        buf, line, final = b"", 1, False
        while not final:
            chunk = read(CHUNK)
            final = not chunk
            buf += chunk
            records, used = self.format.frame(buf, final)
            batch = MappedBatch(label, line, [])
            numbers, line = record_lines(buf, records, line, used)
            for rec, n in zip(records, numbers, strict=True):
                _map(self.format, batch, rec, n)
            buf = buf[used:]
            if batch.lines or batch.skipped or batch.invalid:
                yield batch

