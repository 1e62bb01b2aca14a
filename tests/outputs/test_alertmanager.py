"""The Alertmanager output: its config, its API v2 payloads, and the failure policy.

The payloads are pure functions of the alert record, checked here; that a real
Alertmanager accepts them, keeps them active and resolves them is
``test_alertmanager_live.py``. The failure policy needs answers a real Alertmanager will
not give on demand (503, 429 with Retry-After, a hang), so those tests use a local HTTP
server that records what it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from monitor.kafka_client import KafkaConfig
from monitor.outputs import Delivery, OutputContext, build_outputs
from monitor.outputs.alertmanager import (
    WATCHDOG,
    AlertmanagerConfig,
    AlertmanagerOutput,
    alert_labels,
    firing,
    label_name,
    lease_ms,
    resolved,
    watchdog,
)
from monitor.retry import RetryPolicy
from monitor.telemetry import Telemetry
from monitor.timeparse import parse_ts
from tests.outputs.conftest import alert, sends

KAFKA = KafkaConfig(bootstrap_servers=["127.0.0.1:9"], group_id="g", topics=["t"])

NOW = 1_795_000_900_000  # after the test alert's fired_at


def record(n: int = 0, **kw: Any) -> dict[str, Any]:
    return {**alert(n).to_dict(), **kw}


# -- config ------------------------------------------------------------------------


def test_config_defaults_and_durations() -> None:
    c = AlertmanagerConfig.model_validate({"type": "alertmanager", "urls": ["http://am:9093/"]})
    assert c.urls == ["http://am:9093"]
    assert (c.resend_interval, c.send_timeout, c.watchdog, c.match) == (60_000, 10_000, False, None)
    assert c.label == "alertmanager"
    c = AlertmanagerConfig.model_validate(
        {"type": "alertmanager", "urls": ["http://a:9093", "https://b:9093"], "resend_interval": "30s",
         "match": {"severity": ["critical", "high"], "team": "security"}, "name": "pager"}
    )  # fmt: skip
    assert c.resend_interval == 30_000
    assert c.match == {"severity": ("critical", "high"), "team": ("security",)}
    assert c.label == "pager"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"urls": []}, "at least 1"),
        ({"urls": ["am:9093"]}, "not an http"),
        ({"urls": ["http://a:1", "http://a:1"]}, "listed twice"),
        ({"resend_interval": "0s"}, "positive"),
        ({"resend_interval": "soon"}, "duration"),
        ({"generator_url": "monitor/{id}"}, "not an http"),
        ({"match": {"severity": []}}, "empty list"),
        ({"retries": 3}, "Extra inputs"),
    ],
)
def test_config_rejects(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertmanagerConfig.model_validate(
            {"type": "alertmanager", "urls": ["http://am:9093"], **bad}
        )


def test_config_is_frozen() -> None:
    c = AlertmanagerConfig.model_validate({"type": "alertmanager", "urls": ["http://am:9093"]})
    with pytest.raises(ValidationError):
        c.watchdog = True  # type: ignore[misc]


# -- payloads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [("actor.id", "actor_id"), ("a-b c", "a_b_c"), ("ok_1", "ok_1"), ("é@x", "__x")],
)
def test_label_names_from_group_paths(path: str, name: str) -> None:
    assert label_name(path) == name


def test_labels_are_the_alerts_identity() -> None:
    r = record(3, group={"actor.id": "actor-3", "table": 7, "geo": None})
    assert alert_labels(r) == {
        "alertname": "bulk-customer-read", "severity": "high", "team": "security",
        "actor_id": "actor-3", "table": "7", "geo": "null",
    }  # fmt: skip
    later = record(3, group=r["group"], value=99, fired_at="2030-01-01T00:00:00.000Z")
    assert alert_labels(later) == alert_labels(r)  # nothing that changes between sends


def test_alertname_and_severity_cannot_be_overridden_by_rule_labels() -> None:
    r = record(labels={"severity": "low", "alertname": "x"})
    assert alert_labels(r)["severity"] == "high"
    assert alert_labels(r)["alertname"] == "bulk-customer-read"


def test_firing_payload() -> None:
    r = record(1, annotations={"summary": "s", "runbook": "https://wiki/runbook"})
    p = firing(
        r,
        now_ms=NOW,
        lease=lease_ms(60_000, 300_000),
        generator_url="https://m.example/alerts/{id}",
    )
    assert p["startsAt"] == r["fired_at"]
    assert parse_ts(p["endsAt"]) == NOW + 300_000  # 4 x 1m is less than the skew
    assert p["generatorURL"] == f"https://m.example/alerts/{r['id']}"
    a = p["annotations"]
    assert a["summary"] == r["summary"]
    assert a["description"] == "d"
    assert a["runbook"] == "https://wiki/runbook"
    assert (a["alert_id"], a["value"], a["threshold"]) == (r["id"], "50002", "gt 50000")
    assert all(isinstance(v, str) for v in [*p["labels"].values(), *a.values()])


def test_starts_at_is_never_in_the_future() -> None:
    r = record(fired_at="2099-01-01T00:00:00.000Z")
    assert parse_ts(firing(r, now_ms=NOW, lease=1000)["startsAt"]) == NOW


def test_the_lease_is_four_resends_or_the_future_skew() -> None:
    assert lease_ms(60_000, 300_000) == 300_000
    assert lease_ms(180_000, 300_000) == 720_000


def test_resolution_keeps_the_labels_and_ends_at_the_resolution_time() -> None:
    r = record(2)
    p = resolved(r, resolved_wall_ms=NOW - 1000, now_ms=NOW)
    assert p["labels"] == firing(r, now_ms=NOW, lease=1)["labels"]
    assert parse_ts(p["endsAt"]) == NOW - 1000
    assert p["startsAt"] == r["fired_at"]
    early = resolved(r, resolved_wall_ms=0, now_ms=NOW)  # never ends before it starts
    assert early["endsAt"] == early["startsAt"]


def test_watchdog_payload() -> None:
    p = watchdog(started_ms=NOW - 5000, now_ms=NOW, lease=240_000, labels={"instance": "m-0"})
    assert p["labels"] == {"alertname": WATCHDOG, "severity": "none", "instance": "m-0"}
    assert parse_ts(p["endsAt"]) - parse_ts(p["startsAt"]) == 245_000


# -- the sender against a recording server --------------------------------------------


class Receiver:
    """A local HTTP server recording each POST; ``answers`` script the replies."""

    def __init__(self) -> None:
        self.posts: list[list[dict[str, Any]]] = []
        self.answers: list[Callable[[], Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert request.path == "/api/v2/alerts"
        assert request.content_type == "application/json"
        body = orjson.loads(await request.read())
        answer = self.answers.pop(0) if self.answers else (lambda: web.Response(status=200))
        result = answer()
        if asyncio.iscoroutine(result):
            result = await result
        self.posts.append(body)
        return result  # type: ignore[no-any-return]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/api/v2/alerts", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    r.url = f"http://127.0.0.1:{port}"
    yield r
    await runner.cleanup()


FAST = RetryPolicy(initial=0.01, maximum=0.05, max_retry_after=0.3)


@pytest.fixture
def deliver(tmp_path: Path, telemetry: Telemetry) -> Callable[..., Delivery]:
    def make(urls: list[str], **config: Any) -> Delivery:
        c = AlertmanagerConfig.model_validate({"type": "alertmanager", "urls": urls, **config})
        outputs = build_outputs([c], OutputContext(kafka=KAFKA))
        return Delivery(outputs, telemetry, tmp_path / "spool", policy=FAST)

    return make


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.005)


async def test_records_are_posted_as_a_json_array_and_a_resolution_ends_at_its_wall_time(
    receiver: Receiver, deliver: Callable[..., Delivery]
) -> None:
    d = deliver([receiver.url])
    await d.start()
    try:
        d.submit([record(1), record(2)])
        await until(lambda: len(receiver.posts) == 1)
        detected = "2026-11-20T10:00:00.000Z"
        d.submit([record(1, type="resolved", resolved_at="2026-11-20T09:00:00.000Z", detected_at=detected)])
        await until(lambda: len(receiver.posts) == 2)
    finally:
        await d.stop()
    first, second = receiver.posts
    assert [a["labels"]["actor_id"] for a in first] == ["actor-1", "actor-2"]
    assert second[0]["labels"] == first[0]["labels"]  # the same identity resolves it
    assert second[0]["endsAt"] == detected


async def test_503_and_429_are_retried_honouring_retry_after(
    receiver: Receiver, deliver: Callable[..., Delivery], telemetry: Telemetry
) -> None:
    receiver.answers = [
        lambda: web.Response(status=503, text="overloaded"),
        lambda: web.Response(status=429, headers={"Retry-After": "0"}),
    ]
    d = deliver([receiver.url])
    await d.start()
    try:
        d.submit([record(1)])
        await until(lambda: len(receiver.posts) == 3)
        await d.drained()
        assert d.failing == {}
    finally:
        await d.stop()
    reg = telemetry.metrics.registry
    for reason in ("http_503", "http_429"):
        assert reg.get_sample_value(
            "exfil_monitor_output_failures_total", {"output": "alertmanager", "reason": reason}
        ) == 1
    assert sends(telemetry, "alertmanager", "success") == 1


async def test_a_hang_times_out_and_is_retried(receiver: Receiver, deliver: Callable[..., Delivery]) -> None:
    async def hang() -> web.Response:
        await asyncio.sleep(1)
        return web.Response(status=200)

    receiver.answers = [hang]
    d = deliver([receiver.url], send_timeout="200ms")
    await d.start()
    try:
        d.submit([record(1)])
        await until(lambda: len(receiver.posts) == 2)  # the hung one (answered late) and the retry
        await d.drained()
    finally:
        await d.stop()


async def test_400_parks_with_the_answer_and_is_not_retried(
    receiver: Receiver, deliver: Callable[..., Delivery], tmp_path: Path
) -> None:
    receiver.answers = [lambda: web.Response(status=400, text="invalid label set")]
    d = deliver([receiver.url])
    await d.start()
    try:
        d.submit([record(1)])
        await until(lambda: d.spools["alertmanager"].parked == 1)
        await asyncio.sleep(0.1)
    finally:
        await d.stop()
    assert len(receiver.posts) == 1
    parked = orjson.loads((tmp_path / "spool/alertmanager/parked/parked.jsonl").read_bytes())
    assert parked["answer"] == "HTTP 400: invalid label set"


async def test_a_dead_url_never_holds_back_another(receiver: Receiver, deliver: Callable[..., Delivery]) -> None:
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    d = deliver([dead, receiver.url])
    assert [o.name for o in d.outputs] == ["alertmanager-0", "alertmanager-1"]
    await d.start()
    try:
        d.submit([record(1), record(2)])
        await until(lambda: len(receiver.posts) == 1)
        await until(lambda: "alertmanager-0" in d.failing)
        assert "alertmanager-1" not in d.failing
        assert d.spools["alertmanager-0"].depth == 2 and d.spools["alertmanager-1"].depth == 0
    finally:
        await d.stop(grace=0)


async def test_open_episodes_and_the_watchdog_are_resent_every_interval(receiver: Receiver, telemetry: Telemetry,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    c = AlertmanagerConfig.model_validate(
        {"type": "alertmanager", "urls": [receiver.url], "resend_interval": "50ms", "watchdog": True}
    )
    outputs = build_outputs([c], OutputContext(kafka=KAFKA))
    d = Delivery(outputs, telemetry, tmp_path / "spool", policy=FAST, open_records=lambda: [record(1)])
    await d.start()
    try:
        await until(lambda: len(receiver.posts) >= 3)
    finally:
        await d.stop()
    for post in receiver.posts[:3]:
        assert [a["labels"]["alertname"] for a in post] == [record(1)["rule"], WATCHDOG]
    ends = [parse_ts(post[0]["endsAt"]) for post in receiver.posts[:3]]
    assert ends == sorted(ends) and ends[0] < ends[-1]  # each re-send renews the lease
    assert telemetry.metrics.registry.get_sample_value(
        "exfil_monitor_output_resends_total", {"output": "alertmanager", "outcome": "success"}
    ) >= 3


async def test_lifecycle(receiver: Receiver) -> None:
    out = AlertmanagerOutput("am", receiver.url)
    with pytest.raises(RuntimeError, match="not started"):
        await out.send([record(1)])
    await out.start()
    with pytest.raises(RuntimeError, match="already started"):
        await out.start()
    await out.send([])
    await out.stop()
    await out.stop()
    await AlertmanagerOutput("am", receiver.url).stop()  # never started: fine
