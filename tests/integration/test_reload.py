"""Rule reloads in a real daemon process over the real broker (README "Reloading rules"):
a broken edit while events flow never goes live and costs no window its state; a daemon
started on a broken set runs the last good one; SIGHUP and ``POST /-/reload`` reload."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from monitor.rules.loader import read_sources, sources_digest
from tests.integration.daemon_process import REPO, DaemonProcess, produce

pytestmark = pytest.mark.kafka

TopicFactory = Callable[..., str]
TOKEN = "reload-t0ken-5e4d3c2b1a"
# Thirty reads by one actor within two hours: it fires at the thirtieth, whose window
# holds every one of them, so it fires only if no reload cost it the reads before.
STEADY = """\
rules:
  - id: steady
    description: Thirty reads by one actor within two hours.
    severity: high
    match: {action: select}
    group_by: [actor.id]
    window: 2h
    threshold: {gte: 30}
"""
OTHER = """\
rules:
  - id: other
    description: Exports.
    severity: low
    match: {action: export}
    group_by: [actor.id]
    window: 10m
    threshold: {gte: 1000}
"""
BROKEN = OTHER.replace("match: {action: export}", "match: {action: {eqq: export}}")
FIXED = OTHER.replace("gte: 1000", "gte: 500")
PROBE = """\
rules:
  - id: probe
    description: One alert per select.
    severity: info
    match: {action: select}
    group_by: [id]
