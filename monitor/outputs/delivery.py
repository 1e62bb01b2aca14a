"""Alerts from the daemon to every output they are routed to, through a spool each.

:meth:`Delivery.submit` routes each record (``match:`` of each output), appends it to the
spool of every output it goes to and fsyncs those spools before it returns: from then
on the record survives a crash, so the daemon may commit the offsets of the events that
raised it. A record no output takes is counted as unrouted, never dropped unseen.

Each output's :class:`~monitor.outputs.drain.Drain` then delivers its spool on its own.
A spool that reaches ``spool.max_bytes`` makes :attr:`Delivery.full` name its output;
the daemon stops fetching (pauses its partitions) until it drains, rather than drop
anything. A stop gives the drains ``grace`` seconds to empty their spools, each failed
attempt not retried; whatever is left is delivered by the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from monitor.health import Health
from monitor.outputs.base import Output, Record
from monitor.outputs.drain import Drain, OpenRecords
from monitor.outputs.routing import matches, unrouted_severities
from monitor.outputs.spool import DEFAULT_MAX_BYTES, Spool
from monitor.retry import RetryPolicy
from monitor.telemetry import Telemetry


class Delivery:
    def __init__(self, outputs: Sequence[Output], telemetry: Telemetry, spool_dir: Path, *,
                 max_bytes: int = DEFAULT_MAX_BYTES, policy: RetryPolicy | None = None,
                 health: Health | None = None, open_records: OpenRecords | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        names = [o.name for o in outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"two outputs share a name: {names}")
        self.outputs = list(outputs)
        self.telemetry = telemetry
        self.spool_dir = Path(spool_dir)
        self.max_bytes = max_bytes
        self.policy = policy or RetryPolicy()
        self.health = health
        self.open_records = open_records
        self.clock = clock
        self.abort = asyncio.Event()
        self.closing = asyncio.Event()
        self.spools: dict[str, Spool] = {}
        self.drains: dict[str, Drain] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._state = "new"
        telemetry.outputs_declared(names)

    # ---------------------------------------------------------------- lifecycle

    def open(self) -> None:
        """Open (and recover) every spool; a :class:`~monitor.outputs.spool.SpoolError`
        (not writable) is the caller's to report, before anything is consumed."""
        for o in self.outputs:
            if o.name not in self.spools:
                spool = Spool(self.spool_dir / o.name, max_bytes=self.max_bytes, clock=self.clock)
                self.spools[o.name] = spool
                self.telemetry.spool_opened(o.name, spool)

    async def start(self) -> None:
        """Start a drain per output: each starts its output (retrying one that cannot start
        yet) and delivers what an earlier run left in its spool."""
        if self._state != "new":
            raise RuntimeError("delivery was already started")
        self.open()
        self._state = "started"
        for o in self.outputs:
            d = Drain(o, self.spools[o.name], self.telemetry, self.policy, abort=self.abort,
                      closing=self.closing, health=self.health, open_records=self.open_records)  # fmt: skip
            self.drains[o.name] = d
            self._tasks.append(asyncio.create_task(d.run(), name=f"drain {o.name}"))

    async def stop(self, grace: float = 10.0) -> None:
        """Let the drains empty their spools for up to ``grace`` seconds (an output whose
        attempt fails stops at once), then stop them and every output; idempotent.
        Nothing undelivered is lost: it stays spooled for the next start."""
        previous, self._state = self._state, "stopped"
        if previous == "started":
            self.closing.set()
            if self._tasks:
                _, pending = await asyncio.wait(self._tasks, timeout=grace)
                self.abort.set()
                for t in pending:
                    t.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
            for o in self.outputs:
                try:
                    async with asyncio.timeout(o.send_timeout):
                        await o.stop()
                except Exception as exc:
                    self.telemetry.output_result(o.name, "stop_error", 1, error=f"stop: {exc!r}"[:300])
        self.abort.set()
        for spool in self.spools.values():
            spool.close()

    # ---------------------------------------------------------------- the daemon's side

    def submit(self, records: Sequence[Record]) -> None:
        """Route, spool and fsync ``records``; on return they count as delivered."""
        if not records:
            return
        touched: set[str] = set()
        for record in records:
            data = orjson.dumps(record)
            routed = False
            for o in self.outputs:
                if matches(o.match, record):
                    self.spools[o.name].append(data, over_max=True)
                    touched.add(o.name)
                    routed = True
            if not routed:
                self.telemetry.alert_unrouted(record)
        for name in touched:
            self.spools[name].flush()
            drain = self.drains.get(name)
            if drain is not None:
                drain.wake.set()

    def flush(self) -> None:
        """fsync every spool (submit does already; this is for a commit's peace of mind)."""
        for spool in self.spools.values():
            spool.flush()

    @property
    def full(self) -> list[str]:
        """Outputs whose spool reached ``max_bytes``: consumption waits for them."""
        return [name for name, s in self.spools.items() if s.full]

    @property
    def failing(self) -> dict[str, str]:
        """Output → its last failure, while it retries; for ``/readyz`` and people."""
        return {name: d.failing for name, d in self.drains.items() if d.failing is not None}

    def unrouted_severities(self) -> list[str]:
        """Severities no output takes whatever the labels: said at start and by ``check``."""
        return unrouted_severities({o.name: o.match for o in self.outputs})

    async def drained(self) -> None:
        """Wait until every spool is empty (for tests and tools)."""
        while any(s.depth for s in self.spools.values()):
            await asyncio.sleep(0.01)
