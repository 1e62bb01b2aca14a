"""The Alertmanager sender against real Alertmanagers (Debian's, on loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.outputs.alertmanager import (
    AlertmanagerSender,
    alert_labels,
    firing,
    resolved,
    watchdog,
)
from monitor.retry import RetryPolicy, Verdict
from monitor.timeparse import parse_ts
from tests.outputs.conftest import alert
from tests.support.alertmanager import Alertmanager, start_alertmanager

FAST = RetryPolicy(initial=0.05, maximum=0.2)
LEASE = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def record(n: int) -> dict[str, Any]:
    r = alert(n).to_dict()
    r["fired_at"] = "2026-01-01T00:00:00.000Z"
    return r


def open_payloads(*ns: int) -> list[dict[str, Any]]:
    return [firing(record(n), now_ms=now_ms(), lease=LEASE) for n in ns]


@pytest.fixture
def alertmanagers(tmp_path: Path) -> Iterator[Callable[[], Alertmanager]]:
    started: list[Alertmanager] = []

    def make() -> Alertmanager:
        am = start_alertmanager(tmp_path / f"am{len(started)}")
        started.append(am)
        return am

    yield make
    for am in started:
        am.kill()


async def held(am: Alertmanager, want: set[str], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Wait until ``am`` holds exactly the alerts whose actor_id label is in ``want``."""
    deadline = time.monotonic() + timeout
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        got = await asyncio.to_thread(am.alerts)
        if {a["labels"].get("actor_id") for a in got} == want:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"{am.url} holds {[a['labels'] for a in got]}, wanted actor_id in {want}")


async def delivered(sender: AlertmanagerSender, payloads: list[dict[str, Any]], *,
                    only: int | None = None) -> None:  # fmt: skip
    futures = sender.submit(payloads)
    if only is not None:
        futures = [futures[only]]
    for f in futures:
        assert (await asyncio.wait_for(f, 20)).verdict is Verdict.DONE


async def test_alerts_appear_with_their_labels_stay_active_across_resends_and_resolve(
    alertmanagers: Callable[[], Alertmanager],
) -> None:
    am = alertmanagers()
    s = AlertmanagerSender([am.url], policy=FAST)
    await s.start()
    try:
        await delivered(s, open_payloads(1, 2))
        [a1, _] = sorted(
            await held(am, {"actor-1", "actor-2"}), key=lambda a: a["labels"]["actor_id"]
        )
        assert a1["labels"] == alert_labels(record(1))
        assert a1["status"]["state"] == "active"
        assert a1["annotations"]["alert_id"] == record(1)["id"]
        assert a1["startsAt"].startswith("2026-01-01T00:00:00")

        await asyncio.sleep(0.05)
        await delivered(s, open_payloads(1, 2))  # a re-send renews the lease, same alert
        got = await held(am, {"actor-1", "actor-2"})
        again = next(a for a in got if a["labels"]["actor_id"] == "actor-1")
        assert again["fingerprint"] == a1["fingerprint"]
        assert again["status"]["state"] == "active"
        assert parse_ts(again["endsAt"][:23] + "Z") > parse_ts(a1["endsAt"][:23] + "Z")

        await delivered(s, [resolved(record(1), resolved_wall_ms=now_ms() - 1000, now_ms=now_ms())])
        await held(am, {"actor-2"})
    finally:
        await s.stop()


async def test_a_fresh_alertmanager_gets_every_open_alert_at_the_next_resend(
    alertmanagers: Callable[[], Alertmanager],
) -> None:
    am = alertmanagers()
    s = AlertmanagerSender([am.url], policy=FAST)
    await s.start()
    try:
        await delivered(s, open_payloads(1, 2, 3))
        await held(am, {"actor-1", "actor-2", "actor-3"})
        am.restart_fresh()
        assert await asyncio.to_thread(am.alerts) == []  # it lost everything
        await delivered(s, open_payloads(1, 2, 3))
        await held(am, {"actor-1", "actor-2", "actor-3"})
    finally:
        await s.stop()


async def test_two_alertmanagers_each_get_every_alert_while_the_other_is_down(
    alertmanagers: Callable[[], Alertmanager],
) -> None:
    a, b = alertmanagers(), alertmanagers()
    s = AlertmanagerSender([a.url, b.url], policy=FAST)
    await s.start()
    try:
        b.kill()
        pending_b = s.submit(open_payloads(1))
        assert (await asyncio.wait_for(pending_b[0], 20)).verdict is Verdict.DONE
        await held(a, {"actor-1"})
        assert b.url in s.failing and a.url not in s.failing

        b.start()  # back, empty: the queued alert is retried into it
        assert (await asyncio.wait_for(pending_b[1], 20)).verdict is Verdict.DONE
        a.kill()
        await delivered(s, open_payloads(1, 2), only=1)
        await held(b, {"actor-1", "actor-2"})

        a.start()
        await delivered(s, open_payloads(1, 2))
        await held(a, {"actor-1", "actor-2"})
        await held(b, {"actor-1", "actor-2"})
        assert s.failing == {}
    finally:
        await s.stop()


async def test_the_watchdog_stays_active(alertmanagers: Callable[[], Alertmanager]) -> None:
    am = alertmanagers()
    s = AlertmanagerSender([am.url], policy=FAST)
    await s.start()
    try:
        t = now_ms()
        await delivered(s, [watchdog(started_ms=t, now_ms=t, lease=LEASE)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = await asyncio.to_thread(am.alerts)
            if got:
                break
            await asyncio.sleep(0.1)
        assert [x["labels"]["alertname"] for x in got] == ["ExfilMonitorWatchdog"]
        assert got[0]["status"]["state"] == "active"
    finally:
        await s.stop()
