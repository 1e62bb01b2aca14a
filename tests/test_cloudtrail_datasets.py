"""Real, public AWS CloudTrail recordings of attack simulations, replayed through rules in
tests/fixtures/rules/cloudtrail: data in a format nobody on this project wrote.

The recordings live in ``tests/data`` with their MIT licences (see that folder's README).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.decode import Decoder
from monitor.timeparse import format_ts, parse_ts

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "tests" / "data"
RULES = REPO / "tests" / "fixtures" / "rules" / "cloudtrail"
OTRF = DATASETS / "cloudtrail-otrf-s3-exfil" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
STRATUS = DATASETS / "cloudtrail-invictus-stratus" / "records.jsonl"

INSTANCE_ROLE = "arn:aws:sts::123456789123:assumed-role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0/i-0317f6c6b66ae9c40"
ATTACKER = "arn:aws:iam::123837392027:user/bert-jan"
PASSWORD_ROLE = "arn:aws:sts::123837392027:assumed-role/stratus-red-team-ec2-get-password-data-role/aws-go-sdk-1688990082523310002"


def _dataset(path: Path) -> Path:
    assert path.is_file(), f"public CloudTrail recording {path} is missing from the repository"
    return path


@pytest.fixture
def otrf() -> Path:
    return _dataset(OTRF)


@pytest.fixture
def stratus() -> Path:
    return _dataset(STRATUS)


Replay = Callable[..., tuple[list[dict[str, Any]], dict[str, str]]]


@pytest.fixture
def replay() -> Replay:
    """``replay(file, *options)``: ``exfil-monitor replay`` as a process, with the
    CloudTrail rules; (alerts, summary lines as name -> value)."""

    def run(path: Path, *options: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "replay", "--rules", str(RULES), *options, str(path)],
            capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        summary = {}
        for line in done.stderr.splitlines():
            key, _, value = line.strip().partition(": ")
            summary[key] = value
        return [json.loads(line) for line in done.stdout.splitlines()], summary

    return run


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def nth_time(events: list[dict[str, Any]], field: str, n: int) -> str:
    """RFC 3339 of the nth event's time in file order (how the engine meets them)."""
    ms = parse_ts(events[n - 1][field])
    assert ms is not None
    return format_ts(ms)


def brief(alerts: list[dict[str, Any]]) -> list[tuple[str, str | None, Any, str]]:
    return [(a["rule"], a["group"]["userIdentity.arn"], a["value"], a["fired_at"]) for a in alerts]


# -- every record decodes ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "field", "count"), [("otrf", "@timestamp", 103), ("stratus", "eventTime", 2900)])
def test_every_record_decodes(request: pytest.FixtureRequest, name: str, field: str, count: int) -> None:
    path: Path = request.getfixturevalue(name)
    lines = path.read_bytes().splitlines()
    decoder = Decoder(time_field=field)
    good, bad = decoder.decode(lines)
    assert bad == []
    assert decoder.finish() == []
    assert len(good) == count == len(records(path))
    assert all(ts == parse_ts(e[field]) for e, ts in good)


# -- OTRF: stolen EC2 instance-role credentials list and copy a bucket -----------------------


def test_s3_exfiltration_with_an_instance_role(otrf: Path, replay: Replay) -> None:
    # CloudTrail delivers out of order (here by up to 9 minutes): allow for it
    alerts, summary = replay(otrf, "--time-field", "@timestamp", "--allowed-lateness", "10m")
    events = records(otrf)
    s3_reads = [
        e for e in events
        if e["eventSource"] == "s3.amazonaws.com" and e["userIdentity"].get("type") == "AssumedRole"
    ]  # fmt: skip
    data_events = [e for e in s3_reads if e.get("eventCategory") == "Data"]
    assert {e["userIdentity"]["arn"] for e in s3_reads} == {INSTANCE_ROLE}
    assert brief(alerts) == [
        # the fifth listing or read, all within 2 minutes of the first
        ("ct-s3-read-burst", INSTANCE_ROLE, 5, nth_time(s3_reads, "@timestamp", 5)),
        # 4 x 500 + 89 bytes in the first round, then 524 + 524 in the second: 3137 > 3000
        ("ct-s3-bytes-out", INSTANCE_ROLE, 3137, nth_time(data_events, "@timestamp", 7)),
    ]
    assert [a["fired_at"] for a in alerts] == ["2020-09-14T01:02:34.000Z", "2020-09-14T01:12:43.000Z"]
    assert alerts[0]["summary"] == f"{INSTANCE_ROLE} made 5 S3 reads in 10m"
    assert alerts[0]["sample_event_ids"] == []  # records carry eventID, not an `id` field
    assert summary["events read"].startswith("103 in ")
    assert summary["events used"] == "103"
    assert summary["invalid"] == "0"
    assert summary["late (dropped from windowed rules)"] == "0"


def test_out_of_order_delivery_is_late_with_the_default_lateness(otrf: Path, replay: Replay) -> None:
    alerts, summary = replay(otrf, "--time-field", "@timestamp")
    assert summary["invalid"] == "0"
    assert summary["late (dropped from windowed rules)"] != "0"
    assert [a["rule"] for a in alerts] == ["ct-s3-read-burst", "ct-s3-bytes-out"]


# -- Stratus Red Team: secrets, parameters and password data read --------------------------------


def test_credential_harvesting(stratus: Path, replay: Replay) -> None:
    alerts, summary = replay(stratus, "--time-field", "eventTime")
    events = records(stratus)
    reads = [
        e for e in events
        if e["eventName"] in ("GetSecretValue", "GetParameter", "GetParameters") and "errorCode" not in e
    ]  # fmt: skip
    password = [e for e in events if e["eventName"] == "GetPasswordData"]
    seen: list[str] = []
    tenth_distinct = None
    for e in events:
        if e["eventName"] == "GetSecretValue" and e["userIdentity"].get("arn") == ATTACKER:
            if e["requestParameters"]["secretId"] not in seen:
                seen.append(e["requestParameters"]["secretId"])
            if len(seen) == 10 and tenth_distinct is None:
                tenth_distinct = e
    assert tenth_distinct is not None
    by_attacker = [e for e in reads if e["userIdentity"].get("arn") == ATTACKER]
    assert {e["userIdentity"]["arn"] for e in password} == {PASSWORD_ROLE}

    assert sorted(brief(alerts)) == sorted(
        [
            ("ct-ec2-password-data", PASSWORD_ROLE, 10, nth_time(password, "eventTime", 10)),
            ("ct-distinct-secrets", ATTACKER, 10, nth_time([tenth_distinct], "eventTime", 1)),
            ("ct-secrets-read-burst", ATTACKER, 20, nth_time(by_attacker, "eventTime", 20)),
        ]
    )
    assert {a["fired_at"] for a in alerts} == {"2023-07-10T11:54:48.000Z", "2023-07-10T11:57:50.000Z"}
    burst = next(a for a in alerts if a["rule"] == "ct-secrets-read-burst")
    assert burst["summary"] == f"{ATTACKER} read 20 secrets or parameters in 5m"
    assert burst["severity"] == "critical"
    # the attacker read about 60 secrets and 80 parameters within the hour: one alert, suppressed after
    assert len(by_attacker) > 100
    assert summary["events read"].startswith("2900 in ")
    assert summary["events used"] == "2900"
    assert summary["invalid"] == "0"
    assert summary["alerts"] == "3"


def test_the_cloudtrail_rules_check(capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    assert main(["check", str(RULES)]) == 0
    assert capsys.readouterr().out == "ok: 5 rules (5 enabled) in 2 file(s), 1 list(s), 0 schedule(s)\n"
