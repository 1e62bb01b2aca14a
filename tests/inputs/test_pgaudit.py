"""pgaudit: PostgreSQL's csvlog and stderr lines, from pgaudit's README and from a real server."""

from __future__ import annotations

from collections import Counter

from monitor.inputs import Skip, get_format
from monitor.inputs.pgaudit import PgAudit, parse_time
from tests.inputs.conftest import MULTI, decode_stream, one

FMT = PgAudit()

# pgaudit README, "Examples": the session audit lines, wrapped in csvlog columns (PostgreSQL 15)
README_INSERT = (
    '2024-05-01 12:00:00.123 UTC,"alice","shop",4242,"10.0.0.5:51234",6632f0a0.1092,3,"INSERT",'
    '2024-05-01 11:59:00 UTC,3/10,0,LOG,00000,"AUDIT: OBJECT,1,1,WRITE,INSERT,TABLE,public.account,'
    "\"\"insert into account (id, name, password, description)\n             values (1, 'user1', 'HASH1', 'blah, blah')\"\","
    '<not logged>,1",,,,,,,,,"psql","client backend",,0'
)
README_SELECT = (
    '2024-05-01 12:00:01.000 UTC,"alice","shop",4242,"10.0.0.5:51234",6632f0a0.1092,4,"SELECT",'
    '2024-05-01 11:59:00 UTC,3/11,0,LOG,00000,"AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.account,'
    '""select *\n    from account"",<not logged>,2",,,,,,,,,"psql","client backend",,0'
)
DENIED = (
    '2024-05-01 12:00:02.5 UTC,"hvac_vendor","shop",4243,"10.0.0.9:40000",6632f0a0.1093,3,"SELECT",'
    '2024-05-01 11:59:30 UTC,3/12,0,ERROR,42501,"permission denied for table cards",,,,,,'
    '"SELECT pan FROM shop.cards",,,"psql","client backend",,0'
)
# PostgreSQL 13 has 24 columns (no leader_pid, query_id)
PG13_LOGIN = (
    '2024-05-01 12:00:03.000 UTC,"bob","shop",4244,"[local]",6632f0a0.1094,2,"authentication",'
    '2024-05-01 12:00:03 UTC,3/13,0,LOG,00000,"connection authorized: user=bob database=shop",'
    ',,,,,,,,"","client backend"'
)


def test_readme_insert_keeps_quoted_commas_and_newlines() -> None:
    events, skips = decode_stream(FMT, README_INSERT.encode() + b"\n")
    assert skips == []
    (e,) = events
    assert e["ts"] == "2024-05-01T12:00:00.123Z"
    assert e["action"] == "insert" and e["action_name"] == "INSERT"
    assert e["actor"] == {"id": "alice", "ip": "10.0.0.5", "session": "6632f0a0.1092"}
    assert e["resource"] == {"db": "shop", "kind": "table", "schema": "public", "name": "account"}
    assert e["rows"] == 1 and e["outcome"] == "success" and e["app"] == "psql"
    assert e["raw"]["audit"][7].endswith("'blah, blah')")
    assert "\n" in e["raw"]["audit"][7]


def test_multi_line_records_are_framed_at_record_boundaries() -> None:
    data = (README_INSERT + "\n" + README_SELECT + "\n" + DENIED + "\n").encode()
    half = data.index(b"values")  # inside the first record's quoted statement
    records, used = FMT.frame(data[:half], False)
    assert (records, used) == ([], 0)
    records, used = FMT.frame(data, False)
    assert len(records) == 3 and used == len(data)
    events, _ = decode_stream(FMT, data)
    assert [e["action"] for e in events] == ["insert", "select", "select"]
    assert events[1]["rows"] == 2


def test_sqlstate_42501_is_denied_with_the_table_from_the_message() -> None:
    e = one(FMT, DENIED)
    assert isinstance(e, dict)
    assert e["outcome"] == "denied" and e["action"] == "select"
    assert e["resource"] == {"db": "shop", "kind": "table", "name": "cards"}
    assert e["actor"]["id"] == "hvac_vendor"


