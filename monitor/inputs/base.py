"""What every input format shares: the canonical event, the skip reasons, record framing.

A format turns one raw record into canonical events (a CloudTrail delivery file is one
record holding many) or names why it gives none. Two kinds of "none": a record that is
well-formed but not data access (a disconnect, a checkpoint line) is *skipped*, and a
record the format cannot read is *invalid*; only the second is bad input. A format never
raises on its input: hostile or broken lines are the normal case for a log reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from monitor.event import Event

ACTIONS = (
    "select", "download", "export", "list", "insert", "update", "delete", "login", "admin", "other",
)  # fmt: skip
OUTCOMES = ("success", "denied", "error")
KINDS = (
    "table", "bucket", "api", "report", "secret", "parameter", "snapshot", "instance",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a record gave no event; ``invalid`` when the record could not be read at all."""

    reason: str
    invalid: bool = False


def invalid(reason: str) -> Skip:
    return Skip(reason, True)


Result = list[Event | Skip]


class Format(Protocol):
    """An input format: ``decode`` one framed record, ``frame`` a byte stream into records."""

    name: str

    def decode(self, raw: bytes) -> Result: ...

    def frame(self, data: bytes, final: bool) -> tuple[list[bytes], int]:
        """Complete records at the start of ``data`` and how many bytes they took.

        With ``final`` the stream has ended and a trailing partial record counts too.
        Positions are only ever kept at the returned boundaries.
        """
        ...


def frame_lines(data: bytes, final: bool) -> tuple[list[bytes], int]:
    """One record a line: the framing of JSON lines and of most audit logs."""
    end = data.rfind(b"\n") + 1
    if final and end < len(data):
        end = len(data)
    return [line for line in data[:end].split(b"\n") if line.strip()], end


def record_lines(data: bytes, records: list[bytes], line: int, used: int) -> tuple[list[int], int]:
    """The line number each framed record starts on, and the line after ``used`` bytes.

    ``records`` are what :meth:`Format.frame` returned for ``data`` whose first byte is on
    ``line``; a record is found by its bytes after the previous one (a framer that
    rewrote a record is counted from where the previous one ended). One place, so that
    ``replay`` and the daemon's file source name the same line for the same record.
    """
    numbers: list[int] = []
    cursor = pos = 0  # cursor: after the previous record; pos: where ``line`` is
    for rec in records:
        at = data.find(rec, cursor)
        if at < 0:
            at = cursor
        line += data.count(b"\n", pos, at)  # a record's own newlines (a multi-line statement) count too
        numbers.append(line)
        pos, cursor = at, at + len(rec)
    return numbers, line + data.count(b"\n", pos, used)


class LineFormat:
    """Base for formats whose records are single lines."""

    name = "lines"

    def decode(self, raw: bytes) -> Result:  # pragma: no cover - overridden
        raise NotImplementedError

    def frame(self, data: bytes, final: bool) -> tuple[list[bytes], int]:
        return frame_lines(data, final)


def put(event: Event, path: str, value: Any) -> None:
    """Sets ``a.b.c`` in nested dicts, creating them; ``None`` values are left out."""
    if value is None or value == "":
        return
    parts = path.split(".")
    target = event
    for p in parts[:-1]:
        nxt = target.get(p)
        if nxt.__class__ is not dict:
            nxt = target[p] = {}
        target = nxt
    target[parts[-1]] = value


def get(record: Any, path: str) -> Any:
    v = record
    for p in path.split("."):
        if v.__class__ is not dict:
            return None
        v = v.get(p)
    return v


def text(v: Any) -> str | None:
    """A non-empty string, or ``None``: log fields are often empty, null or mistyped."""
    return v if isinstance(v, str) and v else None


def number(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.isascii() and v.isdigit():
        return int(v)
    return None


_LOCAL = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\Z", re.ASCII
)


def local_ms(value: str, tz: Any = UTC) -> int | None:
    """Milliseconds of a zone-less ``YYYY[-]MM[-]DD HH:MM:SS[.fff]`` read in ``tz``."""
    m = _LOCAL.match(value)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=tz)
    except ValueError:
        return None
    ms = int(dt.timestamp()) * 1000
    return ms + (int((frac + "00")[:3]) if frac else 0)


def classify_sql(verb: str) -> str:
    """The canonical action class of an SQL command tag (``SELECT``, ``CREATE TABLE``)."""
    v = verb.strip().upper()
    first = v.split(" ", 1)[0] if v else ""
    if first in _SQL_CLASSES:
        return _SQL_CLASSES[first]
    return "other"


_SQL_CLASSES = {
    "SELECT": "select", "WITH": "select", "FETCH": "select", "TABLE": "select", "HANDLER": "select", "SHOW": "list", "DESCRIBE": "list", "DESC": "list",
    "EXPLAIN": "list", "INSERT": "insert", "REPLACE": "insert", "LOAD": "insert",
    "UPDATE": "update", "MERGE": "update", "DELETE": "delete", "TRUNCATE": "delete",
    "COPY": "export", "CREATE": "admin", "ALTER": "admin", "DROP": "admin", "GRANT": "admin",
    "REVOKE": "admin", "RENAME": "admin", "SET": "other", "COMMENT": "admin",
    "SECURITY": "admin", "REINDEX": "admin", "VACUUM": "other", "CLUSTER": "admin",
}  # fmt: skip
