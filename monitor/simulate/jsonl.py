"""Writing events as JSON Lines, the format ``simulate``, ``replay`` and the benchmarks share.

Kept apart from the generator because it is the one step that depends on ``orjson`` and an
output stream: events are serialized a line at a time and written in chunks of 4,096
lines, which keeps a million-event day from becoming a million small writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import orjson

from monitor.event import Event


def write_jsonl(events: Iterable[Event], out: BinaryIO) -> int:
    """Write events as JSON Lines (one object a line) to a binary stream; return the count."""
    dumps, nl = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    count = 0
    chunk: list[bytes] = []
    for ev in events:
        chunk.append(dumps(ev, option=nl))
        if len(chunk) >= 4096:
            out.write(b"".join(chunk))
            count += len(chunk)
            chunk.clear()
    if chunk:
        out.write(b"".join(chunk))
        count += len(chunk)
    return count
