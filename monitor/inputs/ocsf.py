"""``ocsf``: OCSF 1.3.0 records (e.g. from Amazon Security Lake), one JSON object a line,
classes Datastore Activity (6005) and API Activity (6003). Pinned to schema 1.3.0: other
classes are skipped as ``other_class``.

| canonical field | from |
|---|---|
| ``ts`` | ``time`` (epoch ms) |
| ``id`` | ``metadata.uid`` |
| ``actor.id`` | ``actor.user.name``, else ``actor.user.uid`` |
| ``actor.kind`` | ``actor.user.type`` |
| ``actor.session`` | ``actor.session.uid`` |
| ``actor.ip`` | ``src_endpoint.ip`` |
| ``app`` | ``actor.app_name`` |
| ``action_name`` | ``api.operation``, else ``activity_name`` |
| ``action`` | ``activity_id`` by :data:`DATASTORE` (6005) or :data:`API` (6003); for an AWS service's API (``api.service.name`` ``*.amazonaws.com``, as Security Lake writes CloudTrail) the operation's class as ``cloudtrail`` classifies it |
| ``resource.service`` | ``api.service.name``, without ``.amazonaws.com`` (``s3``, as ``cloudtrail`` gives it) |
| ``resource.kind`` | ``table`` with ``table``, ``bucket`` with ``databucket``; else for an AWS API the kind ``cloudtrail`` gives; ``api`` otherwise |
| ``resource.db`` | ``database.name`` |
| ``resource.name`` | ``table.name``, ``databucket.name``, else ``resources[0].name``/``uid`` |
| ``rows`` | ``query_info.num_rows`` (where the producer fills it) |
| ``bytes`` | ``query_info.bytes`` |
| ``outcome`` | ``status_id`` 1 ``success``; 2 ``denied`` when ``status_code``/``status_detail`` say access denied, else ``error``; other ``success`` |
| ``raw.*`` | the record |
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from monitor.event import Event
from monitor.inputs.base import LineFormat, Result, Skip, get, invalid, number, put, text
from monitor.inputs.cloudtrail import classify, kind
from monitor.timeparse import format_ts, parse_ts

VERSION = "1.3.0"
DATASTORE = {1: "select", 2: "update", 3: "login", 4: "select", 5: "insert", 6: "admin",
             7: "delete", 8: "list", 9: "other", 10: "select", 99: "other", 0: "other"}  # fmt: skip
API = {1: "insert", 2: "select", 3: "update", 4: "delete", 99: "other", 0: "other"}
_DENIED = re.compile(r"denied|unauthori[sz]ed|forbidden", re.I)


def map_record(r: Any) -> Event | Skip:
    if not isinstance(r, dict):
        return invalid("not_an_object")
    klass = number(r.get("class_uid"))
    if klass not in (6005, 6003):
        return Skip("other_class")
    t = r.get("time")
    ms = parse_ts(t) if t is not None and not isinstance(t, bool) else None
    if ms is None:
        return invalid("missing_time" if t is None else "bad_time")
    activity = number(r.get("activity_id"))
    table = DATASTORE if klass == 6005 else API
    e: Event = {"ts": format_ts(ms)}
    put(e, "id", text(get(r, "metadata.uid")))
    put(e, "actor.id", text(get(r, "actor.user.name")) or text(get(r, "actor.user.uid")))
    put(e, "actor.kind", text(get(r, "actor.user.type")))
    put(e, "actor.session", text(get(r, "actor.session.uid")))
    put(e, "actor.ip", text(get(r, "src_endpoint.ip")))
    put(e, "app", text(get(r, "actor.app_name")))
    e["action_name"] = (
        text(get(r, "api.operation")) or text(r.get("activity_name")) or str(activity)
    )
    e["action"] = table.get(activity if activity is not None else 0, "other")
    service = text(get(r, "api.service.name"))
    aws = service.removesuffix(".amazonaws.com") if service and service.endswith(".amazonaws.com") else None
    operation = text(get(r, "api.operation"))
    if klass == 6003 and aws and operation:  # one rule for CloudTrail read directly or via OCSF
        e["action"] = classify(operation, aws)
    put(e, "resource.service", aws or service)
    tname, bucket = text(get(r, "table.name")), text(get(r, "databucket.name"))
    other = kind(operation, aws) if aws and operation else "api"
    e.setdefault("resource", {})["kind"] = "table" if tname else "bucket" if bucket else other
    put(e, "resource.db", text(get(r, "database.name")))
    name = tname or bucket
    if name is None:
        res = r.get("resources")
        if isinstance(res, list) and res and isinstance(res[0], dict):
            name = text(res[0].get("name")) or text(res[0].get("uid"))
    put(e, "resource.name", name)
    put(e, "rows", number(get(r, "query_info.num_rows")))
    put(e, "bytes", number(get(r, "query_info.bytes")))
    status = number(r.get("status_id"))
    if status == 2:
        why = f"{r.get('status_code') or ''} {r.get('status_detail') or ''}"
        e["outcome"] = "denied" if _DENIED.search(why) else "error"
    else:
        e["outcome"] = "success"
    e["raw"] = r
    return e


class Ocsf(LineFormat):
    name = "ocsf"

    def decode(self, raw: bytes) -> Result:
        try:
            r = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [invalid("invalid_json")]
        return [map_record(r)]
