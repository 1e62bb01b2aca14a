"""mariadb-audit: the server_audit plugin's lines, as MariaDB's documentation shows them."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta, timezone

from monitor.inputs import Skip, get_format
from monitor.inputs.mariadb_audit import MariadbAudit
from tests.inputs.conftest import decode_stream, one
from tests.support.mariadb import Mariadb

FMT = get_format("mariadb-audit")
# MariaDB docs, "MariaDB Audit Plugin - Log Format", examples
DOCS = b"""20130927 01:27:58,localhost.localdomain,root,localhost,1,0,CONNECT,,,0
20130927 01:28:08,localhost.localdomain,root,localhost,1,6,QUERY,test,'select * from t1, t2 where a = \\'x,y\\'',0
20130927 01:28:08,localhost.localdomain,root,localhost,1,6,READ,test,t1,
20130927 01:28:09,localhost.localdomain,hvac_vendor,10.0.0.9,2,7,QUERY,shop,'SELECT pan FROM cards',1142
20130927 01:28:10,localhost.localdomain,root,localhost,1,0,DISCONNECT,,,0
20130927 01:28:11,localhost.localdomain,eve,10.0.0.9,3,0,FAILED_CONNECT,,,1045
"""


def test_documented_lines() -> None:
    events, skips = decode_stream(FMT, DOCS)
    assert skips == [Skip("not_data_access")]
    login, query, read, denied, failed = events
    assert login["action"] == "login" and login["outcome"] == "success"
    assert login["actor"] == {"id": "root", "host": "localhost", "session": "1"}
    assert login["ts"] == "2013-09-27T01:27:58.000Z"
    assert query["action"] == "select" and query["resource"] == {"db": "test", "kind": "statement"}
    assert query["raw"]["query"] == "select * from t1, t2 where a = 'x,y'"
    assert query["outcome"] == "success"
    assert read["action"] == "select" and read["action_name"] == "READ"
    assert read["resource"] == {"db": "test", "kind": "table", "name": "t1"}
    assert denied["outcome"] == "denied" and denied["actor"]["ip"] == "10.0.0.9"
    assert failed["action"] == "login" and failed["outcome"] == "denied"
    assert "rows" not in read  # the plugin logs no row counts


def test_timezone_option() -> None:
    fmt = MariadbAudit(timezone(timedelta(hours=2)))
    e = one(fmt, DOCS.splitlines()[0])
    assert isinstance(e, dict) and e["ts"] == "2013-09-26T23:27:58.000Z"


def test_malformed_lines_are_invalid() -> None:
    for line in (b"", b"garbage", b"2013 01:27:58,a,b,c,d,e,f,g,h,0", b"20131327 01:27:58,a,b,c,1,0,READ,d,t,0",
                 b"20130927 01:27:58,a,b,c,1,0,READ,d,t,x", b"\xff,\xfe"):  # fmt: skip
        (r,) = FMT.decode(line)
        assert isinstance(r, Skip) and r.invalid, line


def test_real_mariadb_shop(mariadb: Mariadb) -> None:
    db = mariadb
    setup = (
        "CREATE DATABASE shop; CREATE TABLE shop.customers (id int, name text);"
        "CREATE TABLE shop.cards (id int, pan text);"
        "INSERT INTO shop.customers VALUES (1, 'a, b'), (2, 'c');"
        "CREATE USER hvac_vendor@'%' IDENTIFIED BY 'pw';"
        "GRANT SELECT ON shop.customers TO hvac_vendor@'%';"
    )
    assert db.sql(setup, root=True).returncode == 0
    bulk = db.sql(
        "SELECT * FROM customers WHERE name <> 'x, y'", user="hvac_vendor", password="pw", db="shop"
    )
    assert bulk.returncode == 0, bulk.stderr
    for _ in range(3):
        denied = db.sql("SELECT pan FROM shop.cards", user="hvac_vendor", password="pw")
        assert "1142" in denied.stderr
    assert "1045" in db.sql("SELECT 1", user="hvac_vendor", password="wrong").stderr
    db.stop()

    events, skips = decode_stream(FMT, db.audit_log.read_bytes())
    assert not [s for s in skips if s.invalid]
    vendor = [e for e in events if e["actor"]["id"] == "hvac_vendor"]
    assert all(e["actor"]["ip"] == "127.0.0.1" for e in vendor)
    counts = Counter((e["action"], e.get("resource", {}).get("kind"), e["outcome"]) for e in vendor)
    assert counts == {
        ("login", None, "success"): 4, ("login", None, "denied"): 1,
        ("select", "table", "success"): 1, ("select", "statement", "success"): 1,
        ("select", "statement", "denied"): 3,
    }  # fmt: skip
    (read,) = [e for e in vendor if e.get("resource", {}).get("kind") == "table"]
    assert read["resource"] == {"db": "shop", "kind": "table", "name": "customers"}
    (query,) = [
        e
        for e in vendor
        if e.get("resource", {}).get("kind") == "statement" and e["outcome"] == "success"
    ]
    assert query["raw"]["query"] == "SELECT * FROM customers WHERE name <> 'x, y'"
