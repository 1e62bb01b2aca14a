"""mysql-audit: MySQL Enterprise's JSON audit log (the reference manual's "JSON Audit Log
File Format" sample) and Percona's JSON audit_record lines. No such server runs here."""

from __future__ import annotations

from monitor.inputs import Skip, get_format
from tests.inputs.conftest import decode_stream

FMT = get_format("mysql-audit")
ENTERPRISE = b"""[
{
  "timestamp": "2019-10-03 13:50:01",
  "id": 0,
  "class": "audit",
  "event": "startup",
  "connection_id": 0,
  "startup_data": { "server_id": 1, "os_version": "i686-Linux", "mysql_version": "5.7.21-log",
                    "args": ["/usr/local/mysql/bin/mysqld", "--loose-audit-log-format=JSON"] }
},
{
  "timestamp": "2019-10-03 15:02:32",
  "id": 0,
  "class": "connection",
  "event": "connect",
  "connection_id": 9,
  "account": { "user": "root", "host": "localhost" },
  "login": { "user": "root", "os": "", "ip": "::1", "proxy": "" },
  "connection_data": { "connection_type": "ssl", "status": 0, "db": "test", "connection_attributes": {} }
},
{
  "timestamp": "2019-10-03 15:02:37",
  "id": 1,
  "class": "general",
  "event": "status",
  "connection_id": 9,
  "account": { "user": "root", "host": "localhost" },
  "login": { "user": "root", "os": "", "ip": "::1", "proxy": "" },
  "general_data": { "command": "Query", "sql_command": "select", "query": "SELECT * FROM t WHERE s = '{,}'", "status": 0 }
},
{
  "timestamp": "2019-10-03 15:02:38",
  "id": 2,
  "class": "table_access",
  "event": "read",
  "connection_id": 9,
  "account": { "user": "root", "host": "localhost" },
  "login": { "user": "root", "os": "", "ip": "::1", "proxy": "" },
  "table_access_data": { "db": "test", "table": "t", "query": "SELECT * FROM t", "sql_command": "select" }
},
{
  "timestamp": "2019-10-03 15:02:39",
  "id": 3,
  "class": "general",
  "event": "status",
  "connection_id": 9,
  "account": { "user": "vendor", "host": "%" },
  "login": { "user": "vendor", "os": "", "ip": "10.0.0.9", "proxy": "" },
  "general_data": { "command": "Query", "sql_command": "select", "query": "SELECT * FROM cards", "status": 1142 }
}
]
"""
PERCONA = (
    b'{"audit_record":{"name":"Query","record":"4_2016-01-21T19:56:21","timestamp":"2016-01-21T19:56:21 UTC",'
    b'"command_class":"select","connection_id":"6","status":0,"sqltext":"select * from customers",'
    b'"user":"app[app] @ localhost []","host":"localhost","os_user":"","ip":"","db":"shop"}}\n'
)


def test_enterprise_sample() -> None:
    records, used = FMT.frame(ENTERPRISE[:300], False)
    assert used < 300 and len(records) <= 1  # a partial object stays unread
    events, skips = decode_stream(FMT, ENTERPRISE)
    assert skips == [Skip("not_data_access")]
    login, query, read, denied = events
    assert login["action"] == "login" and login["actor"] == {
        "id": "root",
        "ip": "::1",
        "host": "localhost",
        "session": 9,
    }
    assert login["resource"] == {"db": "test"}
    assert (
        query["action"] == "select"
        and query["outcome"] == "success"
        and query["ts"] == "2019-10-03T15:02:37.000Z"
    )
    assert (
        read["resource"] == {"kind": "table", "db": "test", "name": "t"}
        and read["action"] == "select"
    )
    assert denied["outcome"] == "denied" and denied["actor"]["id"] == "vendor"


def test_percona_line() -> None:
    (e,) = decode_stream(FMT, PERCONA)[0]
    assert e["action"] == "select" and e["actor"]["id"] == "app" and e["resource"]["db"] == "shop"
    assert e["ts"] == "2016-01-21T19:56:21.000Z" and e["outcome"] == "success"


def test_malformed_records_are_invalid() -> None:
    events, skips = decode_stream(
        FMT, b'[\n{"timestamp": "x"},\nnot json\n{"class": "general"}\n{"a": \n'
    )
    assert events == [] and len(skips) == 4 and all(s.invalid for s in skips)
