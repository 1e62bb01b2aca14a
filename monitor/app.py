"""The daemon: config to components, the run loop, and a graceful stop.

One batch at a time: fetch, decode, evaluate each partition's events in its own engine
(:mod:`monitor.engine.partitioned`), spool alerts and resolutions, dead-letter the
unusable, mark processed, and commit now and then. Everything a batch produced is fsynced
into the spool of every output it is routed to before its offsets can be committed, and
each partition's state (windows, suppression, open episodes) is checkpointed with the
offset it reflects before the offset is committed (:mod:`monitor.checkpoints.keeper`).
So a crash or a kill at any point loses nothing: each output delivers its spool on its
own (:mod:`monitor.outputs.delivery`), the next owner of a partition restores its
checkpoint and reads on from its offset, and events read again give the same alerts with
the same ids (sent again at worst).

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
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import IO, Any
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry

from monitor import __version__
from monitor.checkpoints.base import key_of
from monitor.checkpoints.config import build_store
from monitor.checkpoints.keeper import Keeper, Restored
from monitor.config import Config
from monitor.decode import Decoder
from monitor.engine.alert import Alert
from monitor.engine.episodes import Resolution
from monitor.engine.partitioned import Partitioned
from monitor.engine.reload import Plan
from monitor.engine.repartition import Router, Split
from monitor.health import DEGRADED, NOT_READY, Condition, Health, Report
from monitor.http import HttpServer, Limits
from monitor.httpauth import TokenAuth
from monitor.inputs import Format, UnknownFormat, get_format
from monitor.inputs.reader import map_records
from monitor.outputs import Delivery, Output, OutputContext, build_outputs
from monitor.outputs.routing import UNROUTED_DETAIL
from monitor.outputs.spool import SpoolError
from monitor.pipeline import Pipeline
from monitor.privacy import Masker
from monitor.problems import Problem
from monitor.reload import Reloader
from monitor.retry import Abandoned, Backoff, RetryPolicy
from monitor.rules.errors import RuleLoadError
from monitor.rules.loader import RuleSet
from monitor.sources import Source, SourceContext, build_source, repartition
from monitor.sources.base import Batch, SourceUnavailable
from monitor.sources.kafka import KafkaSource
from monitor.sources.logfile import FileSource
from monitor.statedir import StateDir, StateDirError
from monitor.telemetry import Metrics, Telemetry, configure_logging, route_library_logs

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass
class _Read:
    """What :meth:`Daemon._read` made of a batch."""

    streams: dict[Any, list[tuple[dict[str, Any], int]]] = field(default_factory=dict)  # partition -> its events
    offsets: dict[Any, int] = field(default_factory=dict)  # partition -> the first record after the batch
    dead: list[tuple[Any, str]] = field(default_factory=list)
    forwards: list[list[repartition.Stamped]] = field(default_factory=list)  # per source partition
    newest: int | None = None


class Daemon:
    def __init__(self, config: Config, *, registry: CollectorRegistry | None = None,
                 wall_clock: Callable[[], float] = time.time, outputs: list[Output] | None = None,
                 stdout: IO[Any] | None = None, stderr: IO[Any] | None = None,
                 exit_now: Callable[[int], None] = os._exit) -> None:  # fmt: skip
        self.config = config
        self.metrics = Metrics(registry if registry is not None else CollectorRegistry())
        self.masker = Masker(config.privacy)  # everything that leaves: alerts, logs, /alerts
        self.log = configure_logging(config.log.format, config.log.level, stderr or sys.stderr,
                                     mask=self.masker.log_processor)  # fmt: skip
        self.telemetry = Telemetry(self.metrics, self.log)
        self.wall_clock = wall_clock
        self.exit_now = exit_now
        context = OutputContext(kafka=config.kafka, stdout=stdout, max_future_skew_ms=config.engine.max_future_skew,
                                timezone_of=self._rule_timezone)  # fmt: skip
        self.outputs = outputs if outputs is not None else build_outputs(config.outputs, context)
        backoff_initial, backoff_max = config.retry_backoff
        self.stopping = asyncio.Event()
        self.healthy = Health()
        policy = RetryPolicy(initial=backoff_initial, maximum=backoff_max)
        self.delivery = Delivery(self.outputs, self.telemetry, config.state.dir / "spool",
                                 max_bytes=config.spool.max_bytes, policy=policy, health=self.healthy,
                                 open_records=self._open_records, clock=wall_clock)  # fmt: skip
        self.source: Source = self._source()
        self.input_format: Format | None = None  # None: canonical JSON lines, decoded as they are
        self.healthy.watch("lifecycle", self._lifecycle_condition)
        self.healthy.watch("source", self.source.condition)
        self.healthy.watch("outputs", self._outputs_condition)
        self.state = StateDir(config.state.dir)
        self.reloader = Reloader(config.rules, config.state.dir, self.telemetry, wall_clock=wall_clock)
        self.healthy.watch("rules", self.reloader.condition)
        self._reloads: set[asyncio.Task[Any]] = set()  # SIGHUP's, and the watcher
        self.ruleset: RuleSet | None = None
        self.engine: Partitioned | None = None  # one engine per partition held
        self.keeper: Keeper | None = None
        self.pipeline: Pipeline | None = None
        self.decoder = Decoder(time_field=config.engine.time_field, max_future_skew_ms=config.engine.max_future_skew)
        self.recent: deque[dict[str, Any]] = deque(maxlen=config.http.recent_alerts)
        self.http_port: int | None = None
        self._signals = 0
        self._last_events = time.monotonic()  # when a fetch last brought records
        self._keyed = config.kafka is None or config.kafka.keyed  # else every record's key is "wrong"

    def _source(self) -> Source:
        """``kafka:`` or the one item of ``sources:`` (the config allows exactly one)."""
        c = self.config
        interval = c.checkpoint.interval / 1000
        if c.kafka is not None:
            return KafkaSource(c.kafka, self.telemetry, before_commit=self._checkpoint, on_assign=self._assigned,
                               commit_interval=interval)  # fmt: skip
        assert c.sources
        return build_source(c.sources[0], SourceContext(self.telemetry, c.state.dir, self._checkpoint_positions,
                                                        commit_interval=interval))  # fmt: skip

    def _bind_format(self, rs: RuleSet) -> bool:
        """Resolve the source's ``format:`` now that the rules (and their ``inputs:``) are known."""
        src = self.source
        try:
            fmt = get_format(src.format_name, rs.inputs, timezone=ZoneInfo(src.timezone))
        except UnknownFormat as exc:
            self.log.error("input_format_unknown", format=src.format_name, error=str(exc))
            return False
        self._bind(fmt)
        return True

    def _bind(self, fmt: Format) -> None:
        self.source.bind(fmt)  # a file source frames as at start: a custom input's from: needs a restart
        self.input_format = None if self.source.format_name == "jsonl" else fmt

    # ---------------------------------------------------------- Status for monitor.http

    def health(self) -> Report:
        return self.healthy.report()

    def _lifecycle_condition(self) -> Condition | None:
        if self.stopping.is_set():
            return Condition(NOT_READY, "stopping")
        if self.ruleset is None:
            return Condition(NOT_READY, "rules not loaded")
        return None

    def _outputs_condition(self) -> Condition | None:
        full, failing = self.delivery.full, self.delivery.failing
        reasons = []
        if full:
            reasons.append("spool full, consumption paused until it drains: " + ", ".join(full))
        if failing:
            reasons.append("failing outputs (retrying, alerts spooled): "
                           + ", ".join(f"{name} ({error})" for name, error in sorted(failing.items())))  # fmt: skip
        return Condition(DEGRADED, "; ".join(reasons)) if reasons else None

    def rules(self) -> dict[str, Any] | None:
        rs = self.ruleset
        if rs is None:
            return None
        return {"digest": rs.digest, **self.reloader.status(), "files": list(rs.files), "enabled": len(rs.enabled),
                "rules": rs.describe()}  # fmt: skip

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
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        for sig in handled[:2]:
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self._sighup)  # its default action would kill
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
            self.state.release()

    async def _run(self) -> int:
        c = self.config
        self.telemetry.lifecycle("starting", version=__version__, **self.source.describe())
        try:  # released in run(), however _run ends
            self.state.acquire()
        except StateDirError as exc:
            self.log.error("state_dir_unavailable", state_dir=str(c.state.dir), error=str(exc))
            return EXIT_FAILED
        rs = self.ruleset = self.reloader.start()  # rules.path, else the last good set, else none
        if rs is None:
            return EXIT_FAILED
        if not self._bind_format(rs):
            return EXIT_FAILED
        router = Router(c.kafka.key_field, c.kafka.keyed, c.kafka.repartition_topic) if c.kafka is not None else None
        engines = self.engine = Partitioned(rs, c.engine.options(template_field=self.masker.field), router)
        self.telemetry.episodes_watched(engines.episode_count)
        self.pipeline = Pipeline(self.decoder, engines, self.telemetry)
        self.keeper = Keeper(build_store(c.checkpoint, c.kafka, c.state.dir), engines, self.telemetry, self.healthy,
                             key=self._checkpoint_key, on_corrupt=c.checkpoint.on_corrupt,
                             wall_clock=self.wall_clock, stopping=self.stopping,
                             backoff=Backoff(*c.retry_backoff))  # fmt: skip
        self._say_repartitioned(rs)
        try:  # before anything is consumed: a spool that cannot be written is fatal now
            self.delivery.open()
        except SpoolError as exc:
            self.log.error("spool_unavailable", state_dir=str(c.state.dir), error=str(exc))
            return EXIT_FAILED
        if unrouted := self.delivery.unrouted_severities():
            self.log.warning("severities_unrouted", severities=unrouted, detail=UNROUTED_DETAIL)
        host, port = c.http.host_port
        h = c.http
        limits = Limits(header_timeout=h.header_timeout / 1000, keepalive_timeout=h.keepalive_timeout / 1000,
                        max_connections=h.max_connections, reserved_descriptors=h.reserved_descriptors)  # fmt: skip
        token = h.auth_token.get_secret_value() if h.auth_token is not None else None
        auth = TokenAuth(token, h.open_metrics, self.telemetry.http_unauthorized) if token else None
        http = HttpServer(host, port, self.metrics.registry, self, limits=limits,
                          on_refused=self.telemetry.http_refused, auth=auth, reload=self.reload_rules)  # fmt: skip
        try:
            self.http_port = await http.start()
        except OSError as exc:
            self.log.error("http_listen_failed", listen=c.http.listen, error=str(exc))
            return EXIT_FAILED
        self.telemetry.lifecycle("http_listening", host=host, port=self.http_port, max_connections=http.cap,
                                 auth="token" if auth else "none")  # fmt: skip
        code = EXIT_OK
        try:
            await self.delivery.start()  # each output's drain starts its output on its own
            if await self._start_checkpoints() and await self.source.start(self.stopping):
                self.telemetry.lifecycle("running")
                self._watch_rules()
                await self._loop()
        except Abandoned as exc:  # stopping while the broker kept failing (dead letters)
            self.telemetry.lifecycle("batch_abandoned", reason=str(exc))
        except SourceUnavailable as exc:  # e.g. a file source's positions file unreadable
            self.log.error("source_unavailable", error=str(exc))
            code = EXIT_FAILED
        finally:
            await self._end_reloads()
            await self.source.stop()  # its last commit checkpoints first
            await self.keeper.stop()
            await self.delivery.stop(grace=c.spool.drain_timeout / 1000)
            await http.stop()
        if self.keeper.fatal is not None:
            self.log.error("checkpoint_unreadable", error=self.keeper.fatal)
            code = EXIT_FAILED
        self.telemetry.lifecycle("stopped", events=self.events_total, alerts=self.alerts_total)
        return code

    async def _start_checkpoints(self) -> bool:
        """The checkpoint store (retried by the keeper until it answers); a file source is
        one partition, restored now, before it opens its files."""
        keeper = self.keeper
        assert keeper is not None
        if not await keeper.start():
            return False
        if isinstance(self.source, FileSource):
            label = self.source.partition(None)
            restored = await keeper.restore({label})
            if label not in restored:  # corrupt, on_corrupt: stop
                self.stopping.set()
                return False
            self.source.restore(restored[label].position)
        return True

    async def _assigned(self, partitions: set[Any]) -> dict[Any, int | None]:
        """The Kafka source's assignment: each partition's state kept or restored, and
        the offset to read it on from; a corrupt one (on_corrupt: stop) stops the daemon."""
        keeper = self.keeper
        assert keeper is not None
        try:
            restored = await keeper.restore(partitions)
        except Exception as exc:  # a bug: never read a partition whose state is not in place
            keeper.fatal = f"restoring the assigned partitions failed: {exc!r}"
            restored = {}
        if keeper.fatal is not None and not self.stopping.is_set():
            self.request_stop("checkpoint")  # once: a second request would exit at once
        self.telemetry.rules_swapped(self.engine.states if self.engine is not None else [])
        return {p: self._read_from(p, r) for p, r in restored.items()}

    def _read_from(self, partition: Any, restored: Restored) -> int | None:
        """Where to read on: the checkpoint's offset (None: the committed one). An internal
        partition without any checkpoint was never counted (its offsets are committed only
        after one), so it is read from its start, whatever ``auto_offset_reset`` says of the
        events' topics ("latest" would skip what was forwarded before anyone read it)."""
        source = self.source
        if restored.offset is None and not restored.found and isinstance(source, KafkaSource) and source.internal(partition):
            return 0
        return restored.offset

    def _checkpoint_key(self, partition: Any) -> str:
        if isinstance(partition, str):  # a file source: its label
            return f"file-{partition}"
        return key_of(partition.topic, partition.partition)

    async def _checkpoint(self, partitions: Collection[Any] | None = None, position: Any = None) -> bool:
        """Before a commit: the spools hold what the committed events raised (submit
        fsyncs already; this keeps the promise should that ever change), then the
        partitions' state is checkpointed with the offsets about to be committed."""
        self.delivery.flush()
        if position is None and isinstance(self.source, FileSource):
            # Outside a commit (an idle resolution, a reload) the state still goes with
            # the positions it reflects: a file source's state without them would be
            # restored onto an older positions file and count its lines twice.
            position = self.source.positions()
        return await self.keeper.save(partitions, position) if self.keeper is not None else True

    async def _checkpoint_positions(self, positions: Any) -> bool:
        return await self._checkpoint(self.source.held(), positions)

    def _say_repartitioned(self, rs: RuleSet) -> None:
        engines = self.engine
        if engines is None or engines.router is None:
            return
        if routes := engines.router.split(rs).routes:
            self.log.info("rules_repartitioned", topic=engines.router.topic,
                          rules=[r.id for route in routes for r in route.rules],
                          group_by=[list(route.group_by) for route in routes],
                          detail="their groups span partitions: their events are forwarded to the internal topic "
                                 "by group and counted there (README Scaling out)")  # fmt: skip

    async def _loop(self) -> None:
        source = self.source
        while not self.stopping.is_set():
            self._pause_while_full()
            records = await source.fetch()
            if records:
                self._last_events = time.monotonic()
                async with source.lock:
                    await self._process(source.owned(records))
            elif not source.paused:
                await self._resolve_idle()
            await source.maybe_commit()

    def _pause_while_full(self) -> None:
        """A full spool stops fetching (never drops): the partitions are paused until it drains."""
        full = self.delivery.full
        if full and not self.source.paused:
            self.source.pause()
            self.telemetry.consumption_paused(full)
        elif not full and self.source.paused:
            self.source.resume()
            self.telemetry.consumption_resumed()

    async def _resolve_idle(self) -> None:
        """With the source caught up and quiet, event time stands still: resolutions the
        wall clock has passed go out now, with their event-time resolved_at."""
        engine = self.engine
        if engine is None or not engine.open_episodes():
            return
        if time.monotonic() - self._last_events < self.config.engine.idle_resolve_after / 1000:
            return
        if not self.source.caught_up():
            return
        async with self.source.lock:
            now_ms = int(self.wall_clock() * 1000)
            self._spool([], engine.resolve_idle(now_ms), now_ms)
            # spooled first: a crash between the two resolves twice, never not
            await self._checkpoint(self.source.held())

    def _rule_timezone(self, rule_id: str) -> str | None:
        """The time zone of the rule's schedule, for outputs that show the window in it."""
        rules = self.ruleset.rules if self.ruleset is not None else ()
        when = next((r.spec.when for r in rules if r.id == rule_id), None)
        return None if when is None else when[1].timezone

    def _open_records(self) -> list[dict[str, Any]]:
        """The open episodes' alerts, masked as they first went out: what re-sends carry."""
        engine = self.engine
        if engine is None:
            return []
        return [self.masker.alert(ep.record()) for ep in engine.open_episodes()]

    async def _process(self, records: Batch) -> None:
        """One batch, start to acknowledged. Runs under the source's lock, so a rebalance
        waits for it rather than committing in the middle."""
        pipeline = self.pipeline
        engines = self.engine
        assert pipeline is not None and engines is not None
        source = self.source
        t0 = time.perf_counter()
        now_ms = int(self.wall_clock() * 1000)
        read = _Read()
        try:
            self._read(records, now_ms, read)
            alerts = pipeline.evaluate_streams(read.streams, read.offsets, started=t0, newest_ms=read.newest,
                                               now_ms=now_ms)  # fmt: skip
            if any(read.forwards):  # before the batch counts as processed: a commit never passes one unsent
                assert isinstance(source, KafkaSource)
                await source.forward(read.forwards)
            self._spool(alerts, engines.resolutions(), now_ms)
            await source.dead_letter(read.dead)
        except BaseException:
            # Not processed (a spool that cannot be written, dead letters abandoned at a
            # stop, a bug), so never committed: nor may the state that holds the batch be
            # checkpointed (an internal partition's marks, moved as its records were read,
            # included). Without their engines these partitions commit nothing more; the
            # next start restores their last checkpoint and reads them again.
            engines.drop(read.offsets)
            raise
        source.processed(records)

    def _read(self, records: Batch, now_ms: int, read: _Read) -> None:
        """A batch's records as each partition's events (decoded, or an internal partition's
        forwarded ones), what to forward and what to dead-letter; ``read.offsets`` names
        each partition as soon as it is touched, for the caller to drop on a failure."""
        pipeline = self.pipeline
        assert pipeline is not None
        source, fmt = self.source, self.input_format
        dead = read.dead
        for tp, recs in records.items():
            part = source.partition(tp)
            read.offsets[part] = source.offset_after(tp, recs)
            if isinstance(source, KafkaSource) and source.internal(tp):
                read.streams[part] = self._counted(source, tp, recs, dead)
                continue
            raws = [r.value if r.value is not None else b"" for r in recs]
            # Empty values and tombstones are bad input like any other (the decoder skips
            # blank lines, which in a file are nothing): counted and dead-lettered.
            empty = [i for i, raw in enumerate(raws) if not raw or raw.isspace()]
            if empty:
                for i in empty:
                    pipeline.reject("empty", "", source.where(tp, recs[i]))
                    dead.append((recs[i], "empty"))
                keep = [i for i, raw in enumerate(raws) if raw and not raw.isspace()]
                recs, raws = [recs[i] for i in keep], [raws[i] for i in keep]
            where = [source.where(tp, r) for r in recs]  # each event's provenance
            if fmt is not None:  # an input format: records to canonical events, maybe several each
                recs, raws, where = self._mapped(fmt, recs, raws, where, dead)
            good, bad = pipeline.decode(raws, where.__getitem__, reference_ms=now_ms, provenance=where)
            if good:
                if self._keyed:
                    source.check_keys(recs, where, good)
                hi = max(ts for _, ts in good)
                read.newest = hi if read.newest is None else max(read.newest, hi)
                read.streams.setdefault(part, []).extend(good)
                if isinstance(source, KafkaSource) and (split := self._split()) is not None:
                    offsets = {w: r.offset for w, r in zip(where, recs, strict=True)}
                    read.forwards.append(repartition.stamp(split, f"{tp.topic}/{tp.partition}", offsets, good,
                                                           source.place))  # fmt: skip
            dead.extend((recs[i], reason) for i, reason in bad)

    def _split(self) -> Split | None:
        """The rule set's split when some rules are repartitioned, else None."""
        engines = self.engine
        if engines is None or engines.router is None:
            return None
        split = engines.router.split(engines.ruleset)
        return split if split.routes else None

    def _counted(self, source: KafkaSource, tp: Any, recs: list[Any],
                 dead: list[tuple[Any, str]]) -> list[tuple[dict[str, Any], int]]:  # fmt: skip
        """An internal partition's records as events to count: those its marks say were
        counted already (forwarded again after a crash or a rebalance) are dropped."""
        engines = self.engine
        assert engines is not None
        slot = engines.slot(tp)
        if not isinstance(slot.position, dict):
            slot.position = {}
        events: list[tuple[dict[str, Any], int]] = []
        duplicates = 0
        for r in recs:
            where = f"{tp.topic}/{tp.partition}@{r.offset}"
            try:
                counted, dropped, misplaced = repartition.count(r.value, slot.position, source.internal_partitions)
            except ValueError as exc:
                self.telemetry.repartition_error("unreadable", f"{where}: {exc}")
                dead.append((r, "repartition_unreadable"))
                continue
            if misplaced:
                self.telemetry.repartition_error("misplaced", f"{where}: placed over {misplaced} partitions, the "
                                                 f"topic has {source.internal_partitions}: groups are split, and what "
                                                 "is forwarded again may count twice", n=len(counted) + dropped)  # fmt: skip
            events += counted
            duplicates += dropped
        self.telemetry.repartition_read(len(events), duplicates)
        return events

    def _mapped(self, fmt: Format, recs: list[Any], raws: list[bytes], where: list[str],
                dead: list[tuple[Any, str]]) -> tuple[list[Any], list[bytes], list[str]]:  # fmt: skip
        """Records through the source's input format: the canonical events (as JSON for the
        decoder) with the record and provenance of each; records the format cannot read
        are counted, logged and dead-lettered like undecodable JSON, skips only counted."""
        pipeline = self.pipeline
        assert pipeline is not None
        mapped = map_records(fmt, "", raws)  # mapped.numbers[i] - 1: the record of event i
        pipeline.skipped(mapped.skipped)
        for n, reason, raw in mapped.invalid:
            pipeline.reject(reason, raw, where[n - 1])
            dead.append((recs[n - 1], reason))
        origin = [n - 1 for n in mapped.numbers]
        return [recs[j] for j in origin], mapped.lines, [where[j] for j in origin]

    @property
    def events_total(self) -> int:
        return self.pipeline.counts.events if self.pipeline is not None else 0

    @property
    def alerts_total(self) -> int:
        return sum(self.pipeline.counts.alerts.values()) if self.pipeline is not None else 0

    def _spool(self, alerts: list[Alert], resolutions: list[Resolution], now_ms: int) -> None:
        """The batch's alerts and resolutions masked (``privacy``), logged, kept for
        ``/alerts`` and spooled for every output they are routed to: what the outputs
        are given, so none can send what was not masked."""
        records = []
        for a in alerts:
            m = self.masker.mask_alert(a)
            self.telemetry.alert_fired(m)
            record = m.to_dict(detected_at_ms=now_ms)
            self.recent.append(record)
            records.append(record)
        for r in resolutions:
            record = self.masker.alert(r.to_dict(detected_at_ms=now_ms))
            self.telemetry.alert_resolved(record)
            records.append(record)
        self.delivery.submit(records)

    # ---------------------------------------------------------- rule reloads (monitor.reload)

    def _sighup(self) -> None:
        if self.engine is None:
            self.telemetry.lifecycle("sighup_ignored", reason="rules not loaded yet: the start loads them")
            return
        self._background(self.reload_rules("sighup"))

    def _watch_rules(self) -> None:
        if self.config.rules.watch:
            self._background(self.reloader.watch(self._swap_rules, self.stopping))

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _end_reloads(self) -> None:
        for task in list(self._reloads):
            task.cancel()
        await asyncio.gather(*self._reloads, return_exceptions=True)

    async def reload_rules(self, trigger: str = "http") -> dict[str, Any]:
        """SIGHUP and ``POST /-/reload``: one attempt; its outcome, for the HTTP answer."""
        return (await self.reloader.reload(trigger, self._swap_rules)).to_dict()

    async def _swap_rules(self, rs: RuleSet) -> Plan:
        """A loaded set into the engine between batches (a batch holds the source's lock);
        the episodes it ends are spooled like any resolution."""
        engine, src = self.engine, self.source
        assert engine is not None
        try:
            fmt = get_format(src.format_name, rs.inputs, timezone=ZoneInfo(src.timezone))
        except UnknownFormat as exc:
            problem = Problem(str(self.config.rules.path), 1, 1, f"the source's format: {exc}", code="E-UNKNOWN-FORMAT")
            raise RuleLoadError([problem]) from None
        async with src.lock:
            changes = engine.reload(rs)
            self.ruleset = rs
            self._bind(fmt)
            self.telemetry.rules_swapped(engine.states)
            self._say_repartitioned(rs)
            self._spool([], engine.resolutions(), int(self.wall_clock() * 1000))
            # The episodes the reload ended, kept as ended should the daemon stop before
            # the next commit (a revoke or a stop with nothing read does not checkpoint).
            await self._checkpoint(src.held())
        return changes
