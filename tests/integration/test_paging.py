"""From the real broker to PagerDuty, Slack and a signed webhook, as the daemon runs.

PagerDuty and Slack cannot run here, so each is a local server that records what it is
sent (tests/support/recorder.py); the payloads are checked against the public API
documentation in tests/outputs/. Here: the daemon, as its own process on the real Kafka
broker, triggers one incident per episode, resolves it under the same key when the
source goes quiet, and every record reaches each receiver, the webhook's signed, with
secrets read from files and never in the daemon's logs, and a card number and an e-mail
address in the events masked in what every receiver gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.outputs.webhook import verify
from tests.integration.daemon_process import DaemonProcess, produce
from tests.support.recorder import Recorder, Reply

TopicFactory = Callable[..., str]

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RULE = """\
rules:
  - id: card-table-read
    description: Someone read the card table.
    severity: critical
    match: {action: {eq: select}, resource.name: {eq: cards}}
    group_by: [actor.id]
    window: 1m
    threshold: {gte: 1}
    suppress: 2s
    resolve_after: 2s
    annotations:
      runbook: "https://wiki.example/runbooks/card-read"
      summary: "{actor.id} read card {payment.card} of {customer.email}"
"""
CARD, EMAIL = "4111 1111 1111 1111", "jane.doe@shop.example"
ROUTING_KEY = "R0123456789abcdef0123456789abcde"
HMAC_SECRET = "webhook-hmac-secret"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def make(**kwargs: Any) -> DaemonProcess:
        d = DaemonProcess(tmp_path / "d", **kwargs)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()


def card_reads(actors: list[str], ts_ms: int) -> list[tuple[bytes, bytes]]:
    return [(a.encode(), orjson.dumps({"id": f"e-{a}", "ts": ts_ms, "action": "select", "actor": {"id": a},
                                       "resource": {"kind": "table", "name": "cards"},
                                       "payment": {"card": CARD}, "customer": {"email": EMAIL}}))
            for a in actors]


async def test_the_daemon_pages_pagerduty_slack_and_a_webhook_and_resolves(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemon: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    async with Recorder(default=Reply(202, '{"status":"success"}')) as pd, Recorder() as sl, \
               Recorder(default=Reply(204)) as wh:  # fmt: skip
        (secrets / "pd").write_text(ROUTING_KEY + "\n")
        (secrets / "slack").write_text(f"{sl.url}/services/T0/B0/SLACKSECRET\n")
        (secrets / "hmac").write_text(HMAC_SECRET + "\n")
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "cards.yaml").write_text(RULE)
        topic = kafka_topic_factory(partitions=2, prefix="events")
        d = daemon(bootstrap=kafka_bootstrap, topic=topic, rules=rules,
                   extra={"engine": {"idle_resolve_after": "1s"}},
                   outputs=[{"type": "pagerduty", "url": f"{pd.url}/v2/enqueue", "routing_key_file": str(secrets / "pd"),
                             "min_interval": "100ms"},
                            {"type": "slack", "webhook_url_file": str(secrets / "slack"), "interval": "200ms"},
                            {"type": "webhook", "url": f"{wh.url}/hooks/exfil", "secret_file": str(secrets / "hmac"),
                             "headers": {"X-Team": "security"}}])  # fmt: skip
        d.start()
        await d.wait_ready()
        actors = ["hvac_vendor", "intern-3"]
        await produce(kafka_bootstrap, topic, card_reads(actors, int(time.time() * 1000)))
        # Two alerts, then (the source idle, the wall clock past resolved_at) two resolutions.
        m = await d.wait_metrics(lambda m: all(
            m.v("output_sends_total", output=o, outcome="success") == 4 for o in ("pagerduty", "slack", "webhook")
        ), timeout=60)  # fmt: skip
        assert m.total("alerts_rejected_total") == 0
        assert d.stop() == 0

    events = [r.json() for r in pd.requests]
    assert sorted(e["event_action"] for e in events) == ["resolve", "resolve", "trigger", "trigger"]
    by_key: dict[str, list[str]] = {}
    for e in events:
        assert e["routing_key"] == ROUTING_KEY and pd.requests[0].path == "/v2/enqueue"
        by_key.setdefault(e["dedup_key"], []).append(e["event_action"])
    assert sorted(by_key.values()) == [["trigger", "resolve"]] * 2  # one incident per episode, resolved
    triggers = [e for e in events if e["event_action"] == "trigger"]
    assert {e["payload"]["component"] for e in triggers} == {f"actor.id={a}" for a in actors}
    assert {e["payload"]["severity"] for e in triggers} == {"critical"}

    slack_text = " ".join(r.json()["text"] for r in sl.requests)
    assert all(r.path == "/services/T0/B0/SLACKSECRET" for r in sl.requests)
    assert "card-table-read" in slack_text and ("RESOLVED" in slack_text or "resolved" in slack_text)

    records = [r.json() for r in wh.requests]
    assert sorted(r["type"] for r in records) == ["alert", "alert", "resolved", "resolved"]
    for r in wh.requests:
        h = r.headers
        assert h["X-Team"] == "security"
        assert verify(HMAC_SECRET, h["X-Exfil-Monitor-Timestamp"], r.body, h["X-Exfil-Monitor-Signature"],
                      now=time.time())  # fmt: skip

    logs = d.stderr_text()
    for secret in (ROUTING_KEY, "SLACKSECRET", HMAC_SECRET):
        assert secret not in logs
    # Privacy by default: the card and the e-mail reach no receiver, the last four do.
    sent = b"".join(r.body for rec in (pd, sl, wh) for r in rec.requests).decode()
    assert CARD not in sent and CARD.replace(" ", "") not in sent and EMAIL not in sent and "jane.doe" not in sent
    assert all("[card ****1111]" in e["payload"]["summary"] for e in triggers)
