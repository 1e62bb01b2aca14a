"""``mariadb-audit``: MariaDB's ``server_audit`` plugin log (``server_audit_output_type=file``).

Turn on: ``plugin_load_add = server_audit``, ``server_audit_logging = ON``,
``server_audit_events = CONNECT,QUERY,TABLE``. Each line is
``timestamp,serverhost,username,host,connectionid,queryid,operation,database,object,retcode``;
the object of a QUERY line is the statement in single quotes (it may hold commas, so the
retcode is read after the *last* comma).

| canonical field | from |
|---|---|
| ``ts`` | ``timestamp`` (``YYYYMMDD HH:MM:SS``, no zone: read in the ``timezone`` option, default UTC) |
| ``actor.id`` | ``username`` |
| ``actor.ip`` / ``actor.host`` | ``host`` (an address / a name like ``localhost``) |
| ``actor.session`` | ``connectionid`` |
| ``resource.db`` | ``database`` |
| ``action_name`` | ``operation`` (``READ``, ``WRITE``, ``CONNECT``, ``QUERY``...) |
| ``action`` | ``READ`` → ``select``, ``WRITE`` → ``update`` (the log does not say insert, update or delete), ``CREATE``/``ALTER``/``DROP``/``RENAME`` → ``admin``, ``CONNECT``/``FAILED_CONNECT`` → ``login``, ``QUERY*`` → the statement's first word's class |
| ``resource.kind``, ``resource.name`` | ``table`` and ``object`` for TABLE events; ``statement`` for QUERY lines |
| ``outcome`` | ``retcode``: 0 or empty ``success``; 1142, 1143, 1044, 1045 ``denied``; other ``error`` |
| ``raw.*`` | every field by the names above, ``raw.query`` the unquoted statement |

No row or byte counts: the plugin does not log them. DISCONNECT lines are skipped as
``not_data_access``. A successful query is logged twice (its QUERY line and its tables'
TABLE lines); rules over tables should say ``resource.kind: table``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, tzinfo

from monitor.event import Event
from monitor.inputs.base import (
    LineFormat,
    Result,
    Skip,
    classify_sql,
    invalid,
    local_ms,
    put,
)
from monitor.timeparse import format_ts

FIELDS = (
    "timestamp",
    "serverhost",
    "username",
    "host",
    "connectionid",
    "queryid",
    "operation",
    "database",
)
DENIED_CODES = frozenset({1142, 1143, 1044, 1045})
_TABLE_OPS = {"READ": "select", "WRITE": "update", "CREATE": "admin", "ALTER": "admin",
              "DROP": "admin", "RENAME": "admin"}  # fmt: skip
_TIME = re.compile(r"\d{8} \d{2}:\d{2}:\d{2}\Z", re.ASCII)


def is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def unquote(obj: str) -> str:
    if len(obj) >= 2 and obj[0] == obj[-1] == "'":
        body = obj[1:-1]
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m[1], m[1]), body)
    return obj


class MariadbAudit(LineFormat):
    name = "mariadb-audit"

    def __init__(self, timezone: tzinfo = UTC) -> None:
        self.timezone = timezone

    def decode(self, raw: bytes) -> Result:
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            return [invalid("bad_encoding")]
        parts = line.split(",", 8)
        if len(parts) < 9 or not _TIME.match(parts[0]):
            return [invalid("bad_record")]
        row = dict(zip(FIELDS, parts[:8], strict=True))
        obj, _, code = parts[8].rpartition(",")
        row["object"], row["retcode"] = obj, code
        ms = local_ms(parts[0], self.timezone)
        if ms is None:
            return [invalid("bad_time")]
        return [self._map(row, ms)]

    def _map(self, row: dict[str, str], ms: int) -> Event | Skip:
        op = row["operation"].upper()
        e: Event = {"ts": format_ts(ms), "action_name": op}
        put(e, "actor.id", row["username"])
        host = row["host"]
        put(e, "actor.ip" if is_address(host) else "actor.host", host)
        put(e, "actor.session", row["connectionid"])
        put(e, "resource.db", row["database"])
        code = row["retcode"].strip()
        if code and not (code.isascii() and code.isdigit()):
            return invalid("bad_retcode")
        n = int(code) if code else 0
        e["outcome"] = "success" if n == 0 else "denied" if n in DENIED_CODES else "error"
        raw: dict[str, object] = dict(row)
        if op in _TABLE_OPS:
            e["action"] = _TABLE_OPS[op]
            put(e, "resource.kind", "table")
            put(e, "resource.name", row["object"])
        elif op in ("CONNECT", "FAILED_CONNECT"):
            e["action"] = "login"
            if op == "FAILED_CONNECT" and n == 0:
                e["outcome"] = "denied"
        elif op.startswith("QUERY"):
            query = unquote(row["object"])
            raw["query"] = query
            e["action"] = classify_sql(query.lstrip("( \n\t"))
            put(e, "resource.kind", "statement")
        elif op == "DISCONNECT":
            return Skip("not_data_access")
        else:
            e["action"] = "other"
        e["raw"] = raw
        return e
