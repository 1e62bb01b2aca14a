"""One output's task: start it, then hand its spool's oldest records to it, in order.

Each output drains in its own task (and each Alertmanager URL is an output of its own),
so a receiver that is down, slow or rate-limited holds back only its own spool, never the
consumer or the other receivers. What an attempt came to follows the contract of
:mod:`monitor.outputs.base`: taken records are acknowledged in the spool, a refused one
is parked there, anything else is retried by :func:`monitor.retry.retry` with backoff
until it passes or the daemon stops (what is left stays in the spool for the next start).

Re-sends of open episodes (``Output.resend_interval``) run beside the drain under the
same lock, so a re-send of an alert never overtakes the resolution the drain is sending.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from monitor.health import Health
from monitor.outputs.base import Output, Record, Rejected, RetryLater
from monitor.outputs.routing import matches
from monitor.outputs.spool import Entry, Spool
from monitor.retry import (
    DONE,
    Abandoned,
    Outcome,
    RetryPolicy,
    Verdict,
    classify_exception,
    retry,
    wait_or_stop,
)
from monitor.telemetry import Telemetry

OpenRecords = Callable[[], Sequence[Record]]


def _describe(exc: BaseException) -> str:
    text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {text}"[:300]


class Drain:
    """The spool of ``output`` drained into it. ``closing`` set: finish, trying each record
    at most once more; ``abort`` set: give up what is in hand."""

    def __init__(self, output: Output, spool: Spool, telemetry: Telemetry, policy: RetryPolicy, *,
                 abort: asyncio.Event, closing: asyncio.Event, health: Health | None = None,
                 open_records: OpenRecords | None = None) -> None:  # fmt: skip
        self.output = output
        self.spool = spool
        self.telemetry = telemetry
        self.policy = policy
        self.abort = abort
        self.health = health
        self.open_records = open_records
        self.wake = asyncio.Event()
        # Set by a stop: drain what is there, but a failed attempt is not retried (the
        # rest waits in the spool for the next start, rather than hold up the stop).
        self.closing = closing
        self.failing: str | None = None
        self.started = asyncio.Event()
        self._lock = asyncio.Lock()
        self._isolate = 0  # records still to send one at a time (a batch refused whole)

    async def run(self) -> None:
        """Until the spool is empty after :attr:`closing`, or ``abort``."""
        with contextlib.suppress(Abandoned):
            await self._start()
            resend = None
            if self.output.resend_interval and self.open_records is not None:
                resend = asyncio.create_task(self._resends(), name=f"resend {self.output.name}")
            try:
                await self._drain()
            finally:
                if resend is not None:
                    resend.cancel()
                    await asyncio.gather(resend, return_exceptions=True)

    async def _start(self) -> None:
        o = self.output

        async def once() -> Outcome:
            try:
                async with asyncio.timeout(o.send_timeout):
                    await o.start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failing = f"start: {_describe(exc)}"
                self.telemetry.output_result(o.name, "start_error", 1, error=self.failing)
                return classify_exception(exc)
            return DONE

        await retry(once, self.policy, stopping=self.closing)
        self.failing = None
        self.started.set()

    async def _drain(self) -> None:
        while not self.abort.is_set():
            entries = self.spool.peek(1 if self._isolate else self.output.max_batch)
            if not entries:
                if self.closing.is_set():
                    return
                self.wake.clear()
                await self._wait_for_work()
                continue
            pace = self.output.ready_in()
            if pace > 0:
                await wait_or_stop(self.abort, pace)
                continue  # take what arrived meanwhile too
            await self._deliver(entries)

    async def _wait_for_work(self) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in (self.wake, self.closing, self.abort)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _deliver(self, entries: list[Entry]) -> None:
        o = self.output
        records = [orjson.loads(e.data) for e in entries]
        refused: list[Rejected] = []

        async def once() -> Outcome:
            refused.clear()
            try:
                async with self._lock, asyncio.timeout(o.send_timeout):
                    await o.send(records)
            except asyncio.CancelledError:
                raise
            except Rejected as exc:
                refused.append(exc)
                return Outcome(Verdict.REJECT, exc.reason, exc.answer)
            except RetryLater as exc:
                outcome = Outcome(Verdict.RETRY, exc.reason, exc.detail, exc.delay)
            except Exception as exc:
                outcome = classify_exception(exc)
            else:
                return DONE
            self.failing = outcome.detail or outcome.reason
            self.telemetry.output_failed(o.name, outcome.reason, self.failing, len(records))
            return outcome

        def retrying(outcome: Outcome, delay: float) -> None:
            self.telemetry.output_retry(o.name, delay)

        await retry(once, self.policy, stopping=self.closing, on_retry=retrying)
        self.failing = None
        if not refused:
            self.spool.ack(entries[-1])
            self.telemetry.output_result(o.name, "success", len(entries))
            self._isolate = max(0, self._isolate - len(entries))
            return
        exc = refused[0]
        if exc.index is None and len(entries) > 1:
            self._isolate = len(entries)  # which one? send them one at a time to find out
            return
        i = 0 if exc.index is None else min(max(exc.index, 0), len(entries) - 1)
        if i:
            self.spool.ack(entries[i - 1])
            self.telemetry.output_result(o.name, "success", i)
        self.spool.park(entries[i], exc.answer)
        self._isolate = max(0, self._isolate - (i + 1))
        self._rejected(records[i], exc.answer)

    def _rejected(self, record: dict[str, Any], answer: str) -> None:
        name = self.output.name
        self.telemetry.alert_rejected(name, record, answer)
        if self.health is not None:
            self.health.set(f"rejected:{name}", "degraded",
                            f"output {name} rejected {self.spool.parked} record(s) for good (last "
                            f"{record.get('id')}: {answer[:200]}); kept in {self.spool.directory}/parked")  # fmt: skip

    async def _resends(self) -> None:
        """Every ``resend_interval``: the open episodes this output takes, once each."""
        o = self.output
        assert o.resend_interval is not None and self.open_records is not None
        while True:
            async with self._lock:
                records = [r for r in self.open_records() if matches(o.match, r)]
                try:
                    async with asyncio.timeout(o.send_timeout):
                        await o.resend(records)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the next interval is the retry
                    reason = exc.reason if isinstance(exc, RetryLater | Rejected) else classify_exception(exc).reason
                    self.telemetry.output_resend(o.name, len(records), reason, _describe(exc))
                else:
                    self.telemetry.output_resend(o.name, len(records), "success")
            if await wait_or_stop(self.abort, o.resend_interval):
                return
