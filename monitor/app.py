"""The daemon: config to components, the run loop, and a graceful stop.

One batch at a time: fetch, decode, evaluate, deliver alerts, dead-letter the unusable,
mark processed, and commit now and then. Everything a batch produced is acknowledged
before its offsets can be committed, so a crash or a kill at any point loses nothing;
at worst events are read again and their alerts sent again with the same ids.

Dependencies (registry, clocks, outputs, streams) are passed in, so a test can build as
many daemons as it likes in one process; nothing here is global but the signal handlers,
which :meth:`Daemon.run` installs and removes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import IO, Any, TextIO, cast

from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.config import Config
from monitor.decode import Decoder, sample
from monitor.engine import Engine, EngineOptions
from monitor.engine.alert import Alert
from monitor.http import HttpServer
from monitor.outputs import Delivery, Output, OutputContext, build_outputs
from monitor.outputs.base import Abandoned
from monitor.rules.errors import RuleLoadError
from monitor.rules.loader import RuleSet, load_rules
from monitor.sources.kafka import KafkaSource, Records
from monitor.telemetry import Metrics, Telemetry, configure_logging, route_library_logs

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class Daemon:
    def __init__(self, config: Config, *, registry: CollectorRegistry | None = None,
                 wall_clock: Callable[[], float] = time.time, outputs: list[Output] | None = None,
                 stdout: IO[Any] | None = None, stderr: IO[Any] | None = None,
                 exit_now: Callable[[int], None] = os._exit) -> None:  # fmt: skip
        self.config = config
        self.metrics = Metrics(registry if registry is not None else CollectorRegistry())
        self.log = configure_logging(config.log.format, config.log.level, cast(TextIO, stderr or sys.stderr))
        self.telemetry = Telemetry(self.metrics, self.log)
        self.wall_clock = wall_clock
        self.exit_now = exit_now
        self.outputs = outputs if outputs is not None else build_outputs(
            config.outputs, OutputContext(kafka=config.kafka, stdout=stdout)
        )
        k = config.kafka
        self.stopping = asyncio.Event()
        self.delivery = Delivery(self.outputs, self.telemetry, stopping=self.stopping,
                                 backoff_initial=k.retry_backoff / 1000, backoff_max=k.retry_backoff_max / 1000)  # fmt: skip
        self.source = KafkaSource(k, self.telemetry, before_commit=self._flush_outputs)
        self.ruleset: RuleSet | None = None
        self.engine: Engine | None = None
        self.decoder = Decoder(time_field=config.engine.time_field, max_future_skew_ms=config.engine.max_future_skew)
        self.recent: deque[dict[str, Any]] = deque(maxlen=config.http.recent_alerts)
        self.http_port: int | None = None
        self._signals = 0
        self._unflushed = False
        self.events_total = 0
        self.alerts_total = 0

    # ---------------------------------------------------------- Status for monitor.http

    def ready(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "stopping"
        if self.ruleset is None:
            return False, "rules not loaded"
        ready, reason = self.source.ready()
        if self.delivery.failing:
            # Outputs start before the source: until they can, that is the reason to show.
            failing = ", ".join(f"{name} ({error})" for name, error in sorted(self.delivery.failing.items()))
            reason = ("consuming; " if ready else "") + "failing outputs (retrying): " + failing
        return ready, reason

    def rules(self) -> dict[str, Any] | None:
        rs = self.ruleset
        if rs is None:
            return None
        return {"digest": rs.digest, "files": list(rs.files), "enabled": len(rs.enabled), "rules": rs.describe()}

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        return list(reversed(self.recent))[:limit]

    # ---------------------------------------------------------- lifecycle

    def request_stop(self, signame: str = "request") -> None:
        """First call: stop after the batch in hand. Second: exit at once, committing nothing."""
        self._signals += 1
        if self._signals > 1:
            self.telemetry.lifecycle("exit_now", signal=signame)
            self.exit_now(EXIT_INTERRUPTED)
            return
        self.telemetry.lifecycle("stopping", signal=signame)
        self.stopping.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        handled = (signal.SIGTERM, signal.SIGINT)
        for sig in handled:
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        library_logs = route_library_logs(self.telemetry, self.config.log.level)
        try:
            return await self._run()
        except Exception as exc:  # a bug: say so in the log's own format, exit non-zero
            self.log.critical("crashed", error=repr(exc), traceback=traceback.format_exc())
            return EXIT_FAILED
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            logging.getLogger().removeHandler(library_logs)

    async def _run(self) -> int:
        c = self.config
        self.telemetry.lifecycle("starting", version=__version__, group_id=c.kafka.group_id,
                                 topics=list(c.kafka.topics) or c.kafka.topic_pattern)  # fmt: skip
        try:
            self.ruleset = load_rules(c.rules.path)
        except RuleLoadError as exc:
            self.telemetry.rules_rejected([str(p) for p in exc.problems])
            return EXIT_FAILED
        rs = self.ruleset
        self.telemetry.rules_loaded(len(rs.enabled), rs.digest, rs.files, [str(w) for w in rs.warnings])
        e = c.engine
        options = EngineOptions(allowed_lateness_ms=e.allowed_lateness, max_groups_per_rule=e.max_groups_per_rule,
                                distinct_exact_limit=e.distinct_exact_limit)  # fmt: skip
        self.engine = Engine(rs, options)
        host, port = c.http.host_port
        http = HttpServer(host, port, self.metrics.registry, self)
        try:
            self.http_port = await http.start()
        except OSError as exc:
            self.log.error("http_listen_failed", listen=c.http.listen, error=str(exc))
            return EXIT_FAILED
        self.telemetry.lifecycle("http_listening", host=host, port=self.http_port)
        try:
            if await self._until_stopping(self.delivery.start()) and await self.source.start(self.stopping):
                self.telemetry.lifecycle("running")
                await self._loop()
        except Abandoned as exc:  # stopping while an output or the broker kept failing
            self.telemetry.lifecycle("batch_abandoned", reason=str(exc))
        finally:
            await self.source.stop()
            await self.delivery.stop()
            await http.stop()
        self.telemetry.lifecycle("stopped", events=self.events_total, alerts=self.alerts_total)
        return EXIT_OK

    async def _until_stopping(self, work: Any) -> bool:
        """Run ``work`` unless a stop comes first; True if it finished."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task.done():
            task.result()
            return True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False

    async def _loop(self) -> None:
        source = self.source
        while not self.stopping.is_set():
            records = await source.fetch()
            if records:
                async with source.lock:
                    await self._process(source.owned(records))
            await source.maybe_commit()

    async def _process(self, records: Records) -> None:
        """One batch, start to acknowledged. Runs under the source's lock, so a rebalance
        waits for it rather than committing in the middle."""
        assert self.engine is not None
        t0 = time.perf_counter()
        now_ms = int(self.wall_clock() * 1000)
        good_all: list[tuple[dict[str, Any], int]] = []
        dead: list[tuple[Any, str]] = []
        spans: dict[Any, tuple[int, int]] = {}  # partition -> (oldest, newest) event time
        received = 0
        for tp, recs in records.items():
            raws = [r.value if r.value is not None else b"" for r in recs]
            received += len(raws)
            good, bad = self.decoder.decode(raws, reference_ms=now_ms)
            if good:
                times = [ts for _, ts in good]
                spans[tp] = (min(times), max(times))
                good_all.extend(good)
            for i, reason in bad:
                self.telemetry.invalid_event(reason, sample(raws[i]), f"{tp.topic}/{tp.partition}@{recs[i].offset}")
                dead.append((recs[i], reason))
        self.telemetry.events_received(received)
        self.events_total += received
        clock = self.source.clock({tp: lo for tp, (lo, _) in spans.items()})
        alerts = self.engine.process(good_all, clock=clock)
        for tp, (_, hi) in spans.items():
            self.source.observe(tp, hi)
        newest = max((hi for _, hi in spans.values()), default=None)
        self.telemetry.batch_done(self.engine, time.perf_counter() - t0, newest, now_ms)
        if alerts:
            self._fired(alerts)
            await self.delivery.send(alerts)
            self._unflushed = True
        await self.source.dead_letter(dead)
        self.source.processed(records)

    def _fired(self, alerts: list[Alert]) -> None:
        self.alerts_total += len(alerts)
        for a in alerts:
            self.telemetry.alert_fired(a)
            self.recent.append(a.to_dict())

    async def _flush_outputs(self) -> None:
        """Before a commit: make delivered alerts durable (fsync) if any came since the last."""
        if self._unflushed:
            await self.delivery.flush()
            self._unflushed = False
