"""ocsf (1.3.0 classes 6005 and 6003, shaped like the schema's examples) and custom mappings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from monitor.inputs import Skip, UnknownFormat, get_format
from tests.inputs.conftest import one

OCSF = get_format("ocsf")
DATASTORE = {
    "class_uid": 6005, "category_uid": 6, "activity_id": 1, "activity_name": "Read", "time": 1717243200123,
    "metadata": {"uid": "evt-1", "version": "1.3.0", "product": {"name": "Aurora"}},
    "actor": {"user": {"name": "hvac_vendor", "uid": "u-9", "type": "User"}, "session": {"uid": "s-1"}},
    "src_endpoint": {"ip": "10.0.0.9"}, "database": {"name": "shop"}, "table": {"name": "customers"},
    "query_info": {"query_string": "SELECT * FROM customers", "bytes": 52000, "num_rows": 500},
    "status_id": 1, "severity_id": 1,
}  # fmt: skip
API = {
    "class_uid": 6003, "activity_id": 2, "time": 1717243201000, "status_id": 2, "status_code": "AccessDenied",
    "api": {"operation": "GetObject", "service": {"name": "s3.amazonaws.com"}},
    "actor": {"user": {"uid": "AROA:alice", "type": "AssumedRole"}}, "databucket": {"name": "exports"},
    "src_endpoint": {"ip": "192.0.2.1"},
}  # fmt: skip


def test_datastore_activity() -> None:
    e = one(OCSF, json.dumps(DATASTORE))
    assert isinstance(e, dict)
    assert e["ts"] == "2024-06-01T12:00:00.123Z" and e["id"] == "evt-1"
    assert e["action"] == "select" and e["action_name"] == "Read"
    assert e["actor"] == {"id": "hvac_vendor", "kind": "User", "session": "s-1", "ip": "10.0.0.9"}
    assert e["resource"] == {"kind": "table", "db": "shop", "name": "customers"}
    assert e["rows"] == 500 and e["bytes"] == 52000 and e["outcome"] == "success"


def test_api_activity_denied() -> None:
    e = one(OCSF, json.dumps(API))
    assert isinstance(e, dict)
    # classified as CloudTrail's own GetObject is, so one rule serves both
    assert e["action"] == "download" and e["action_name"] == "GetObject" and e["outcome"] == "denied"
    assert e["resource"] == {"service": "s3", "kind": "bucket", "name": "exports"}


def test_api_activity_of_other_services_keeps_the_activity_table() -> None:
    e = one(OCSF, json.dumps({**API, "api": {"operation": "GetThing", "service": {"name": "shop-api"}},
                              "databucket": None}))  # fmt: skip
    assert isinstance(e, dict)
    assert e["action"] == "select" and e["resource"] == {"service": "shop-api", "kind": "api"}
    secret = one(OCSF, json.dumps({**API, "api": {"operation": "GetSecretValue",
                                                  "service": {"name": "secretsmanager.amazonaws.com"}},
                                   "databucket": None}))  # fmt: skip
    assert isinstance(secret, dict)
    assert secret["action"] == "select" and secret["resource"]["kind"] == "secret"


def test_other_classes_skipped_and_malformed_invalid() -> None:
    assert one(OCSF, json.dumps({"class_uid": 3002, "time": 1})) == Skip("other_class")
    for line in (b"{", b"[1]", json.dumps({**DATASTORE, "time": "soon"}).encode(),
                 json.dumps({k: v for k, v in DATASTORE.items() if k != "time"}).encode()):  # fmt: skip
        (r,) = OCSF.decode(line)
        assert isinstance(r, Skip) and r.invalid


def test_custom_mapping_renames_and_sets_constants() -> None:
    custom = {"shop-api": {"from": "jsonl", "fields": {"actor.id": "user.name", "ts": "time"},
                           "constants": {"resource.kind": "api", "action": "select"}}}  # fmt: skip
    fmt = get_format("shop-api", custom)
    e = one(fmt, b'{"time": "2024-06-01T12:00:00Z", "user": {"name": "ann"}, "path": "/orders"}')
    assert isinstance(e, dict)
    assert e["ts"] == "2024-06-01T12:00:00Z" and e["actor"] == {"id": "ann"}
    assert e["resource"] == {"kind": "api"} and e["action"] == "select" and e["path"] == "/orders"
    assert e["raw"]["user"] == {"name": "ann"}
    (bad,) = fmt.decode(b"{")
    assert bad == Skip("invalid_json", True)


def test_custom_mapping_errors() -> None:
    with pytest.raises(UnknownFormat, match="known: jsonl"):
        get_format("nope")
    with pytest.raises(UnknownFormat, match="from: unknown format 'csv'"):
        get_format("x", {"x": {"from": "csv"}})
    with pytest.raises(ValidationError, match="feilds"):
        get_format("x", {"x": {"from": "jsonl", "feilds": {}}})
