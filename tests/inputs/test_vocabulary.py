"""The canonical vocabulary holds for every format, so one rule serves all sources:
``action`` a class, ``outcome`` one of three, ``resource.kind`` the README's kinds (the SQL
formats add their own object types, e.g. ``statement``, ``view``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.inputs import Format, get_format
from monitor.inputs.base import ACTIONS, KINDS, OUTCOMES
from tests.inputs import test_mariadb_audit, test_mysql_audit, test_ocsf_custom, test_pgaudit
from tests.inputs.conftest import decode_stream
from tests.inputs.test_cloudtrail import OTRF, STRATUS

SQL_KINDS = {"statement", "view", "materialized view", "index", "sequence", "function", "foreign table"}


def samples() -> Iterator[tuple[str, bytes]]:
    yield "cloudtrail", OTRF.read_bytes()
    yield "cloudtrail", STRATUS.read_bytes()
    pg = test_pgaudit
    yield "pgaudit", "\n".join([pg.README_INSERT, pg.README_SELECT, pg.DENIED, pg.PG13_LOGIN]).encode() + b"\n"
    yield "mariadb-audit", test_mariadb_audit.DOCS
    yield "mysql-audit", test_mysql_audit.ENTERPRISE
    yield "ocsf", b"\n".join(json.dumps(r).encode() for r in (test_ocsf_custom.DATASTORE, test_ocsf_custom.API))


@pytest.mark.parametrize(("name", "data"), list(samples()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_mapped_event_speaks_the_canonical_vocabulary(name: str, data: bytes) -> None:
    fmt: Format = get_format(name)
    events, _ = decode_stream(fmt, data)
    assert events
    for e in events:
        assert e["action"] in ACTIONS, e
        assert isinstance(e["action_name"], str) and e["action_name"]
        assert e.get("outcome") in OUTCOMES, e
        kind: Any = (e.get("resource") or {}).get("kind")
        allowed = set(KINDS) | (SQL_KINDS if name in ("pgaudit", "mariadb-audit", "mysql-audit") else set())
        assert kind is None or kind in allowed, e


def test_cloudtrail_and_its_ocsf_form_give_the_same_canonical_fields() -> None:
    (direct,) = get_format("cloudtrail").decode(json.dumps({
        "eventTime": "2024-06-01T12:00:01Z", "eventName": "GetObject", "eventSource": "s3.amazonaws.com",
        "requestParameters": {"bucketName": "exports"}, "errorCode": "AccessDenied",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/alice"},
    }).encode())  # fmt: skip
    (lake,) = get_format("ocsf").decode(json.dumps(test_ocsf_custom.API).encode())
    assert isinstance(direct, dict) and isinstance(lake, dict)
    for path in ("action", "action_name", "outcome"):
        assert direct[path] == lake[path]
    assert direct["resource"] == lake["resource"] == {"service": "s3", "kind": "bucket", "name": "exports"}
