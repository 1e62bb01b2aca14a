"""What every output shares: the lifecycle, and delivery that retries until acknowledged.

Offsets are committed only after every output has acknowledged the alerts of the
committed events, so an output must never report success it has not got, and a failing
output must never be skipped. An output's ``_send`` makes one attempt and raises on
failure; :class:`Delivery` counts the failure and, by :mod:`monitor.retry`'s policy, waits
with backoff and tries again, for that output only, until it succeeds, the daemon is killed, or a stop
is requested: then the work in hand is given up (:class:`Abandoned`), so the caller must
not count it as delivered.

One failure is not retried: a destination that refuses an alert for good (too large for
the broker) raises :class:`Refused` for it after the rest were acknowledged. Retrying it
would hold back every later alert and commit, so it is *parked*: counted, logged, kept in
memory (the newest :data:`PARKED_KEPT` per output, lost at a restart; the other outputs
have it), and ``/readyz`` says degraded until the daemon restarts.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from monitor.configtypes import Duration, Model
from monitor.engine.alert import Alert
from monitor.health import Health
from monitor.retry import DONE, Outcome, RetryPolicy, Verdict, retry
from monitor.retry import (
    Abandoned as Abandoned,  # the names sources and the daemon used to take from here
)
from monitor.retry import Backoff as Backoff
from monitor.retry import wait_or_stop as wait_or_stop
from monitor.telemetry import Telemetry

PARKED_KEPT = 100


class OutputConfigBase(Model):
    """What every output's config section has besides its ``type``."""

    name: str | None = None  # the metric label; defaults to the type
    send_timeout: Duration = 30_000

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type", "output"))


class Refused(Exception):
    """The destination refused these alerts for good; the others of the call were acknowledged."""

    def __init__(self, refused: Sequence[tuple[Alert, str]]) -> None:
        super().__init__(f"{len(refused)} alert(s) refused: {refused[0][1] if refused else ''}")
        self.refused = list(refused)


class Output(ABC):
    """One destination for alerts. Subclasses implement one attempt of each step.

    ``start`` twice is a bug and raises; ``stop`` may be called any number of times, also
    on an output that never started; ``send`` returns only once the destination has the
    alerts (written, acknowledged), and raises otherwise.
    """

    kind: ClassVar[str]

    def __init__(self, name: str, *, send_timeout: float = 30.0) -> None:
        self.name = name
        self.send_timeout = send_timeout
        self._state = "new"

    @property
    def started(self) -> bool:
        return self._state == "started"

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"output {self.name!r} was already started")
        await self._open()  # a failure leaves it "new", so start can be tried again
        self._state = "started"

    async def send(self, alerts: Sequence[Alert]) -> None:
        if self._state != "started":
            raise RuntimeError(f"output {self.name!r} is not started")
        if alerts:
            await self._send(alerts)

    async def flush(self) -> None:
        if self._state == "started":
            await self._flush()

    async def stop(self) -> None:
        previous, self._state = self._state, "stopped"
        if previous == "started":
            await self._close()

    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _send(self, alerts: Sequence[Alert]) -> None: ...

    async def _flush(self) -> None:
        return None

    async def _close(self) -> None:
        await self._flush()


def _describe(exc: BaseException) -> str:
    text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {text}"[:300]


class Delivery:
    """Sends alerts to every output and returns once all of them acknowledged.

    ``failing`` names the outputs whose last attempt failed, for ``/readyz`` and people.
    Once ``stopping`` is set, a failed attempt is not retried: the call raises
    :class:`Abandoned` (every step is tried at least once, so a stop with healthy outputs
    still delivers the batch in hand and flushes).
    """

    def __init__(self, outputs: Sequence[Output], telemetry: Telemetry, *, backoff_initial: float = 0.5,
                 backoff_max: float = 30.0, sleep: Callable[[float], Awaitable[None]] | None = None,
                 stopping: asyncio.Event | None = None, health: Health | None = None) -> None:  # fmt: skip
        self.outputs = list(outputs)
        self.health = health
        self.parked: dict[str, deque[Alert]] = {o.name: deque(maxlen=PARKED_KEPT) for o in self.outputs}
        self.parked_total: dict[str, int] = dict.fromkeys(self.parked, 0)
        self.telemetry = telemetry
        self.policy = RetryPolicy(initial=backoff_initial, maximum=backoff_max)
        self.sleep = sleep
        self.stopping = stopping
        self.failing: dict[str, str] = {}
        telemetry.outputs_declared(o.name for o in self.outputs)

    async def start(self) -> None:
        """Start every output, retrying those that cannot start yet (a broker down)."""
        await asyncio.gather(*(self._retry(o, "start", o.start) for o in self.outputs))

    async def send(self, alerts: Sequence[Alert]) -> None:
        if alerts:
            await asyncio.gather(*(self._send_one(o, alerts) for o in self.outputs))

    async def flush(self) -> None:
        await asyncio.gather(*(self._retry(o, "flush", o.flush) for o in self.outputs))

    async def stop(self) -> None:
        """Stop every output; a failure is logged, never raised, so the others still stop."""
        for o in self.outputs:
            try:
                async with asyncio.timeout(o.send_timeout):
                    await o.stop()
            except Exception as exc:
                self.telemetry.output_result(o.name, "stop_error", 1, error=_describe(exc))

    async def _send_one(self, o: Output, alerts: Sequence[Alert]) -> None:
        await self._retry(o, "send", lambda: o.send(alerts), n=len(alerts))

    async def _retry(self, o: Output, step: str, attempt: Callable[[], Awaitable[None]], n: int = 0) -> None:
        async def once() -> Outcome:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                # that arrives as the attempt fails, and the retries would never end.
                async with asyncio.timeout(o.send_timeout):
                    await attempt()
            except asyncio.CancelledError:
                raise
            except Refused as exc:
                self.failing.pop(o.name, None)
                self._park(o, exc.refused)
                self.telemetry.output_result(o.name, "success", n - len(exc.refused))
                return DONE
            except Exception as exc:
                error = f"{step}: {_describe(exc)}"
                self.failing[o.name] = error
                # A failed send counts its alerts; a failed start or flush counts once.
                outcome, count = ("error", n) if step == "send" else (f"{step}_error", 1)
                self.telemetry.output_result(o.name, outcome, count, error=error)
                return Outcome(Verdict.RETRY, outcome, f"output {o.name!r} failed: {error}")
            self.failing.pop(o.name, None)
            if step == "send":
                self.telemetry.output_result(o.name, "success", n)
            return DONE

        await retry(once, self.policy, stopping=self.stopping, sleep=self.sleep)

    def _park(self, o: Output, refused: list[tuple[Alert, str]]) -> None:
        for alert, error in refused:
            self.parked[o.name].append(alert)
            self.parked_total[o.name] += 1
            self.telemetry.alert_parked(o.name, alert, error)
        if self.health is not None:
            alert, error = refused[-1]
            self.health.set(f"parked:{o.name}", "degraded",
                            f"output {o.name} parked {self.parked_total[o.name]} alert(s) it refused "
                            f"(last {alert.id}: {error[:200]}); see the alert_parked log lines")  # fmt: skip
