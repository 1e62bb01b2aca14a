"""``cloudtrail``: AWS CloudTrail records, one a line (a trail to Kafka, CloudWatch or a
log shipper), or a delivery file's ``{"Records": [...]}`` object, which gives many events.

Turn on: a trail with management events, plus S3 and Secrets Manager *data events* on the
buckets that hold customer data (data events are off by default and carry the reads).

| canonical field | from |
|---|---|
| ``ts`` | ``eventTime``, else ``@timestamp`` (a shipper such as Logstash flattened it) |
| ``id`` | ``eventID`` |
| ``actor.id`` | for ``AssumedRole`` the role, ``userIdentity.sessionContext.sessionIssuer.arn`` (session names vary per instance or login); else ``userIdentity.arn``, ``principalId``, ``invokedBy`` |
| ``actor.session`` | ``userIdentity.arn`` |
| ``actor.kind`` | ``userIdentity.type`` (``AssumedRole``, ``IAMUser``, ``Root``, ``AWSService``) |
| ``actor.ip`` / ``actor.host`` | ``sourceIPAddress`` when it is an address / a service name |
| ``app`` | ``userAgent`` |
| ``action_name`` | ``eventName`` |
| ``action`` | :func:`classify` (:data:`LOGIN` and ``AssumeRoleWith*`` → ``login``, :data:`ADMIN` (grants, policies, logging and detection configuration) → ``admin``, S3 ``GetObject`` → ``download``, :data:`EXPORT` (snapshot and image copies) → ``export``, :data:`SELECT` → ``select``, ``List*``/``Describe*``/``Head*`` → ``list``, other ``Get*`` → ``select``, ``Put*``/``Create*`` → ``insert``, ``Update*``/``Modify*`` → ``update``, ``Delete*``/``Remove*``/``Terminate*`` → ``delete``, else ``other``) |
| ``resource.service`` | ``eventSource`` without ``.amazonaws.com`` |
| ``resource.kind`` | by service and event: S3 ``bucket``, Secrets Manager ``secret``, SSM ``*Parameter*`` ``parameter``, EC2/RDS ``*Snapshot*``/``*Image*`` ``snapshot`` and ``*Instance*``/``GetPasswordData`` ``instance``, else ``api`` |
| ``resource.name`` | ``requestParameters.bucketName`` for S3, else the request's secret, parameter, snapshot or instance identifier, else the first ``resources[].ARN`` |
| ``bytes`` | ``additionalEventData.bytesTransferredOut`` |
| ``outcome`` | ``errorCode`` (``Client.`` prefix stripped): access-denied-like and ``UnauthorizedOperation`` → ``denied``, other codes → ``error``, none → ``success`` |
| ``raw.*`` | the record |
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from monitor.event import Event
from monitor.inputs.base import LineFormat, Result, Skip, get, invalid, number, put, text
from monitor.inputs.mariadb_audit import is_address
from monitor.timeparse import format_ts, parse_str

ADMIN = frozenset({
    "StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "PutBucketPolicy",
    "DeleteBucketPolicy", "PutBucketAcl", "PutObjectAcl", "PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock", "DeleteBucketPublicAccessBlock", "PutBucketLogging",
    "ModifySnapshotAttribute", "ModifyImageAttribute", "ModifyDBSnapshotAttribute",
    "PutResourcePolicy", "DeleteResourcePolicy", "AttachUserPolicy", "AttachRolePolicy",
    "PutUserPolicy", "PutRolePolicy", "CreateAccessKey", "CreateLoginProfile",
    "UpdateLoginProfile", "UpdateAssumeRolePolicy", "CreateUser", "DeleteUser",
    "AuthorizeSecurityGroupIngress", "DisableKey", "ScheduleKeyDeletion", "PutKeyPolicy",
    "StartLogging", "DetachRolePolicy", "DetachUserPolicy", "DeleteRolePolicy",
    "DeleteUserPolicy", "AddRoleToInstanceProfile", "LeaveOrganization",
    # logging and detection configuration: turning the lights off before a theft
    "DeleteFlowLogs", "DeleteDetector", "UpdateDetector", "StopConfigurationRecorder",
    "DeleteConfigurationRecorder", "DeleteLogGroup", "PutBucketReplication",
})  # fmt: skip
LOGIN = frozenset({"ConsoleLogin", "AssumeRole", "GetSessionToken", "GetFederationToken", "SwitchRole"})
EXPORT = frozenset({
    "CreateSnapshot", "CopySnapshot", "CopyImage", "CreateImage", "CopyDBSnapshot",
    "CreateDBSnapshot", "ExportImage", "CreateExportTask", "StartExportTask", "CopyObject",
    "GetPasswordData", "ExportSnapshot",
})  # fmt: skip
SELECT = frozenset({"GetSecretValue", "GetParameter", "GetParameters", "GetParametersByPath",
                    "BatchGetSecretValue", "Decrypt", "Query", "Scan", "Select", "SelectObjectContent"})  # fmt: skip
_KIND_BY_SERVICE = {"s3": "bucket", "secretsmanager": "secret"}
_EC2_KINDS = (("Snapshot", "snapshot"), ("Image", "snapshot"), ("Instance", "instance"),
              ("PasswordData", "instance"))  # fmt: skip
_NAME_KEYS = (
    "bucketName", "secretId", "SecretId", "name", "names", "Name", "snapshotId", "SnapshotId",
    "imageId", "instanceId", "dBSnapshotIdentifier", "dBInstanceIdentifier", "keyId", "roleName",
    "userName", "trailName", "functionName",
)  # fmt: skip
_DENIED = re.compile(r"AccessDenied|Unauthorized|Forbidden|NotAuthorized|AuthFailure", re.I)


def classify(name: str, service: str) -> str:
    if name in LOGIN or name.startswith("AssumeRoleWith"):
        return "login"
    if name in ADMIN:
        return "admin"
    if service == "s3" and name in ("GetObject", "GetObjectTorrent"):
        return "download"
    if name in EXPORT:
        return "export"
    if name in SELECT:
        return "select"
    for prefix, action in (("List", "list"), ("Describe", "list"), ("Head", "list"),
                           ("Lookup", "list"), ("Search", "list"), ("Get", "select"),
                           ("BatchGet", "select"), ("Put", "insert"), ("Create", "insert"),
                           ("Upload", "insert"), ("Update", "update"), ("Modify", "update"),
                           ("Delete", "delete"), ("Remove", "delete"), ("Terminate", "delete")):  # fmt: skip
        if name.startswith(prefix):
            return action
    return "other"


def kind(name: str, service: str) -> str:
    if service in _KIND_BY_SERVICE:
        return _KIND_BY_SERVICE[service]
    if service == "ssm":  # Session Manager and Run Command are SSM too, but no parameter
        return "parameter" if "Parameter" in name else "api"
    if service in ("ec2", "rds"):
        for word, k in _EC2_KINDS:
            if word in name:
                return k
    return "api"


def actor_id(ui: Any, record: dict[str, Any]) -> str | None:
    if not isinstance(ui, dict):
        return text(record.get("invokedBy"))
    if ui.get("type") == "AssumedRole":
        issuer = text(get(ui, "sessionContext.sessionIssuer.arn"))
        if issuer:
            return issuer
    return text(ui.get("arn")) or text(ui.get("principalId")) or text(ui.get("invokedBy"))


def _resource_name(record: dict[str, Any], service: str) -> str | None:
    params = record.get("requestParameters")
    if isinstance(params, dict):
        for key in _NAME_KEYS:
            v = params.get(key)
            if isinstance(v, list) and v and isinstance(v[0], str):
                v = v[0]
            if isinstance(v, str) and v:
                return v
        items = get(params, "instancesSet.items")
        if isinstance(items, list) and items and isinstance(items[0], dict):
            return text(items[0].get("instanceId"))
    resources = record.get("resources")
    if isinstance(resources, list):
        for r in resources:
            if isinstance(r, dict) and text(r.get("ARN")):
                return text(r.get("ARN"))
    return None


def map_record(r: Any) -> Event | Skip:
    if not isinstance(r, dict):
        return invalid("not_an_object")
    stamp = r.get("eventTime", r.get("@timestamp"))
    ms = parse_str(stamp) if isinstance(stamp, str) else None
    if ms is None:
        return invalid("missing_time" if stamp is None else "bad_time")
    name = text(r.get("eventName"))
    if name is None:
        return invalid("missing_event_name")
    source = text(r.get("eventSource")) or ""
    service = source.removesuffix(".amazonaws.com")
    e: Event = {"ts": format_ts(ms), "action_name": name}
    put(e, "id", text(r.get("eventID")))
    ui = r.get("userIdentity")
    put(e, "actor.id", actor_id(ui, r))
    if isinstance(ui, dict):
        put(e, "actor.session", text(ui.get("arn")))
        put(e, "actor.kind", text(ui.get("type")))
    ip = text(r.get("sourceIPAddress"))
    if ip:
        put(e, "actor.ip" if is_address(ip) else "actor.host", ip)
    put(e, "app", text(r.get("userAgent")))
    e["action"] = classify(name, service)
    put(e, "resource.service", service)
    e.setdefault("resource", {})["kind"] = kind(name, service)
    put(e, "resource.name", _resource_name(r, service))
    put(e, "bytes", number(get(r, "additionalEventData.bytesTransferredOut")))
    code = text(r.get("errorCode"))
    if code is None:
        e["outcome"] = "success"
    else:
        code = code.removeprefix("Client.")
        e["outcome"] = "denied" if _DENIED.search(code) else "error"
    e["raw"] = r
    return e


class Cloudtrail(LineFormat):
    name = "cloudtrail"

    def decode(self, raw: bytes) -> Result:
        try:
            r = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [invalid("invalid_json")]
        if isinstance(r, dict) and "Records" in r and "eventName" not in r:
            records = r["Records"]
            if not isinstance(records, list):
                return [invalid("bad_records")]
            return [map_record(x) for x in records] or [Skip("empty_delivery")]
        return [map_record(r)]