"""


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def make(name: str = "daemon", **kwargs: Any) -> DaemonProcess:
        d = DaemonProcess(tmp_path / name, **kwargs)
        started.append(d)
        return d

    yield make
    for d in started:
        d.kill()


def folder(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / f"{name}.yaml").write_text(text)
    return d


def digest(rules: Path) -> str:
    return sources_digest(read_sources(rules))


def events(n: int, base_ms: int) -> list[dict[str, Any]]:
    """Every 400ms of event time an export by a noisy actor, and every 300th a select by ``a``."""
    out = []
    for i in range(n):
        reader = i % 300 == 0
        out.append({"id": f"e{i}", "ts": base_ms + i * 400, "actor": {"id": "a" if reader else f"n{i % 7}"},
                    "action": "select" if reader else "export", "resource": {"name": "customers"}})  # fmt: skip
    return out


async def flow(bootstrap: str, topic: str, evs: list[dict[str, Any]], gates: list[asyncio.Event]) -> None:
    """Produce in chunks at a pace; the k-th third waits for ``gates[k-1]``."""
    chunk = 150
    for i in range(0, len(evs), chunk):
        third = i * 3 // len(evs)
        if third:
            await asyncio.wait_for(gates[third - 1].wait(), 120)
        part = evs[i : i + chunk]
        await produce(bootstrap, topic, [(str(e["actor"]["id"]).encode(), orjson.dumps(e)) for e in part])
        await asyncio.sleep(0.1)


def replay(rules: Path, evs: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "replay.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in evs))
    out = subprocess.run([sys.executable, "-m", "monitor", "replay", "--rules", str(rules), str(path)],
                         capture_output=True, check=True, timeout=120, cwd=REPO)  # fmt: skip
    return [orjson.loads(line) for line in out.stdout.splitlines()]


async def get(d: DaemonProcess, path: str, token: str | None = None) -> tuple[int, Any]:
    if token is None:
        return await d.get(path, time.monotonic() + 30)
    await d.get("/healthz", time.monotonic() + 30)  # learns the port
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{d.port}{path}",
                                                   headers={"Authorization": f"Bearer {token}"}) as r:  # fmt: skip
        return r.status, await r.json()


async def until(d: DaemonProcess, what: str, check: Callable[[], Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check() if asyncio.iscoroutinefunction(check) else not check():
        assert d.alive(), d.stderr_tail()
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{d.stderr_tail()}"
        await asyncio.sleep(0.1)


def logged(d: DaemonProcess, event: str) -> list[dict[str, Any]]:
    return [e for e in d.log_events() if e.get("event") == event]


@pytest.mark.slow
async def test_a_broken_edit_while_events_flow_never_goes_live_and_costs_no_window(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    rules = folder(tmp_path, steady=STEADY, other=OTHER)
    good = digest(rules)
    evs = events(9000, int(time.time() * 1000) - 3 * 3_600_000)
    topic = kafka_topic_factory(1)
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, max_batch=200,
                extra={"rules": {"path": str(rules), "watch_interval": "200ms"}})  # fmt: skip
    d.start()
    await d.wait_ready()
    seen: list[str] = []  # every digest /rules showed, polled throughout

    async def watch_rules() -> None:
        while True:
            status, body = await get(d, "/rules")
            if status == 200 and (not seen or seen[-1] != body["digest"]):
                seen.append(body["digest"])
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_rules())
    gates = [asyncio.Event(), asyncio.Event()]
    producing = asyncio.create_task(flow(kafka_bootstrap, topic, evs, gates))
    try:
        await d.wait_metrics(lambda m: m.v("events_received_total") >= 3000)
        (rules / "other.yaml").write_text(BROKEN)
        broken = digest(rules)
        gates[0].set()  # the second third flows while the broken edit is read and refused
        await d.wait_metrics(lambda m: m.v("rule_reloads_total", outcome="rejected") >= 1)
        status, body = await get(d, "/readyz")
        assert status == 200 and body["status"] == "degraded" and "were rejected" in body["reason"]
        await d.wait_metrics(lambda m: m.v("events_received_total") >= 6000)
        (rules / "other.yaml").write_text(FIXED)
        fixed = digest(rules)
        gates[1].set()  # the last third flows while the fix goes live
        await d.wait_metrics(lambda m: m.v("rule_reloads_total", outcome="success") >= 2)
        await producing
        await d.wait_metrics(lambda m: m.v("events_received_total") >= len(evs))
        await asyncio.sleep(0.3)
    finally:
        watcher.cancel()
        producing.cancel()
    status, body = await get(d, "/rules")
    assert body["digest"] == fixed and body["origin"] == "rules.path"
    rejected = body["last_rejected"]
    assert rejected["trigger"] == "watch" and rejected["digest"] == broken
    assert rejected["problems"][0].startswith(f"{rules / 'other.yaml'}:5:22:")  # file:line:col, and the code
    assert "E-UNKNOWN-OPERATOR" in rejected["problems"][0]
    assert (await get(d, "/readyz"))[1]["status"] == "ready"
    assert d.stop() == 0

    assert broken not in seen and seen == [good, fixed], "the digest changes once, on the fix"
    (audit,) = logged(d, "rules_reloaded")
    assert audit["digest"] == fixed[:12] and audit["previous"] == good[:12] and audit["trigger"] == "watch"
    assert audit["files_changed"] == [str(rules / "other.yaml")] and audit["changed"] == ["other"]
    assert audit["added"] == audit["removed"] == audit["fresh"] == []
    assert logged(d, "rules_rejected")[0]["problems"][0].startswith(f"{rules / 'other.yaml'}:5:22:")

    expected = [a for a in replay(rules, evs, tmp_path) if a["rule"] == "steady"]
    got = [a for a in d.stdout_alerts() if a["rule"] == "steady"]
    assert len(expected) == 1
    assert [(a["id"], a["fired_at"], a["value"]) for a in got] == [(a["id"], a["fired_at"], a["value"]) for a in expected]


@pytest.mark.slow
async def test_a_daemon_started_on_a_broken_set_runs_the_last_good_one(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    rules = folder(tmp_path, probe=PROBE)
    good = digest(rules)
    topic = kafka_topic_factory(1)
    config = {"rules": {"path": str(rules), "watch_interval": "200ms"}}
    first = daemons("first", bootstrap=kafka_bootstrap, topic=topic, extra=config)
    first.start()
    await first.wait_ready()
    assert first.stop() == 0

    (rules / "probe.yaml").write_text(PROBE.replace("{action: select}", "{action: {eqq: select}}"))
    alone = daemons("alone", bootstrap=kafka_bootstrap, topic=topic, extra=config)  # a state.dir of its own
    alone.start()
    assert alone.proc is not None and alone.proc.wait(60) == 1, "no last good set: it refuses to start"
    assert logged(alone, "rules_rejected")

    d = daemons("second", bootstrap=kafka_bootstrap, topic=topic,
                extra={**config, "state": {"dir": str(first.workdir / "state")}})  # the first one's state.dir
    d.start()
    await until(d, "the group's partitions", lambda: logged(d, "partitions_assigned"))
    status, body = await get(d, "/readyz")
    assert status == 200 and body["status"] == "degraded" and "last good" in body["reason"]
    status, rules_body = await get(d, "/rules")
    assert rules_body["digest"] == good and rules_body["origin"] == "last good (state.dir)"
    assert rules_body["last_rejected"]["trigger"] == "start"
    m = await d.wait_metrics(lambda m: m.v("rules_last_good") == 1)
    assert m.v("rule_reloads_total", outcome="rejected") == 1
    assert logged(d, "rules_last_good")[0]["level"] == "error"

    now = int(time.time() * 1000)
    await produce(kafka_bootstrap, topic, [(b"a", orjson.dumps({"id": "x1", "ts": now, "actor": {"id": "a"},
                                                                 "action": "select"}))])  # fmt: skip
    await d.wait_metrics(lambda m: m.v("alerts_total", rule="probe", severity="info") >= 1)

    (rules / "probe.yaml").write_text(PROBE.replace("severity: info", "severity: low"))
    await d.wait_metrics(lambda m: m.v("rules_last_good") == 0 and m.v("rule_reloads_total", outcome="success") >= 1)
    assert (await get(d, "/readyz"))[1]["status"] == "ready"
    assert (await get(d, "/rules"))[1]["origin"] == "rules.path"
    assert d.stop() == 0


async def test_sighup_reloads(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    rules = folder(tmp_path, probe=PROBE)
    d = daemons(bootstrap=kafka_bootstrap, topic=kafka_topic_factory(1),
                extra={"rules": {"path": str(rules), "watch": False}})  # fmt: skip
    d.start()
    await d.wait_ready()
    (rules / "probe.yaml").write_text(PROBE.replace("severity: info", "severity: low"))
    await asyncio.sleep(1.0)
    assert (await get(d, "/rules"))[1]["rules"][0]["severity"] == "info", "rules.watch: false watches nothing"
    d.send_signal(signal.SIGHUP)
    m = await d.wait_metrics(lambda m: m.v("rule_reloads_total", outcome="success") >= 2)
    assert m.v("rule_reloads_total", outcome="rejected") == 0
    body = (await get(d, "/rules"))[1]
    assert body["rules"][0]["severity"] == "low" and body["digest"] == digest(rules)
    (audit,) = logged(d, "rules_reloaded")
    assert audit["trigger"] == "sighup" and audit["changed"] == ["probe"]
    assert d.stop() == 0


async def test_post_reload_with_the_token(
    kafka_bootstrap: str, kafka_topic_factory: TopicFactory, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    rules = folder(tmp_path, probe=PROBE)
    good = digest(rules)
    topic = kafka_topic_factory(1)
    d = daemons(bootstrap=kafka_bootstrap, topic=topic, http={"auth_token": TOKEN, "open_metrics": True},
                extra={"rules": {"path": str(rules), "watch": False}})  # fmt: skip
    d.start()
    await d.wait_ready()

    async def post(token: str | None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{d.port}/-/reload", headers=headers) as r:
            return r.status, await r.json()

    now = int(time.time() * 1000)
    await produce(kafka_bootstrap, topic, [(b"a", orjson.dumps({"id": "x1", "ts": now, "actor": {"id": "a"},
                                                                   "action": "select"}))])  # fmt: skip
    await d.wait_metrics(lambda m: m.v("alerts_total", rule="probe", severity="info") >= 1)
    (rules / "probe.yaml").write_text(PROBE.replace("{action: select}", "{action: {eqq: select}}"))
    assert (await post(None))[0] == 401
    status, body = await post(TOKEN)
    assert status == 422 and body["outcome"] == "rejected" and body["digest"] == good
    assert body["problems"][0].startswith(f"{rules / 'probe.yaml'}:5:22:")
    (rules / "extra.yaml").write_text(OTHER)
    (rules / "probe.yaml").write_text(PROBE)
    status, body = await post(TOKEN)
    assert status == 200 and body["outcome"] == "success" and body["digest"] == digest(rules) != good
    assert body["added"] == ["other"] and body["files_changed"] == [str(rules / "extra.yaml")]
    listed = (await get(d, "/rules", TOKEN))[1]
    assert listed["digest"] == digest(rules) and [r["id"] for r in listed["rules"]] == ["other", "probe"]
    m = await d.metrics(time.monotonic() + 10)
    assert (m.v("rule_reloads_total", outcome="success"), m.v("rule_reloads_total", outcome="rejected")) == (2, 1)

    (rules / "probe.yaml").unlink()  # its open episode resolves, and the outputs get the resolution
    status, body = await post(TOKEN)
    assert status == 200 and body["removed"] == ["probe"]
    await until(d, "the resolution", lambda: [r for r in d.stdout_records() if r["type"] == "resolved"])
    (alert,) = d.stdout_alerts()
    (resolved,) = [r for r in d.stdout_records() if r["type"] == "resolved"]
    assert resolved["id"] == alert["id"] and resolved["rule"] == "probe"
    assert d.stop() == 0