def test_connection_authorized_is_a_login_and_pg13_columns_are_read() -> None:
    e = one(FMT, PG13_LOGIN)
    assert isinstance(e, dict)
    assert e["action"] == "login" and e["outcome"] == "success"
    assert "ip" not in e["actor"]  # [local] is a socket, not an address


def test_stderr_lines_with_the_documented_prefix() -> None:
    data = (
        b"2024-05-01 12:00:00.123 UTC [4242] 00000 alice@shop 10.0.0.5(51234) psql: LOG:  "
        b'AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.account,"select id,\n\tname from account",<not logged>,3\n'
        b"2024-05-01 12:00:01.000 UTC [4243] 42501 hvac_vendor@shop 10.0.0.9(40000) psql: ERROR:  "
        b"permission denied for table cards\n"
        b"2024-05-01 12:00:02.000 UTC [17] 00000 LOG:  checkpoint starting: time\n"
    )
    events, skips = decode_stream(FMT, data)
    assert skips == [Skip("not_data_access")]
    assert events[0]["actor"]["ip"] == "10.0.0.5" and events[0]["rows"] == 3
    assert events[0]["raw"]["audit"][7] == "select id,\nname from account"
    assert events[1]["outcome"] == "denied" and events[1]["resource"]["name"] == "cards"


def test_zones_are_honoured_and_named_zones_refused() -> None:
    assert parse_time("2024-05-01 14:00:00 +02") == parse_time("2024-05-01 12:00:00 UTC")
    assert parse_time("2024-05-01 12:00:00 CEST") is None


def test_malformed_lines_are_invalid_not_errors() -> None:
    bad = [
        b"not a log line",
        b'2024-05-01 12:00:00 UTC,"a","b"',  # too few columns
        README_SELECT.replace(
            "AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.account,", "AUDIT: x"
        ).encode(),
        b"\xff\xfe",
        DENIED.replace("2024-05-01 12:00:02.5 UTC", "2024-13-01 12:00:02.5 UTC").encode(),
    ]
    for line in bad:
        (r,) = FMT.decode(line)
        assert isinstance(r, Skip) and r.invalid, line


def test_the_registry_names_it() -> None:
    assert get_format("pgaudit").name == "pgaudit"


def test_real_postgres_shop(shop_log: bytes) -> None:
    events, skips = decode_stream(FMT, shop_log)
    assert not [s for s in skips if s.invalid]
    assert {s.reason for s in skips} == {"not_data_access"}
    vendor = [e for e in events if e.get("actor", {}).get("id") == "hvac_vendor"]
    assert Counter((e["action"], e["outcome"]) for e in vendor) == {
        ("login", "success"): 4, ("select", "success"): 1, ("select", "denied"): 3,
    }  # fmt: skip
    (bulk,) = [e for e in vendor if e["outcome"] == "success" and e["action"] == "select"]
    assert bulk["resource"] == {
        "db": "shop",
        "kind": "table",
        "schema": "shop",
        "name": "customers",
    }
    assert bulk["rows"] == 500 and bulk["actor"]["ip"] == "127.0.0.1"
    assert bulk["app"] == "test-hvac_vendor"
    for e in vendor:
        if e["outcome"] == "denied":
            assert e["resource"]["name"] == "cards" and e["resource"]["kind"] == "table"
    (ml,) = [e for e in events if e.get("raw", {}).get("audit", [""] * 8)[7] == MULTI]
    assert ml["rows"] == 0 and ml["actor"]["id"] == "shop_app"
    admin = Counter(e["action_name"] for e in events if e["action"] == "admin")
    # GRANT is class ROLE, which pgaudit.log does not name: not logged
    assert admin["CREATE TABLE"] == 2 and admin["CREATE SCHEMA"] == 1
