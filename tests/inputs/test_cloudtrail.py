"""cloudtrail: the CloudTrail User Guide's record samples and the two public recordings."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from monitor.inputs import Skip, get_format
from tests.inputs.conftest import decode_stream, one

FMT = get_format("cloudtrail")
DATA = Path(__file__).resolve().parents[1] / "data"
OTRF = DATA / "cloudtrail-otrf-s3-exfil" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
STRATUS = DATA / "cloudtrail-invictus-stratus" / "records.jsonl"
ROLE = "arn:aws:iam::123456789123:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"

# CloudTrail User Guide, "CloudTrail record contents for data events": an S3 GetObject
GET_OBJECT = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "AssumedRole", "principalId": "AROAEXAMPLE:alice",
        "arn": "arn:aws:sts::111122223333:assumed-role/reports/alice", "accountId": "111122223333",
        "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                                             "arn": "arn:aws:iam::111122223333:role/reports",
                                             "accountId": "111122223333", "userName": "reports"}},
    },
    "eventTime": "2023-10-19T17:03:21Z", "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
    "awsRegion": "us-east-1", "sourceIPAddress": "192.0.2.10", "userAgent": "aws-cli/2.13",
    "requestParameters": {"bucketName": "customer-exports", "key": "orders.csv"},
    "additionalEventData": {"bytesTransferredIn": 0, "bytesTransferredOut": 4096},
    "eventID": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111", "readOnly": True,
    "resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::customer-exports/orders.csv"}],
    "eventType": "AwsApiCall", "managementEvent": False,
}  # fmt: skip
# "AWS Secrets Manager log entries": a denied GetSecretValue by an IAM user
DENIED_SECRET = {
    "eventVersion": "1.08",
    "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": "arn:aws:iam::111122223333:user/mallory",
                     "accountId": "111122223333", "userName": "mallory"},
    "eventTime": "2023-10-19T17:05:00Z", "eventSource": "secretsmanager.amazonaws.com",
    "eventName": "GetSecretValue", "sourceIPAddress": "secretsmanager.amazonaws.com",
    "errorCode": "AccessDenied", "errorMessage": "User is not authorized",
    "requestParameters": {"secretId": "prod/shop/db"}, "responseElements": None,
    "eventID": "b2c3d4e5-6789-0abc-def0-EXAMPLE22222",
}  # fmt: skip


def test_s3_get_object_is_a_download_by_the_role() -> None:
    e = one(FMT, json.dumps(GET_OBJECT))
    assert isinstance(e, dict)
    assert e["ts"] == "2023-10-19T17:03:21.000Z" and e["id"] == GET_OBJECT["eventID"]
    assert e["action"] == "download" and e["action_name"] == "GetObject"
    assert e["actor"] == {
        "id": "arn:aws:iam::111122223333:role/reports",
        "session": "arn:aws:sts::111122223333:assumed-role/reports/alice",
        "kind": "AssumedRole", "ip": "192.0.2.10",
    }  # fmt: skip
    assert e["resource"] == {"service": "s3", "kind": "bucket", "name": "customer-exports"}
    assert e["bytes"] == 4096 and e["outcome"] == "success"
    assert e["raw"]["requestParameters"]["key"] == "orders.csv"


def test_denied_secret_read_and_a_service_as_source() -> None:
    e = one(FMT, json.dumps(DENIED_SECRET))
    assert isinstance(e, dict)
    assert e["action"] == "select" and e["outcome"] == "denied"
    assert e["resource"] == {"service": "secretsmanager", "kind": "secret", "name": "prod/shop/db"}
    assert e["actor"]["id"] == "arn:aws:iam::111122223333:user/mallory"
    assert e["actor"]["host"] == "secretsmanager.amazonaws.com" and "ip" not in e["actor"]
    other = one(FMT, json.dumps({**DENIED_SECRET, "errorCode": "Client.UnauthorizedOperation"}))
    assert isinstance(other, dict) and other["outcome"] == "denied"
    throttled = one(FMT, json.dumps({**DENIED_SECRET, "errorCode": "ThrottlingException"}))
    assert isinstance(throttled, dict) and throttled["outcome"] == "error"


def test_a_delivery_file_gives_every_record() -> None:
    data = json.dumps({"Records": [GET_OBJECT, DENIED_SECRET, 3]}).encode()
    results = FMT.decode(data)
    assert [r["action"] for r in results if isinstance(r, dict)] == ["download", "select"]
    assert results[2] == Skip("not_an_object", True)


def test_logstash_timestamp_and_malformed_lines() -> None:
    flat = {k: v for k, v in GET_OBJECT.items() if k != "eventTime"} | {
        "@timestamp": "2020-09-14T00:44:23.000Z"
    }
    e = one(FMT, json.dumps(flat))
    assert isinstance(e, dict) and e["ts"] == "2020-09-14T00:44:23.000Z"
    for line in (b"{", b"[]", b'{"eventName": "GetObject"}', b'{"eventTime": "yesterday", "eventName": "X"}',
                 b'{"eventTime": "2020-09-14T00:44:23Z"}', b'{"Records": 5}'):  # fmt: skip
        (r,) = FMT.decode(line)
        assert isinstance(r, Skip) and r.invalid, line


def _classes(path: Path) -> tuple[Counter[str], list[dict[str, object]]]:
    events, skips = decode_stream(FMT, path.read_bytes())
    assert skips == []
    return Counter(str(e["action"]) for e in events), events


def test_otrf_recording_every_record_maps_and_the_sweep_is_downloads_with_bytes() -> None:
    classes, events = _classes(OTRF)
    assert sum(classes.values()) == 103
    assert classes == {"list": 94, "login": 5, "download": 2, "select": 2}
    sweep = [e for e in events if e["actor"]["id"] == ROLE and e["action"] == "download"]  # type: ignore[index]
    assert len(sweep) == 2
    for e in sweep:
        assert e["resource"] == {
            "service": "s3",
            "kind": "bucket",
            "name": "mordors3stack-s3bucket-llp2yingx64a",
        }
        assert isinstance(e["bytes"], int) and e["bytes"] > 0
    listed = [e for e in events if e["actor"]["id"] == ROLE and e["action"] == "list"]  # type: ignore[index]
    assert {e["action_name"] for e in listed} >= {"ListBuckets", "ListObjects"}


def test_stratus_recording_every_record_maps() -> None:
    classes, events = _classes(STRATUS)
    assert sum(classes.values()) == 2900
    assert classes == {
        "list": 1355, "select": 831, "insert": 203, "delete": 185, "other": 158,
        "admin": 67, "login": 51, "export": 32, "update": 18,
    }  # fmt: skip
    admin = {e["action_name"] for e in events if e["action"] == "admin"}
    assert {"StopLogging", "StartLogging", "ModifySnapshotAttribute", "PutBucketPolicy"} <= admin
    kinds = Counter(e["resource"]["kind"] for e in events)  # type: ignore[index]
    # SSM's Run Command and instance inventory calls are no parameter reads
    assert kinds["secret"] == 233 and kinds["parameter"] == 354 and kinds["snapshot"] == 61
    assert {e["resource"]["kind"] for e in events if e["action_name"] == "SendCommand"} == {"api"}  # type: ignore[index]
    deleted_logs = {e["action_name"]: e["action"] for e in events if e["action_name"] in ("DeleteFlowLogs", "DeleteDetector")}
    assert set(deleted_logs.values()) == {"admin"}
    secrets = [e for e in events if e["action_name"] == "GetSecretValue"]
    assert secrets and all(e["action"] == "select" for e in secrets)
