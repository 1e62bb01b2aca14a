"""Slack messages: Block Kit within its limits, paced, digests that account for everything."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr, ValidationError

from monitor.outputs import slack
from monitor.privacy import Masker
from tests.outputs.conftest import MakeAlert
from tests.support.recorder import Recorder, Reply

URL = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


def record(make_alert: MakeAlert, n: int = 1, **changes: Any) -> dict[str, Any]:
    r = make_alert(n).to_dict() | {"type": "alert"}
    r["annotations"] = {**r["annotations"], "runbook": "https://wiki.example/runbooks/bulk-read"}
    return r | changes


def resolved(rule: str = "bulk-customer-read", n: int = 1) -> dict[str, Any]:
    return {"type": "resolved", "id": f"{n:016x}", "rule": rule, "group": {"actor.id": f"actor-{n}"},
            "resolved_at": "2026-11-18T10:15:00.000Z"}  # fmt: skip


def config(url: str = URL, **kw: Any) -> slack.SlackConfig:
    return slack.SlackConfig(type="slack", webhook_url=SecretStr(url), **kw)


def all_text(message: dict[str, Any]) -> str:
    return str(message)


def test_alert_message_blocks(make_alert: MakeAlert) -> None:
    r = record(make_alert, unit="rows")
    m = slack.alert_message(r, timezone="Europe/Berlin")
    slack.validate(m)
    assert m["text"] == "HIGH bulk-customer-read: actor.id actor-1: 50,002 rows in 10m, over the limit of 50,000"
    header, summary, body, context = m["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": ":red_circle: HIGH: bulk-customer-read", "emoji": True}}
    assert summary["text"] == {"type": "mrkdwn", "text": "actor-1 read rows"}
    lines = body["text"]["text"].split("\n")
    assert lines[0] == "*Who:* actor.id actor-1"
    assert lines[1] == "*What:* 50,002 rows in 10m, over the limit of 50,000"
    assert lines[2].startswith("*When:* 2026-11-18 ") and " UTC / " in lines[2] and "(Europe/Berlin)" in lines[2]
    assert lines[3] == "*Runbook:* <https://wiki.example/runbooks/bulk-read|open the runbook>"
    assert context["type"] == "context" and r["id"] in context["elements"][0]["text"]


def test_when_in_utc_and_the_schedule_zone() -> None:
    assert slack.span("2026-11-18T09:00:00.000Z", "2026-11-18T09:10:00.000Z", "Europe/Berlin") == (
        "2026-11-18 09:00 to 09:10 UTC / 2026-11-18 10:00 to 10:10 CET (Europe/Berlin)"
    )
    assert slack.span("2026-11-18T23:55:00.000Z", "2026-11-19T00:05:00.000Z") == (
        "2026-11-18 23:55 to 2026-11-19 00:05 UTC"
    )


def test_event_text_cannot_forge_links_or_mentions(make_alert: MakeAlert) -> None:
    m = slack.alert_message(record(make_alert, summary="<!channel> see <https://evil.example|here> & more"))
    assert m["blocks"][1]["text"]["text"] == "&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; more"


def test_long_text_is_cut_to_block_kit_limits(make_alert: MakeAlert) -> None:
    m = slack.alert_message(record(make_alert, rule="r" * 400, summary="s" * 10_000))
    slack.validate(m)
    assert len(m["blocks"][0]["text"]["text"]) == 150 and len(m["blocks"][1]["text"]["text"]) == 3000


def test_resolution_message_says_it_is_over() -> None:
    m = slack.resolution_message(resolved(), timezone="Europe/Berlin")
    slack.validate(m)
    assert m["text"] == "RESOLVED bulk-customer-read: actor.id actor-1: over since 2026-11-18T10:15:00.000Z"
    assert m["blocks"][0]["text"]["text"] == ":white_check_mark: RESOLVED: bulk-customer-read"
    assert "2026-11-18 11:15 CET (Europe/Berlin)" in m["blocks"][1]["text"]["text"]


def test_digest_counts_every_record_and_names_top_groups(make_alert: MakeAlert) -> None:
    records = [record(make_alert, i % 7) for i in range(60)]
    records += [record(make_alert, i, rule=f"rule-{i}") for i in range(80)]
    records += [resolved(n=i) for i in range(5)]
    m = slack.digest_message(records, top_groups=3)
    slack.validate(m)
    assert m["blocks"][0]["text"]["text"] == ":bell: Digest: 140 alerts, 5 resolved, 81 rules"
    first = m["blocks"][1]["text"]["text"]
    assert first.startswith("*bulk-customer-read* (high) · 60 fired, 5 resolved · top: actor.id actor-0 (9), ")
    assert first.endswith(" and 4 more")
    assert len(m["blocks"]) <= 50
    assert "and 41 more rules: 41 fired, 0 resolved" in m["blocks"][-2]["text"]["text"]


def test_validate_names_the_broken_block() -> None:
    with pytest.raises(ValueError, match="51 blocks"):
        slack.validate({"text": "t", "blocks": [slack._section("x")] * 51})
    with pytest.raises(ValueError, match=r"blocks\[0\] \(header\)"):
        slack.validate({"text": "t", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]})
    with pytest.raises(ValueError, match="fallback"):
        slack.validate({"blocks": []})


def test_webhook_url_is_a_secret(tmp_path: Path) -> None:
    f = tmp_path / "hook"
    f.write_text(URL)
    c = slack.SlackConfig(type="slack", webhook_url_file=f)
    assert c.webhook_url is not None and c.webhook_url.get_secret_value() == URL
    assert "XXXXSECRET" not in repr(c)
    with pytest.raises(ValidationError, match="give webhook_url"):
        slack.SlackConfig(type="slack")


def test_masked_alert_shows_no_card_or_email(make_alert: MakeAlert) -> None:
    r = Masker().alert(record(make_alert, summary="jane@shop.example used 4111-1111-1111-1111"))
    text = all_text(slack.alert_message(r))
    assert "jane@" not in text and "4111-1111-1111-1111" not in text and "[card ****1111]" in text


def test_pacer_sends_one_message_per_interval_and_digests_the_rest(make_alert: MakeAlert) -> None:
    p = slack.Pacer(interval=1.0)
    p.add(record(make_alert, 0))
    first = p.take(now=100.0)
    assert first is not None and len(first.records) == 1 and "Digest" not in first.payload["text"]
    for i in range(1, 5):
        p.add(record(make_alert, i))
        assert p.take(now=100.0 + i / 10) is None  # within the second
    assert p.ready_at() == 101.0
    second = p.take(now=101.0)
    assert second is not None and len(second.records) == 4 and second.payload["text"].startswith("Digest: 4 alerts")
    assert p.take(now=200.0) is None and p.ready_at() is None


def test_pacer_failure_puts_records_back_and_honours_retry_after(make_alert: MakeAlert) -> None:
    p = slack.Pacer(interval=1.0)
    p.add(record(make_alert, 0))
    out = p.take(now=10.0)
    assert out is not None
    p.add(record(make_alert, 1))
    p.failed(out, now=10.1, retry_after=30)
    assert p.take(now=11.0) is None and p.ready_at() == pytest.approx(40.1)
    again = p.take(now=40.1)
    assert again is not None and [r["id"] for r in again.records] == [f"{0:016x}", f"{1:016x}"]


@pytest.mark.parametrize(
    ("reply", "verdict", "retry_after"),
    [
        (Reply(200, "ok"), "done", None),
        (Reply(429, "rate_limited", {"Retry-After": "3"}), "retry", 3.0),
        (Reply(500, "rollup_error"), "retry", None),
        (Reply(400, "invalid_payload"), "reject", None),
        (Reply(403, "action_prohibited"), "reject", None),
        (Reply(404, "channel_not_found"), "reject", None),
        (Reply(410, "channel_is_archived"), "reject", None),
        (Reply(204), "reject", None),  # only 200 is Slack's success
    ],
)
async def test_send_classifies_the_answer(make_alert: MakeAlert, reply: Reply, verdict: str,
                                          retry_after: float | None) -> None:  # fmt: skip
    async with Recorder(reply) as rec, aiohttp.ClientSession() as s:
        m = slack.alert_message(record(make_alert))
        got = await slack.send(s, config(rec.url + "/services/T/B/X"), m)
    assert (got.verdict, got.retry_after) == (verdict, retry_after)
    [req] = rec.requests
    assert req.path == "/services/T/B/X" and req.headers["Content-Type"] == "application/json"
    assert req.json() == m


async def test_a_network_error_never_shows_the_webhook_url() -> None:
    async with aiohttp.ClientSession() as s:
        got = await slack.send(s, config("http://127.0.0.1:1/services/T/B/XXXXSECRET"), {"text": "t"})
    assert got.verdict == "retry" and "XXXXSECRET" not in got.detail


async def test_a_burst_of_200_alerts_reaches_slack_paced_and_all_accounted_for(make_alert: MakeAlert) -> None:
    """200 alerts over two (simulated) seconds, with one 429 and one 500 on the way:
    every alert is in exactly one message Slack accepted, one message a second at most."""
    async with Recorder(Reply(200, "ok"), Reply(429, "rate_limited", {"Retry-After": "2"}), Reply(500),
                        default=Reply(200, "ok")) as rec, aiohttp.ClientSession() as s:  # fmt: skip
        c = config(rec.url + "/hook")
        p = slack.Pacer(c.interval)
        delivered: list[str] = []
        sent_at: list[float] = []
        tried_at: list[float] = []
        now = 0.0
        alerts = [record(make_alert, i, rule=f"rule-{i % 3}") for i in range(200)]
        while alerts or p.pending:
            if alerts:
                p.add(alerts.pop(0))
            out = p.take(now)
            if out is not None:
                slack.validate(out.payload)
                got = await slack.send(s, c, out.payload)
                tried_at.append(now)
                if got.verdict == "done":
                    delivered.extend(str(r["id"]) for r in out.records)
                    sent_at.append(now)
                else:
                    assert got.verdict == "retry"
                    p.failed(out, now, got.retry_after)
            now += 0.01
    assert sorted(delivered) == sorted(f"{i:016x}" for i in range(200))
    assert len(delivered) == len(set(delivered))
    assert all(b - a >= c.interval - 1e-9 for a, b in pairwise(tried_at))
    assert tried_at[2] - tried_at[1] >= 2  # the 429's Retry-After
    assert len(rec.requests) == len(sent_at) + 2 < 10
    digests = [r.json() for r in rec.requests if r.json()["text"].startswith("Digest")]
    counted = sum(int(d["text"].split(" ")[1]) for d in digests[-(len(sent_at) - 1):])
    assert counted == 199  # the first alert went alone, the rest in accepted digests
