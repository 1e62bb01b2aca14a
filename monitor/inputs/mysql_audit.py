"""``mysql-audit``: the JSON audit logs of MySQL Enterprise (audit log filter,
``audit_log_format=JSON``) and Percona Server (``audit_log_format=JSON``).

Mapped from the vendors' documented samples only: no such server can run here.
MySQL Enterprise writes one JSON array of pretty-printed objects; Percona one
``{"audit_record": {...}}`` object a line. :meth:`MysqlAudit.frame` takes both.

| canonical field | MySQL Enterprise | Percona |
|---|---|---|
| ``ts`` | ``timestamp`` (``YYYY-MM-DD HH:MM:SS``, UTC) | ``timestamp`` (``...T... UTC``) |
| ``id`` | ``id`` with ``timestamp`` | ``record`` |
| ``actor.id`` | ``account.user`` (else ``login.user``) | ``priv_user`` else the user before ``[`` |
| ``actor.ip`` / ``actor.host`` | ``login.ip`` / ``account.host`` | ``ip`` / ``host`` |
| ``actor.session`` | ``connection_id`` | ``connection_id`` |
| ``action_name`` | ``table_access_data.sql_command``, ``general_data.sql_command``, else ``event`` | ``command_class`` else ``name`` |
| ``action`` | ``table_access`` read/insert/update/delete as named; ``connection`` connect → ``login``; SQL command class | same by ``command_class``; ``Connect`` → ``login`` |
| ``resource.kind`` | ``table`` for ``table_access`` | ``statement`` |
| ``resource.db``, ``resource.name`` | ``table_access_data.db``/``table``, ``connection_data.db`` | ``db`` |
| ``outcome`` | ``general_data.status``/``connection_data.status``: 0 success, 1142/1143/1044/1045 denied, else error | ``status`` |
| ``rows`` | ``general_data.rows`` (not in every version) | ``rows`` |

``audit`` class records (startup, shutdown) and disconnects are skipped as ``not_data_access``.
"""

from __future__ import annotations

import orjson

from monitor.event import Event
from monitor.inputs.base import (
    Result,
    Skip,
    classify_sql,
    get,
    invalid,
    local_ms,
    number,
    put,
    text,
)
from monitor.inputs.mariadb_audit import DENIED_CODES, is_address
from monitor.timeparse import format_ts

_TABLE = {"read": "select", "insert": "insert", "update": "update", "delete": "delete"}


def frame(data: bytes, final: bool) -> tuple[list[bytes], int]:
    """Top-level JSON objects, wherever the array brackets, commas and newlines fall;
    anything else between them is one (invalid) record per line."""
    records: list[bytes] = []
    depth, start, in_str, esc = 0, 0, False, False
    done, i, n = 0, 0, len(data)
    while i < n:
        c = data[i]
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22 and depth:
            in_str = True
        elif c == 0x7B:
            if depth == 0:
                start = i
            depth += 1
        elif c == 0x7D and depth:
            depth -= 1
            if depth == 0:
                records.append(data[start : i + 1])
                done = i + 1
        elif depth == 0 and c not in b"[],\r\n\t ":
            nl = data.find(b"\n", i)
            if nl < 0 and not final:
                return records, done
            end = n if nl < 0 else nl
            records.append(data[i:end])
            i = done = end
            continue
        i += 1
    if depth == 0:
        if final or not data[done:].strip(b"[],\r\n\t "):
            done = n
    elif final:
        records.append(data[start:])
        done = n
    return records, done


def _status(e: Event, status: object) -> None:
    n = number(status)
    e["outcome"] = "success" if not n else "denied" if n in DENIED_CODES else "error"


class MysqlAudit:
    name = "mysql-audit"

    def frame(self, data: bytes, final: bool) -> tuple[list[bytes], int]:
        return frame(data, final)

    def decode(self, raw: bytes) -> Result:
        try:
            r = orjson.loads(raw.strip().strip(b",[]"))
        except orjson.JSONDecodeError:
            return [invalid("invalid_json")]
        if r.__class__ is not dict:
            return [invalid("not_an_object")]
        if isinstance(r.get("audit_record"), dict):
            return [_percona(r["audit_record"], r)]
        return [_enterprise(r)]


def _enterprise(r: dict[str, object]) -> Event | Skip:
    stamp = text(r.get("timestamp"))
    ms = local_ms(stamp) if stamp else None
    if ms is None:
        return invalid("bad_time")
    klass, event = text(r.get("class")) or "", text(r.get("event")) or ""
    e: Event = {"ts": format_ts(ms)}
    if r.get("id") is not None:
        e["id"] = f"{stamp}/{r.get('id')}"
    put(e, "actor.id", text(get(r, "account.user")) or text(get(r, "login.user")))
    ip, host = text(get(r, "login.ip")), text(get(r, "account.host"))
    put(e, "actor.ip", ip)
    if host and not is_address(host):
        put(e, "actor.host", host)
    put(e, "actor.session", number(r.get("connection_id")))
    if klass == "table_access":
        d = r.get("table_access_data")
        d = d if isinstance(d, dict) else {}
        e["action_name"] = text(d.get("sql_command")) or event
        e["action"] = _TABLE.get(event, "other")
        put(e, "resource.kind", "table")
        put(e, "resource.db", text(d.get("db")))
        put(e, "resource.name", text(d.get("table")))
        e["outcome"] = "success"
    elif klass == "connection" and event in ("connect", "change_user"):
        e["action"], e["action_name"] = "login", event
        put(e, "resource.db", text(get(r, "connection_data.db")))
        _status(e, get(r, "connection_data.status"))
    elif klass in ("general", "query"):
        d = r.get("general_data") if klass == "general" else r.get("query_data")
        d = d if isinstance(d, dict) else {}
        command = text(d.get("sql_command")) or event
        e["action_name"] = command
        e["action"] = classify_sql(command.replace("_", " "))
        put(e, "resource.kind", "statement")
        _status(e, d.get("status"))
        put(e, "rows", number(d.get("rows")))
    else:
        return Skip("not_data_access")
    e["raw"] = r
    return e


def _percona(a: dict[str, object], r: dict[str, object]) -> Event | Skip:
    stamp = text(a.get("timestamp")) or ""
    ms = local_ms(stamp.removesuffix(" UTC").replace("T", " "))
    if ms is None:
        return invalid("bad_time")
    name = text(a.get("name")) or ""
    e: Event = {"ts": format_ts(ms)}
    put(e, "id", text(a.get("record")))
    user = text(a.get("priv_user")) or (text(a.get("user")) or "").split("[", 1)[0] or None
    put(e, "actor.id", user)
    put(e, "actor.ip", text(a.get("ip")))
    put(e, "actor.host", text(a.get("host")))
    put(e, "actor.session", text(a.get("connection_id")))
    put(e, "resource.db", text(a.get("db")))
    if name == "Connect":
        e["action"], e["action_name"] = "login", name
    elif name in ("Query", "Execute"):
        command = text(a.get("command_class")) or name
        e["action_name"] = command
        e["action"] = classify_sql(command.replace("_", " "))
        put(e, "resource.kind", "statement")
        put(e, "rows", number(a.get("rows")))
    else:
        return Skip("not_data_access")
    _status(e, a.get("status"))
    e["raw"] = r
    return e
