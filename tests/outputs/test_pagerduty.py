"""PagerDuty Events API v2 payloads, field by field, and the answers' classification."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr, ValidationError

from monitor.outputs import pagerduty as pd
from monitor.privacy import Masker
from tests.outputs.conftest import MakeAlert
from tests.support.recorder import Recorder, Reply

KEY = "R0123456789abcdef0123456789abcde"
CONFIG = pd.PagerDutyConfig(type="pagerduty", routing_key=SecretStr(KEY),
                            generator_url="https://monitor.example/alerts/{id}")  # fmt: skip

# From developer.pagerduty.com "Send an Alert Event" / "Events API v2 Overview".
EVENT_KEYS = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
PAYLOAD_KEYS = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}


def check_event(e: dict[str, Any]) -> None:
    """Validity per PagerDuty's public Events API v2 documentation."""
    assert set(e) <= EVENT_KEYS
    assert isinstance(e["routing_key"], str) and len(e["routing_key"]) == 32
    assert e["event_action"] in ("trigger", "acknowledge", "resolve")
    assert isinstance(e["dedup_key"], str) and 0 < len(e["dedup_key"]) <= 255
    if e["event_action"] != "trigger":
        return
    p = e["payload"]
    assert set(p) <= PAYLOAD_KEYS
    assert isinstance(p["summary"], str) and 0 < len(p["summary"]) <= 1024
    assert isinstance(p["source"], str) and p["source"]
    assert p["severity"] in ("critical", "error", "warning", "info")
    datetime.fromisoformat(p["timestamp"])  # ISO 8601
    assert isinstance(p.get("custom_details", {}), dict)
    for link in e.get("links", []):
        assert set(link) <= {"href", "text"} and link["href"].startswith("https://")


def record(make_alert: MakeAlert, **changes: Any) -> dict[str, Any]:
    r = make_alert(1).to_dict() | {"type": "alert"}
    r["annotations"] = {**r["annotations"], "runbook": "https://wiki.example/runbooks/bulk-read"}
    return r | changes


def test_trigger_fields(make_alert: MakeAlert) -> None:
    r = record(make_alert, unit="rows")
    e = pd.trigger(r, CONFIG, source="monitor-0")
    check_event(e)
    p = e["payload"]
    assert e["event_action"] == "trigger" and e["routing_key"] == KEY
    assert p["severity"] == "error"  # high
    assert p["source"] == "monitor-0"
    assert p["timestamp"] == r["fired_at"]
    assert p["class"] == "bulk-customer-read"
    assert p["component"] == "actor.id=actor-1"
    assert p["group"] == "security"
    assert p["summary"].startswith(
        "bulk-customer-read (high): actor.id=actor-1: 50,002 rows in 10m, over the limit of 50,000"
    )
    d = p["custom_details"]
    assert d["value"] == 50_002 and d["threshold"] == {"gt": 50_000} and d["window"] == "10m"
    assert d["group"] == {"actor.id": "actor-1"} and d["sample_event_ids"] == ["evt-1"]
    assert d["runbook"] == "https://wiki.example/runbooks/bulk-read"
    assert e["links"] == [
        {"href": "https://wiki.example/runbooks/bulk-read", "text": "Runbook"},
        {"href": f"https://monitor.example/alerts/{r['id']}", "text": "Alert in exfil-monitor"},
    ]


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("critical", "critical"), ("high", "error"), ("medium", "warning"), ("low", "info"), ("info", "info")],
)
def test_severity_mapping(make_alert: MakeAlert, severity: str, expected: str) -> None:
    assert pd.trigger(record(make_alert, severity=severity), CONFIG, source="m")["payload"]["severity"] == expected


def test_summary_is_cut_to_1024(make_alert: MakeAlert) -> None:
    e = pd.trigger(record(make_alert, summary="x" * 5000), CONFIG, source="m")
    check_event(e)
    assert len(e["payload"]["summary"]) == 1024 and e["payload"]["summary"].endswith("…")


