"""The Alertmanager output: its config, its API v2 payloads, and the sender's failure policy.

The payloads are pure functions of the alert record, checked here; that a real
Alertmanager accepts them, keeps them active and resolves them is
``test_alertmanager_live.py``. The failure policy needs answers a real Alertmanager will
not give on demand (503, 429 with Retry-After, a hang), so those tests use a local HTTP
server that records what it is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError

from monitor.outputs.alertmanager import (
    WATCHDOG,
    AlertmanagerConfig,
    AlertmanagerSender,
    alert_labels,
    firing,
    label_name,
    lease_ms,
    resolved,
    watchdog,
)
from monitor.retry import Outcome, RetryPolicy, Verdict
from monitor.timeparse import parse_ts
from tests.outputs.conftest import alert

NOW = 1_795_000_900_000  # after the test alert's fired_at


def record(n: int = 0, **kw: Any) -> dict[str, Any]:
    return {**alert(n).to_dict(), **kw}


# -- config ------------------------------------------------------------------------


def test_config_defaults_and_durations() -> None:
    c = AlertmanagerConfig.model_validate({"type": "alertmanager", "urls": ["http://am:9093/"]})
    assert c.urls == ["http://am:9093"]
    assert (c.resend_interval, c.timeout, c.watchdog, c.match) == (60_000, 10_000, False, None)
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


async def started(urls: list[str], results: list[tuple[str, str, int]] | None = None,
                  **kw: Any) -> AlertmanagerSender:  # fmt: skip
    def hook(url: str, o: Outcome, n: int) -> None:
        if results is not None:
            results.append((url, o.reason, n))

    s = AlertmanagerSender(urls, policy=FAST, on_result=hook, **kw)
    await s.start()
    return s


def payloads(*ns: int) -> list[dict[str, Any]]:
    return [firing(record(n), now_ms=NOW, lease=60_000) for n in ns]


async def test_a_batch_is_posted_as_a_json_array(receiver: Receiver) -> None:
    results: list[tuple[str, str, int]] = []
    s = await started([receiver.url], results)
    try:
        [f] = s.submit(payloads(1, 2))
        assert (await asyncio.wait_for(f, 5)).verdict is Verdict.DONE
    finally:
        await s.stop()
    assert [[a["labels"]["actor_id"] for a in post] for post in receiver.posts] == [
        ["actor-1", "actor-2"]
    ]
    assert results == [(receiver.url, "success", 2)]


async def test_503_and_429_are_retried_honouring_retry_after(receiver: Receiver) -> None:
    receiver.answers = [
        lambda: web.Response(status=503, text="overloaded"),
        lambda: web.Response(status=429, headers={"Retry-After": "0"}),
    ]
    results: list[tuple[str, str, int]] = []
    s = await started([receiver.url], results)
    try:
        [f] = s.submit(payloads(1))
        assert (await asyncio.wait_for(f, 5)).verdict is Verdict.DONE
        assert s.failing == {}
    finally:
        await s.stop()
    assert [r[1] for r in results] == ["http_503", "http_429", "success"]
    assert len(receiver.posts) == 3


async def test_a_hang_times_out_and_is_retried(receiver: Receiver) -> None:
    async def hang() -> web.Response:
        await asyncio.sleep(1)
        return web.Response(status=200)

    receiver.answers = [hang]
    results: list[tuple[str, str, int]] = []
    s = await started([receiver.url], results, timeout=0.2)
    try:
        [f] = s.submit(payloads(1))
        assert (await asyncio.wait_for(f, 5)).verdict is Verdict.DONE
    finally:
        await s.stop()
    assert [r[1] for r in results] == ["timeout", "success"]


async def test_400_is_rejected_with_the_answer_and_not_retried(receiver: Receiver) -> None:
    receiver.answers = [lambda: web.Response(status=400, text="invalid label set")]
    s = await started([receiver.url])
    try:
        [f] = s.submit(payloads(1))
        out = await asyncio.wait_for(f, 5)
    finally:
        await s.stop()
    assert out.verdict is Verdict.REJECT
    assert out.detail == "HTTP 400: invalid label set"
    assert len(receiver.posts) == 1


async def test_a_dead_url_never_holds_back_another(receiver: Receiver) -> None:
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    s = await started([dead, receiver.url])
    try:
        f_dead, f_live = s.submit(payloads(1))
        assert (await asyncio.wait_for(f_live, 5)).verdict is Verdict.DONE
        await asyncio.sleep(0.1)
        assert not f_dead.done()
        assert dead in s.failing and receiver.url not in s.failing
        # Re-sends of the same alert replace the waiting one: the queue does not grow.
        for _ in range(5):
            s.submit(payloads(1, 2))
        assert s.queued()[dead] == 2
    finally:
        await s.stop()


async def test_a_newer_state_supersedes_a_waiting_one(receiver: Receiver) -> None:
    gate = asyncio.Event()

    async def slow() -> web.Response:
        await gate.wait()
        return web.Response(status=200)

    receiver.answers = [slow]
    s = await started([receiver.url])
    try:
        [first] = s.submit(payloads(1))
        await asyncio.sleep(0.1)  # the first post is in flight
        [second] = s.submit([firing(record(1), now_ms=NOW + 1, lease=60_000)])
        [third] = s.submit([firing(record(1), now_ms=NOW + 2, lease=60_000)])
        gate.set()
        for f in (first, second, third):
            assert (await asyncio.wait_for(f, 5)).verdict is Verdict.DONE
    finally:
        await s.stop()
    ends = [post[0]["endsAt"] for post in receiver.posts]
    assert len(ends) == 2  # the in-flight one, then only the newest of the two waiting
    assert parse_ts(ends[1]) == NOW + 2 + 60_000


async def test_lifecycle(receiver: Receiver) -> None:
    s = AlertmanagerSender([receiver.url])
    with pytest.raises(RuntimeError, match="not started"):
        s.submit(payloads(1))
    await s.start()
    with pytest.raises(RuntimeError, match="already started"):
        await s.start()
    [f] = s.submit([])
    assert f.done()
    await s.stop()
    await s.stop()
    await AlertmanagerSender([receiver.url]).stop()  # never started: fine
