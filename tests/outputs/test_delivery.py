"""Delivery: spooled before the commit, drained per output, never dropped, never stuck."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.health import Health
from monitor.outputs.base import Output, Record, Rejected, RetryLater
from monitor.outputs.delivery import Delivery
from monitor.outputs.spool import Spool
from monitor.retry import Backoff
from monitor.telemetry import Telemetry
from tests.outputs.conftest import FAST, MakeAlert, MakeDelivery, sends, until


class Recorder(Output):
    """Records what it took; ``failures`` attempts fail first, ``refuse`` ids are rejected."""

    kind = "recorder"

    def __init__(self, name: str, *, failures: int = 0, start_failures: int = 0, hang: bool = False,
                 refuse: Sequence[str] = (), whole_batch: bool = False, max_batch: int = 100,
                 retry_after: float | None = None) -> None:  # fmt: skip
        super().__init__(name, send_timeout=0.2)
        self.failures = failures
        self.start_failures = start_failures
        self.hang = hang
        self.refuse = set(refuse)
        self.whole_batch = whole_batch
        self.max_batch = max_batch
        self.retry_after = retry_after
        self.attempts = 0
        self.received: list[str] = []
        self.resent: list[list[str]] = []

    async def _open(self) -> None:
        if self.start_failures:
            self.start_failures -= 1
            raise ConnectionError("receiver down")

    async def _send(self, records: Sequence[Record]) -> None:
        self.attempts += 1
        if self.hang:
            self.hang = False
            await asyncio.sleep(10)  # longer than send_timeout: the attempt times out
        if self.failures:
            self.failures -= 1
            if self.retry_after is not None:
                raise RetryLater("http_429", "HTTP 429: slow down", self.retry_after)
            raise ConnectionError("connection refused")
        if self.whole_batch and any(r["id"] in self.refuse for r in records):
            raise Rejected("HTTP 400: bad alert somewhere", index=None, reason="http_400")  # takes none
        for i, r in enumerate(records):
            if r["id"] in self.refuse:
                raise Rejected(f"HTTP 400: {r['id']} is bad", index=i, reason="http_400")
            self.received.append(r["id"])

    async def _resend(self, open_records: Sequence[Record]) -> None:
        self.resent.append([r["id"] for r in open_records])


def records(make_alert: MakeAlert, *ns: int, **kw: Any) -> list[dict[str, Any]]:
    return [make_alert(n, **kw).to_dict() for n in ns]


async def test_submit_spools_and_fsyncs_before_it_returns_then_each_output_drains(
    make_delivery: MakeDelivery, make_alert: MakeAlert, tmp_path: Path, telemetry: Telemetry
) -> None:
    a, b = Recorder("a"), Recorder("b")
    d = make_delivery([a, b])
    d.open()  # spools only: nothing drains yet
    d.submit(records(make_alert, 1, 2))
    # On disk for both outputs, before any delivery: this is what the commit waits for.
    for name in ("a", "b"):
        with Spool(tmp_path / "spool" / name) as reopened:
            assert [orjson.loads(e.data)["id"] for e in reopened.peek()] == [make_alert(1).id, make_alert(2).id]
    await d.start()
    await until(lambda: len(a.received) == len(b.received) == 2, "both delivered")
    await d.drained()
    assert sends(telemetry, "a", "success") == sends(telemetry, "b", "success") == 2
    await d.stop()
    await d.stop()  # idempotent
    assert not a.started and not b.started


async def test_a_failing_output_is_retried_and_holds_back_only_itself(
    make_delivery: MakeDelivery, make_alert: MakeAlert, telemetry: Telemetry, log_stream: io.StringIO
) -> None:
    good, flaky = Recorder("good"), Recorder("flaky", failures=3)
    d = make_delivery([good, flaky])
    await d.start()
    d.submit(records(make_alert, 1, 2))
    await until(lambda: flaky.received == [make_alert(1).id, make_alert(2).id], "flaky delivered at last")
    assert good.received == flaky.received
    assert (good.attempts, flaky.attempts) == (1, 4)
    assert sends(telemetry, "flaky", "error") == 3 * 2
    reg = telemetry.metrics.registry
    assert reg.get_sample_value("exfil_monitor_output_failures_total", {"output": "flaky", "reason": "network"}) == 3
    assert reg.get_sample_value("exfil_monitor_output_retries_total", {"output": "flaky"}) == 3
    assert d.failing == {}
    assert "output_failed" in log_stream.getvalue() and "connection refused" in log_stream.getvalue()
    await d.stop()


async def test_a_receiver_down_for_good_never_blocks_submit_and_keeps_everything(
    make_delivery: MakeDelivery, make_alert: MakeAlert, tmp_path: Path, telemetry: Telemetry
) -> None:
    down = Recorder("down", failures=10**9)
    d = make_delivery([down])
    await d.start()
    for n in range(20):
        d.submit(records(make_alert, n))  # returns at once: the consumer is never held
    await until(lambda: "down" in d.failing, "the failure to show")
    assert "connection refused" in d.failing["down"]
    assert d.spools["down"].depth == 20
    await d.stop(grace=0.05)
    # The next run's delivery takes the spool over and delivers all of it, in order.
    up = Recorder("down")
    again = Delivery([up], telemetry, tmp_path / "spool", policy=FAST)
    await again.start()
    await until(lambda: len(up.received) == 20, "all twenty delivered after the restart")
    assert up.received == [make_alert(n).id for n in range(20)]
    await again.stop()


async def test_retry_after_is_honoured(make_delivery: MakeDelivery, make_alert: MakeAlert) -> None:
    slow = Recorder("slow", failures=1, retry_after=0.3)
    d = make_delivery([slow])
    await d.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    d.submit(records(make_alert, 1))
    await until(lambda: slow.received == [make_alert(1).id], "delivered after the wait")
    assert loop.time() - t0 >= 0.3  # the backoff alone would have waited 1 ms
    await d.stop()


async def test_a_hung_attempt_times_out_and_is_retried(
    make_delivery: MakeDelivery, make_alert: MakeAlert, telemetry: Telemetry
) -> None:
    hung = Recorder("hung", hang=True)
    d = make_delivery([hung])
    await d.start()
    d.submit(records(make_alert, 7))
    await until(lambda: hung.received == [make_alert(7).id], "delivered on the second attempt")
    reg = telemetry.metrics.registry
    assert reg.get_sample_value("exfil_monitor_output_failures_total", {"output": "hung", "reason": "timeout"}) == 1
    await d.stop()


async def test_a_rejected_record_is_parked_with_the_answer_and_never_retried(
    make_delivery: MakeDelivery, make_alert: MakeAlert, telemetry: Telemetry, tmp_path: Path
) -> None:
    health = Health()
    bad = make_alert(2).id
    out = Recorder("picky", refuse=[bad])
    d = make_delivery([out], health=health)
    await d.start()
    d.submit(records(make_alert, 1, 2, 3))
    await until(lambda: len(out.received) == 2, "the others delivered")
    await d.drained()
    assert out.received == [make_alert(1).id, make_alert(3).id]
    assert out.attempts == 2  # the refused one was not tried again
    parked = [orjson.loads(line) for line in (tmp_path / "spool/picky/parked/parked.jsonl").read_bytes().splitlines()]
    assert [orjson.loads(p["record"])["id"] for p in parked] == [bad]
    assert parked[0]["answer"] == f"HTTP 400: {bad} is bad"
    assert telemetry.metrics.registry.get_sample_value("exfil_monitor_alerts_rejected_total", {"output": "picky"}) == 1
    report = health.report()
    assert not report.ready or report.to_dict()["status"] == "degraded"
    assert "picky rejected 1" in str(report.to_dict())
    await d.stop()


async def test_a_batch_refused_whole_is_sent_one_by_one_so_only_the_bad_record_parks(
    make_delivery: MakeDelivery, make_alert: MakeAlert
) -> None:
    bad = make_alert(3).id
    out = Recorder("am", refuse=[bad], whole_batch=True)
    d = make_delivery([out])
    d.open()
    d.submit(records(make_alert, 1, 2, 3, 4))
    await d.start()
    await until(lambda: len(out.received) == 3, "the good ones delivered")
    await d.drained()
    assert out.received == [make_alert(n).id for n in (1, 2, 4)]
    assert d.spools["am"].parked == 1
    await d.stop()


async def test_records_go_where_their_match_routes_them_and_unrouted_ones_are_counted(
    make_delivery: MakeDelivery, make_alert: MakeAlert, telemetry: Telemetry, log_stream: io.StringIO
) -> None:
    pager, chat = Recorder("pager"), Recorder("chat")
    pager.match = {"severity": ("critical", "high")}
    chat.match = {"severity": ("medium",), "team": ("security",)}
    d = make_delivery([pager, chat])
    assert d.unrouted_severities() == ["low", "info"]
    await d.start()
    d.submit(records(make_alert, 1, severity="high") + records(make_alert, 2, severity="medium")
             + records(make_alert, 3, severity="low"))  # fmt: skip
    await until(lambda: pager.received and chat.received, "routed")
    await d.drained()
    assert pager.received == [make_alert(1).id] and chat.received == [make_alert(2).id]
    reg = telemetry.metrics.registry
    assert reg.get_sample_value("exfil_monitor_alerts_unrouted_total", {"severity": "low"}) == 1
    assert "alert_unrouted" in log_stream.getvalue()
    await d.stop()


async def test_a_full_spool_is_named_and_still_takes_the_batch_in_hand(
    make_delivery: MakeDelivery, make_alert: MakeAlert
) -> None:
    down = Recorder("down", failures=10**9)
    d = make_delivery([down], max_bytes=2_000)
    await d.start()
    d.submit(records(make_alert, *range(10)))  # over the bound: written anyway, then full
    assert d.full == ["down"]
    assert d.spools["down"].depth == 10
    await d.stop(grace=0)


async def test_start_is_retried_in_the_drain_without_holding_back_submit(
    make_delivery: MakeDelivery, make_alert: MakeAlert, telemetry: Telemetry
) -> None:
    late = Recorder("late", start_failures=2)
    d = make_delivery([late])
    await d.start()
    d.submit(records(make_alert, 1))
    await until(lambda: late.received == [make_alert(1).id], "delivered once it could start")
    assert sends(telemetry, "late", "start_error") == 2
    await d.stop()


async def test_resends_carry_the_open_records_the_output_takes(
    make_delivery: MakeDelivery, make_alert: MakeAlert
) -> None:
    out = Recorder("am")
    out.resend_interval = 0.02
    out.match = {"severity": ("high",)}
    open_now = records(make_alert, 1) + records(make_alert, 2, severity="low")
    d = make_delivery([out], open_records=lambda: open_now)
    await d.start()
    await until(lambda: len(out.resent) >= 3, "three re-sends")
    assert all(ids == [make_alert(1).id] for ids in out.resent)
    await d.stop()


def test_two_outputs_cannot_share_a_spool(telemetry: Telemetry, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="share a name"):
        Delivery([Recorder("x"), Recorder("x")], telemetry, tmp_path)


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    b = Backoff(0.5, 4.0, jitter=0.2, rng=lambda: 0.5)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5
    low, high = Backoff(1.0, jitter=0.2, rng=lambda: 0.0), Backoff(1.0, jitter=0.2, rng=lambda: 1.0)
    assert (low.next(), high.next()) == (pytest.approx(0.8), pytest.approx(1.2))
