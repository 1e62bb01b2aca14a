"""Delivery: every output acknowledges, failures are counted and retried, nothing dropped."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence

import pytest

from monitor.engine.alert import Alert
from monitor.outputs.base import Backoff, Delivery, Output
from monitor.outputs.stdout import StdoutOutput
from monitor.telemetry import Telemetry
from tests.outputs.conftest import MakeAlert, sends


class Flaky(Output):
    """Fails its first ``failures`` attempts of each step, then works; records what it got."""

    kind = "flaky"

    def __init__(self, name: str, failures: int = 0, start_failures: int = 0, hang: bool = False) -> None:
        super().__init__(name, send_timeout=0.2)
        self.failures = failures
        self.start_failures = start_failures
        self.hang = hang
        self.attempts = 0
        self.received: list[str] = []

    async def _open(self) -> None:
        if self.start_failures:
            self.start_failures -= 1
            raise ConnectionError("broker down")

    async def _send(self, alerts: Sequence[Alert]) -> None:
        self.attempts += 1
        if self.hang:
            self.hang = False
            await asyncio.sleep(10)  # longer than send_timeout: the attempt times out
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection refused")
        self.received.extend(a.id for a in alerts)


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


async def test_a_failing_output_is_retried_until_it_acknowledges(
    telemetry: Telemetry, make_alert: MakeAlert, log_stream: io.StringIO
) -> None:
    good, flaky = Flaky("good"), Flaky("flaky", failures=3)
    delivery = Delivery([good, flaky], telemetry, sleep=no_sleep)
    await delivery.start()
    alerts = [make_alert(1), make_alert(2)]
    await delivery.send(alerts)
    # Each output got the alerts exactly once; only the failing one was retried.
    assert good.received == flaky.received == [a.id for a in alerts]
    assert (good.attempts, flaky.attempts) == (1, 4)
    assert sends(telemetry, "flaky", "error") == 3 * len(alerts)
    assert sends(telemetry, "flaky", "success") == len(alerts)
    assert sends(telemetry, "good", "success") == len(alerts)
    assert delivery.failing == {}
    assert "output_failed" in log_stream.getvalue() and "connection refused" in log_stream.getvalue()


async def test_send_does_not_return_while_an_output_keeps_failing(
    telemetry: Telemetry, make_alert: MakeAlert
) -> None:
    """The caller commits after ``send`` returns, so a broken output must hold it back."""
    broken = Flaky("broken", failures=10**9)
    delivery = Delivery([broken], telemetry, sleep=no_sleep)
    await delivery.start()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(delivery.send([make_alert()]), 0.2)
    assert broken.received == []
    assert broken.attempts > 3
    assert "broken" in delivery.failing and "connection refused" in delivery.failing["broken"]


async def test_a_hung_attempt_times_out_and_is_retried(telemetry: Telemetry, make_alert: MakeAlert) -> None:
    hung = Flaky("hung", hang=True)
    delivery = Delivery([hung], telemetry, sleep=no_sleep)
    await delivery.start()
    await asyncio.wait_for(delivery.send([make_alert(7)]), 5)
    assert hung.received == [make_alert(7).id]
    assert sends(telemetry, "hung", "error") == 1


async def test_start_is_retried_and_stop_never_raises(telemetry: Telemetry) -> None:
    late = Flaky("late", start_failures=2)
    ok = StdoutOutput(stream=io.BytesIO())
    delivery = Delivery([late, ok], telemetry, sleep=no_sleep)
    await delivery.start()
    assert late.started and ok.started
    assert sends(telemetry, "late", "start_error") == 2
    await delivery.stop()
    await delivery.stop()
    assert not late.started and not ok.started


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    b = Backoff(0.5, 4.0, jitter=0.2, rng=lambda: 0.5)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5
    low, high = Backoff(1.0, jitter=0.2, rng=lambda: 0.0), Backoff(1.0, jitter=0.2, rng=lambda: 1.0)
    assert (low.next(), high.next()) == (pytest.approx(0.8), pytest.approx(1.2))