def test_one_dedup_key_per_episode(make_alert: MakeAlert) -> None:
    first = record(make_alert)
    repeat = record(make_alert, fired_at="2026-11-18T09:00:00.000Z", id="ffff", episode_start=first["fired_at"])
    resolved = {"type": "resolved", "id": first["id"], "rule": first["rule"], "group": first["group"],
                "episode_start": first["fired_at"], "resolved_at": "2026-11-18T10:00:00.000Z"}  # fmt: skip
    later = record(make_alert, fired_at="2026-11-18T11:00:00.000Z", episode_start="2026-11-18T11:00:00.000Z")
    keys = [pd.event(r, CONFIG, source="m")["dedup_key"] for r in (first, repeat, resolved, later)]
    assert keys[0] == keys[1] == keys[2] != keys[3]
    res = pd.event(resolved, CONFIG, source="m")
    check_event(res)
    assert res == {"routing_key": KEY, "event_action": "resolve", "dedup_key": keys[0]}
    assert "actor-1" not in keys[0]  # the key names no actor in clear


def test_masked_record_sends_no_card_or_email(make_alert: MakeAlert) -> None:
    r = record(make_alert, summary="jane@shop.example paid 4111 1111 1111 1111",
               description="card 4111111111111111")  # fmt: skip
    text = str(pd.trigger(Masker().alert(r), CONFIG, source="m"))
    assert "4111 1111 1111 1111" not in text and "4111111111111111" not in text
    assert "jane@" not in text and "[card ****1111]" in text


def test_routing_key_from_file_and_never_shown(tmp_path: Path) -> None:
    f = tmp_path / "pd"
    f.write_text(KEY + "\n")
    c = pd.PagerDutyConfig(type="pagerduty", routing_key_file=f)
    assert c.routing_key is not None and c.routing_key.get_secret_value() == KEY
    assert KEY not in repr(c) and KEY not in str(c.model_dump())
    assert c.url == "https://events.pagerduty.com/v2/enqueue"
    assert c.min_interval == 0.5  # 120 events a minute
    with pytest.raises(ValidationError, match="give routing_key"):
        pd.PagerDutyConfig(type="pagerduty")


@pytest.mark.parametrize(
    ("reply", "verdict", "retry_after"),
    [
        (Reply(202, '{"status":"success","message":"Event processed","dedup_key":"k"}'), "done", None),
        (Reply(400, '{"status":"invalid event","message":"Event object is invalid"}'), "reject", None),
        (Reply(429, "", {"Retry-After": "7"}), "retry", 7.0),
        (Reply(429), "retry", None),
        (Reply(500), "retry", None),
        (Reply(503), "retry", None),
        (Reply(200), "reject", None),  # not PagerDuty's answer: a wrong URL
        (Reply(404), "reject", None),
    ],
)
async def test_send_classifies_the_answer(make_alert: MakeAlert, reply: Reply, verdict: str,
                                          retry_after: float | None) -> None:  # fmt: skip
    async with Recorder(reply) as rec, aiohttp.ClientSession() as s:
        c = CONFIG.model_copy(update={"url": rec.url + "/v2/enqueue"})
        e = pd.trigger(record(make_alert), c, source="m")
        got = await pd.send(s, c, e)
    assert (got.verdict, got.retry_after) == (verdict, retry_after)
    [req] = rec.requests
    assert req.method == "POST" and req.path == "/v2/enqueue"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == e
    check_event(req.json())
    if verdict == "reject":
        assert str(reply.status) in got.detail


async def test_hang_and_refused_connection_are_retried(make_alert: MakeAlert) -> None:
    async with Recorder(Reply(hang=True)) as rec, aiohttp.ClientSession() as s:
        c = CONFIG.model_copy(update={"url": rec.url, "send_timeout": 0.2})
        got = await pd.send(s, c, pd.trigger(record(make_alert), c, source="m"))
        assert (got.verdict, got.reason) == ("retry", "timeout")
    async with aiohttp.ClientSession() as s:  # the recorder is gone: nothing listens
        got = await pd.send(s, c, pd.trigger(record(make_alert), c, source="m"))
    assert (got.verdict, got.reason) == ("retry", "network")
