"""PagerDuty Events API v2 payloads, field by field, and the answers' classification."""

from __future__ import annotations

import socket
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from monitor.outputs import pagerduty as pd
from monitor.outputs.base import Rejected, RetryLater
from monitor.privacy import Masker
from monitor.telemetry import Telemetry
from tests.outputs.conftest import MakeAlert, MakeDelivery, attempt, metric, sends, until
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
    assert c.min_interval == 500  # ms: 120 events a minute
    with pytest.raises(ValidationError, match="give routing_key"):
        pd.PagerDutyConfig(type="pagerduty")


def output(url: str, **kw: Any) -> pd.PagerDutyOutput:
    return pd.PagerDutyOutput(pd.PagerDutyConfig.model_validate(
        {"type": "pagerduty", "routing_key": KEY, "generator_url": CONFIG.generator_url, "url": url, **kw}
    ))  # fmt: skip


@pytest.mark.parametrize(
    ("reply", "raised", "retry_after"),
    [
        (Reply(202, '{"status":"success","message":"Event processed","dedup_key":"k"}'), None, None),
        (Reply(400, '{"status":"invalid event","message":"Event object is invalid"}'), Rejected, None),
        (Reply(429, "", {"Retry-After": "7"}), RetryLater, 7.0),
        (Reply(429), RetryLater, None),
        (Reply(500), RetryLater, None),
        (Reply(503), RetryLater, None),
        (Reply(200), Rejected, None),  # not PagerDuty's answer: a wrong URL
        (Reply(404), Rejected, None),
    ],
)
async def test_one_attempt_is_judged_by_the_answer(make_alert: MakeAlert, reply: Reply, raised: type | None,
                                                   retry_after: float | None) -> None:  # fmt: skip
    async with Recorder(reply) as rec:
        got = await attempt(output(rec.url + "/v2/enqueue"), [record(make_alert)])
    assert type(got) is (raised or type(None))
    if isinstance(got, RetryLater):
        assert got.delay == retry_after
    if isinstance(got, Rejected):
        assert str(reply.status) in got.answer and got.reason == f"http_{reply.status}"
    [req] = rec.requests
    assert req.method == "POST" and req.path == "/v2/enqueue"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == pd.trigger(record(make_alert), CONFIG, source=socket.gethostname())
    check_event(req.json())


async def test_an_episode_is_one_incident_through_delivery(make_alert: MakeAlert, make_delivery: MakeDelivery,
                                                           telemetry: Telemetry) -> None:  # fmt: skip
    """Trigger, a repeat of the episode, and its resolve reach PagerDuty under one dedup key,
    in order, paced; a 500, a 429 with Retry-After and a hang on the way are retried."""
    first = record(make_alert)
    repeat = record(make_alert, id="ffff", fired_at="2026-11-18T09:00:00.000Z", episode_start=first["fired_at"])
    resolved = {"type": "resolved", "id": first["id"], "rule": first["rule"], "group": first["group"],
                "episode_start": first["fired_at"], "resolved_at": "2026-11-18T10:00:00.000Z"}  # fmt: skip
    ok = Reply(202, '{"status":"success"}')
    async with Recorder(Reply(500), ok, Reply(429, "", {"Retry-After": "1"}), Reply(hang=True), default=ok) as rec:
        d = make_delivery([output(rec.url, min_interval="200ms", send_timeout="300ms")])
        await d.start()
        d.submit([first, repeat, resolved])
        await until(lambda: not d.spools["pagerduty"].depth, "all three delivered", seconds=10)
    events = [r.json() for r in rec.requests]
    assert [e["event_action"] for e in events] == ["trigger"] * 5 + ["resolve"]
    assert len({e["dedup_key"] for e in events}) == 1
    for e in events:
        check_event(e)
    assert all(b.at - a.at >= 0.2 - 0.01 for a, b in pairwise(rec.requests))  # paced
    assert rec.requests[3].at - rec.requests[2].at >= 1.0  # the 429's Retry-After
    assert sends(telemetry, "pagerduty", "success") == 3
    for reason in ("http_500", "http_429", "timeout"):
        assert metric(telemetry, "exfil_monitor_output_failures_total", output="pagerduty", reason=reason) == 1


async def test_an_invalid_event_is_parked_and_the_next_goes_on(make_alert: MakeAlert, make_delivery: MakeDelivery,
                                                               telemetry: Telemetry) -> None:  # fmt: skip
    async with Recorder(Reply(400, '{"status":"invalid event"}'), default=Reply(202)) as rec:
        d = make_delivery([output(rec.url, min_interval=0)])
        await d.start()
        d.submit([record(make_alert), record(make_alert, id="second")])
        await until(lambda: not d.spools["pagerduty"].depth, "both handled")
    assert len(rec.requests) == 2  # the refused one was never sent again
    assert d.spools["pagerduty"].parked == 1 and sends(telemetry, "pagerduty", "success") == 1
    assert metric(telemetry, "exfil_monitor_alerts_rejected_total", output="pagerduty") == 1


async def test_refused_connection_is_retried_until_it_answers(make_alert: MakeAlert,
                                                              make_delivery: MakeDelivery) -> None:  # fmt: skip
    rec = Recorder(default=Reply(202))
    url = await rec.start()
    await rec.stop()  # nothing listens on the port now
    d = make_delivery([output(url, min_interval=0)])
    await d.start()
    d.submit([record(make_alert)])
    await until(lambda: (d.failing.get("pagerduty") or "").startswith("ClientConnector"), "connection refused")
    port = int(url.rsplit(":", 1)[1])
    rec2 = Recorder(default=Reply(202))
    await rec2.start(port)
    try:
        await until(lambda: not d.spools["pagerduty"].depth, "delivered once it listens")
    finally:
        await rec2.stop()
    assert len(rec2.requests) == 1
