"""``pgaudit``: PostgreSQL's log with the pgaudit extension, as ``csvlog`` or ``stderr``.

Turn on in ``postgresql.conf``: ``shared_preload_libraries = 'pgaudit'``,
``pgaudit.log = 'read, write, ddl'``, ``pgaudit.log_relation = on``,
``pgaudit.log_rows = on``, ``log_connections = on``, ``log_timezone = 'UTC'``,
``lc_messages = 'C'`` (denied reads name their table only in English), and either
``log_destination = 'csvlog'`` (preferred) or ``'stderr'`` with exactly
``log_line_prefix = '%m [%p] %e %q%u@%d %r %a: '`` (:data:`STDERR_PREFIX`).

| canonical field | from |
|---|---|
| ``ts`` | ``log_time`` (its zone abbreviation honoured: UTC/GMT/Z or a numeric offset) |
| ``actor.id`` | ``user_name`` |
| ``actor.ip`` | host part of ``connection_from`` (none for ``[local]``) |
| ``actor.session`` | ``session_id`` |
| ``app`` | ``application_name`` |
| ``resource.db`` | ``database_name`` |
| ``action_name`` | the AUDIT message's COMMAND (``SELECT``, ``COPY``, ``GRANT``) |
| ``action`` | its class (:func:`monitor.inputs.base.classify_sql`; COPY reading is ``export``) |
| ``resource.kind`` | OBJECT_TYPE lower-cased (``table``, ``view``, ...) |
| ``resource.schema``, ``resource.name`` | OBJECT_NAME split at its first dot |
| ``rows`` | ROWS, the last AUDIT field when ``pgaudit.log_rows`` is on |
| ``outcome`` | ``success``; ``denied`` for SQLSTATE ``42501`` (from the SQLSTATE column) |
| ``raw.*`` | every column by its PostgreSQL name, and ``raw.audit`` the AUDIT fields |

An ``ERROR`` with SQLSTATE 42501 is ``outcome: denied`` with ``resource.kind``/``name``
read from "permission denied for table cards". ``connection authorized`` is
``action: login``; a failed password (28P01) is a denied login. Other lines (checkpoints,
plain statement errors) are skipped as ``not_data_access``. The column sets of
PostgreSQL 13 (24 columns, 23 before it) and 14 to 17 (26) are recognised by count.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta, timezone

from monitor.event import Event
from monitor.inputs.base import Result, Skip, classify_sql, invalid, local_ms, put
from monitor.timeparse import format_ts

COLUMNS = (
    "log_time", "user_name", "database_name", "process_id", "connection_from", "session_id",
    "session_line_num", "command_tag", "session_start_time", "virtual_transaction_id",
    "transaction_id", "error_severity", "sql_state_code", "message", "detail", "hint",
    "internal_query", "internal_query_pos", "context", "query", "query_pos", "location",
    "application_name", "backend_type", "leader_pid", "query_id",
)  # fmt: skip
_COUNTS = (23, 24, 26)  # PostgreSQL 12, 13, 14-17
STDERR_PREFIX = "%m [%p] %e %q%u@%d %r %a: "
_STDERR = re.compile(
    r"(?P<log_time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+) \[(?P<process_id>\d+)\] "
    r"(?P<sql_state_code>[0-9A-Z]{5}) "
    r"(?:(?P<user_name>[^@\s]*)@(?P<database_name>\S*) (?P<connection_from>\S+) "
    r"(?P<application_name>.*?): )?"
    r"(?P<error_severity>[A-Z]+[0-9]?):  (?P<message>.*)\Z",
    re.ASCII | re.DOTALL,
)
_CSV_START = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [^,\s]*,")
_TIME = re.compile(r"(.+?) ([A-Za-z]+|[+-]\d{2}(?::?\d{2})?)\Z", re.ASCII)
_UTC_NAMES = {"UTC", "GMT", "Z", "UCT"}
_DENIED = re.compile(r"permission denied for (\w+) (\S+)\Z", re.ASCII)
_AUTHORIZED = re.compile(r"connection authorized: user=(\S+)")
_PASSWORD = re.compile(r'password authentication failed for user "([^"]*)"')


def parse_time(value: str) -> int | None:
    """``2024-05-01 12:00:00.123 UTC`` to ms; a named zone other than UTC is refused."""
    m = _TIME.match(value)
    if m is None:
        return None
    local, zone = m.groups()
    if zone.upper() in _UTC_NAMES:
        return local_ms(local)
    if zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        sign = 1 if zone[0] == "+" else -1
        return local_ms(local, timezone(sign * timedelta(hours=hours, minutes=minutes)))
    return None  # "CEST" is ambiguous without a zone database: log_timezone = 'UTC'


def frame(data: bytes, final: bool) -> tuple[list[bytes], int]:
    """csvlog records end at a newline outside quotes (a statement may span lines);
    stderr records continue on lines PostgreSQL starts with a tab."""
    records: list[bytes] = []
    pos, n = 0, len(data)
    while pos < n:
        end = _csv_end(data, pos) if _CSV_START.match(data, pos) else _stderr_end(data, pos, final)
        if end < 0:
            break
        rec = data[pos:end].rstrip(b"\r\n")
        if rec.strip():
            records.append(rec)
        pos = end
    if final and pos < n:
        if data[pos:].strip():
            records.append(data[pos:])
        pos = n
    return records, pos


def _csv_end(data: bytes, pos: int) -> int:
    quoted = False
    i = pos
    while True:
        q = data.find(b'"', i)
        nl = data.find(b"\n", i)
        if nl < 0:
            return -1
        if q < 0 or nl < q:
            if not quoted:
                return nl + 1
            i = nl + 1
            continue
        quoted = not quoted  # a doubled quote flips twice
        i = q + 1


def _stderr_end(data: bytes, pos: int, final: bool) -> int:
    i = pos
    while True:
        nl = data.find(b"\n", i)
        if nl < 0:
            return -1
        if nl + 1 >= len(data):
            return nl + 1 if final else -1  # the next line may still be a continuation
        if data[nl + 1 : nl + 2] != b"\t":
            return nl + 1
        i = nl + 1


class PgAudit:
    name = "pgaudit"

    def frame(self, data: bytes, final: bool) -> tuple[list[bytes], int]:
        return frame(data, final)

    def decode(self, raw: bytes) -> Result:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return [invalid("bad_encoding")]
        row = _csv_row(line) if _CSV_START.match(raw) else _stderr_row(line)
        if row is None:
            return [invalid("bad_record")]
        return [map_row(row)]


def _csv_row(line: str) -> dict[str, str] | None:
    try:
        rows = list(csv.reader(io.StringIO(line, newline="")))
    except csv.Error:
        return None
    if len(rows) != 1 or len(rows[0]) not in _COUNTS:
        return None
    return dict(zip(COLUMNS, rows[0], strict=False))


def _stderr_row(line: str) -> dict[str, str] | None:
    m = _STDERR.match(line.rstrip("\r\n"))
    if m is None:
        return None
    row = {k: v for k, v in m.groupdict().items() if v is not None}
    row["message"] = row["message"].replace("\n\t", "\n")
    return row


def map_row(row: dict[str, str]) -> Event | Skip:
    ts = parse_time(row.get("log_time", ""))
    if ts is None:
        return invalid("bad_time")
    message = row.get("message", "")
    state = row.get("sql_state_code", "")
    e: Event = {"ts": format_ts(ts)}
    put(e, "actor.id", row.get("user_name"))
    frm = row.get("connection_from", "")
    if frm and not frm.startswith("["):
        host = frm.rsplit(":", 1)[0] if ":" in frm and "(" not in frm else frm.split("(")[0]
        put(e, "actor.ip", host)
    put(e, "actor.session", row.get("session_id"))
    put(e, "app", row.get("application_name"))
    put(e, "resource.db", row.get("database_name"))
    if message.startswith("AUDIT: "):
        audit = _audit(message[7:])
        if audit is None:
            return invalid("bad_audit_message")
        _map_audit(e, audit)
        e["raw"] = {**row, "audit": audit}
        return e
    if state == "42501":
        e["action"] = "other"
        e["action_name"] = row.get("command_tag") or "ERROR"
        if e["action_name"] != "ERROR":
            e["action"] = classify_sql(e["action_name"])
        e["outcome"] = "denied"
        m = _DENIED.search(message)
        if m:
            put(e, "resource.kind", m.group(1))
            _name(e, m.group(2))
    elif _AUTHORIZED.match(message):
        e["action"], e["action_name"], e["outcome"] = "login", "connection authorized", "success"
    elif state == "28P01" or _PASSWORD.search(message):
        e["action"], e["action_name"], e["outcome"] = "login", "authentication failed", "denied"
        m = _PASSWORD.search(message)
        if m and "actor" not in e:
            put(e, "actor.id", m.group(1))
    else:
        return Skip("not_data_access")
    e["raw"] = row
    return e


def _audit(body: str) -> list[str] | None:
    """AUDIT_TYPE,STATEMENT_ID,SUBSTATEMENT_ID,CLASS,COMMAND,OBJECT_TYPE,OBJECT_NAME,
    STATEMENT,PARAMETER[,ROWS], written by pgaudit as CSV (statements quoted)."""
    try:
        rows = list(csv.reader(io.StringIO(body, newline="")))
    except csv.Error:
        return None
    if len(rows) != 1 or len(rows[0]) < 7:
        return None
    return rows[0]


def _map_audit(e: Event, a: list[str]) -> None:
    klass, command, obj_type, obj_name = a[3], a[4], a[5], a[6]
    e["action_name"] = command
    action = classify_sql(command)
    if command.upper() == "COPY" and klass == "WRITE":
        action = "insert"
    elif action == "other" and klass in ("DDL", "ROLE"):
        action = "admin"
    elif action == "other" and klass == "READ":
        action = "select"
    e["action"] = action
    e["outcome"] = "success"
    put(e, "resource.kind", obj_type.lower() or None)
    _name(e, obj_name)
    if len(a) >= 10:
        rows = a[-1]
        if rows.isascii() and rows.isdigit():
            e["rows"] = int(rows)


def _name(e: Event, qualified: str) -> None:
    schema, dot, name = qualified.partition(".")
    if dot:
        put(e, "resource.schema", schema)
        put(e, "resource.name", name)
    else:
        put(e, "resource.name", qualified)
