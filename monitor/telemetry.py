"""Metrics and logs for every internal event, together.

Each internal event has one method here that writes the log line and moves the metric,
so the two never drift apart. Labels are low-cardinality by construction: rule ids,
severities, reasons, outputs, topics and partitions; never an actor, customer, table
value or address. Engine counters are plain integers bumped on the hot path and moved
into Prometheus once per batch by :meth:`Telemetry.batch_done`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor import __version__
from monitor.decode import REASONS

PREFIX = "exfil_monitor_"
# Why the HTTP server closed a connection itself (monitor.http).
HTTP_REFUSALS = ("max_connections", "header_timeout", "descriptors")
# The files under state.dir that the daemon reads back at start (the `file` label).
RESTORE_OUTCOMES = ("restored", "fell_back", "corrupt", "none")
Logger = Any  # structlog's BoundLogger is a protocol in practice
Processor = Callable[[Any, str, dict[str, Any]], dict[str, Any]]  # a structlog processor


REPARTITION_ERRORS = ("refused", "reordered", "unreadable", "misplaced")  # monitor.sources.repartition, monitor.app


class Metrics:
    """Every metric the monitor exports, registered in a registry the caller owns."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        p = PREFIX
        self.events_received = Counter(f"{p}events_received", "Messages read from sources.", registry=r)
        self.events_invalid = Counter(
            f"{p}events_invalid", "Messages that could not be used, by reason.", ["reason"], registry=r
        )
        self.events_late = Counter(
            f"{p}events_late", "Events older than the allowed lateness, dropped from a windowed rule.",
            ["rule"], registry=r,
        )  # fmt: skip
        self.rule_matches = Counter(f"{p}rule_matches", "Events matching a rule.", ["rule"], registry=r)
        self.rule_type_mismatches = Counter(
            f"{p}rule_type_mismatches", "Field values of the wrong type for a rule's operator.",
            ["rule"], registry=r,
        )  # fmt: skip
        self.alerts = Counter(f"{p}alerts", "Alerts fired.", ["rule", "severity"], registry=r)
        self.group_evictions = Counter(
            f"{p}group_evictions", "Window groups evicted because a rule reached its group cap.",
            ["rule"], registry=r,
        )  # fmt: skip
        self.distinct_approximations = Counter(
            f"{p}distinct_approximations", "Groups whose distinct count switched to HyperLogLog.",
            ["rule"], registry=r,
        )  # fmt: skip
        self.saturated_sums = Counter(
            f"{p}saturated_sums", "Sum windows whose exact value left the float range, held at the bound.",
            ["rule"], registry=r,
        )  # fmt: skip
        self.active_groups = Gauge(f"{p}active_groups", "Window groups held, by rule.", ["rule"], registry=r)
        self.rules_loaded = Gauge(f"{p}rules_loaded", "Enabled rules in force.", registry=r)
        self.rule_reloads = Counter(
            f"{p}rule_reloads", "Rule set loads, by outcome.", ["outcome"], registry=r
        )
        self.rules_last_good = Gauge(
            f"{p}rules_last_good",
            "1 while the daemon runs the last good rule set kept in state.dir, the one at rules.path being broken.",
            registry=r,
        )  # fmt: skip
        self.output_sends = Counter(
            f"{p}output_sends", "Alert deliveries, by output and outcome.", ["output", "outcome"], registry=r
        )
        self.dead_letters = Counter(
            f"{p}dead_letters", "Messages produced to the dead-letter topic, by reason.", ["reason"], registry=r
        )
        self.consumer_lag = Gauge(
            f"{p}consumer_lag", "Messages behind the end of each partition.", ["topic", "partition"], registry=r
        )
        self.event_time_lag = Histogram(
            f"{p}event_time_lag_seconds", "Wall clock minus event time, per batch's newest event.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600), registry=r,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            f"{p}batch_seconds", "Time to decode and evaluate one batch.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=r,
        )  # fmt: skip
        self.source_errors = Counter(
            f"{p}source_errors", "Errors talking to the event source, by kind.", ["kind"], registry=r
        )
        self.files_followed = Gauge(
            f"{p}files_followed", "Log files a file source has open, by source.", ["source"], registry=r
        )
        self.file_bytes_read = Counter(
            f"{p}file_bytes_read", "Bytes a file source read from its files, by source.", ["source"], registry=r
        )
        self.file_rotations = Counter(
            f"{p}file_rotations", "Followed files renamed away (rotated) or truncated, by source and kind.",
            ["source", "kind"], registry=r,
        )  # fmt: skip
        self.events_skipped = Counter(
            f"{p}events_skipped", "Records an input format read but skipped as not data access, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.source_connected = Gauge(f"{p}source_connected", "1 while the source is connected.", registry=r)
        self.partitions_assigned = Gauge(
            f"{p}partitions_assigned", "Partitions this instance was given by its consumer group.", registry=r
        )
        self.commits = Counter(f"{p}commits", "Offset commits, by outcome.", ["outcome"], registry=r)
        self.alerts_rejected = Counter(
            f"{p}alerts_rejected", "Records an output's receiver refused for good, parked in its spool.",
            ["output"], registry=r,
        )  # fmt: skip
        self.alerts_unrouted = Counter(
            f"{p}alerts_unrouted", "Alert records no output's match: took, by severity.", ["severity"], registry=r
        )
        self.alerts_resolved = Counter(f"{p}alerts_resolved", "Episodes resolved.", ["rule", "severity"], registry=r)
        self.output_failures = Counter(
            f"{p}output_failures", "Failed delivery attempts, by output and reason.", ["output", "reason"], registry=r
        )
        self.output_retries = Counter(
            f"{p}output_retries", "Delivery attempts scheduled again after a failure.", ["output"], registry=r
        )
        self.output_resends = Counter(
            f"{p}output_resends", "Re-sends of the open episodes, by output and outcome.",
            ["output", "outcome"], registry=r,
        )  # fmt: skip
        self.spool_depth = Gauge(f"{p}output_spool_depth", "Records spooled, not yet delivered.", ["output"], registry=r)
        self.spool_bytes = Gauge(
            f"{p}output_spool_bytes", "Bytes of the undelivered records in the spool.", ["output"], registry=r
        )
        self.spool_max_bytes = Gauge(
            f"{p}output_spool_max_bytes", "The spool's bound (spool.max_bytes).", ["output"], registry=r
        )
        self.spool_oldest = Gauge(
            f"{p}output_oldest_undelivered_seconds", "Age of the oldest undelivered record.", ["output"], registry=r
        )
        self.consumption_paused = Gauge(
            f"{p}consumption_paused", "1 while consumption waits for a full spool to drain.", registry=r
        )
        self.episodes_open = Gauge(f"{p}episodes_open", "Open episodes (alerts not yet resolved).", registry=r)
        self.checkpoints = Counter(
            f"{p}checkpoints", "Checkpoint writes of partition state (monitor.checkpoints), by outcome.", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.checkpoint_bytes = Counter(f"{p}checkpoint_bytes", "Bytes of checkpoints written.", registry=r)
        self.checkpoint_seconds = Histogram(
            f"{p}checkpoint_seconds", "Time to snapshot and write the checkpoints of one commit.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )  # fmt: skip
        self.checkpoint_restores = Counter(
            f"{p}checkpoint_restores", "Partitions taken over, by what their checkpoint gave: restored, fell_back "
            "(the newest was unreadable, the previous used), corrupt (none readable), none (never written).",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.key_mismatches = Counter(
            f"{p}key_mismatches", "Kafka records whose key is not their kafka.key_field value (their groups are "
            "split over partitions).", registry=r,
        )  # fmt: skip
        self.forwarded = Counter(
            f"{p}repartition_forwarded", "Events forwarded to the internal topic for rules evaluated after "
            "repartitioning (acknowledged by the broker).", registry=r,
        )  # fmt: skip
        self.repartition_counted = Counter(
            f"{p}repartition_counted", "Forwarded events read back from the internal topic and counted by the "
            "repartitioned rules (forwarded minus counted, duplicates and errors: the internal topic's backlog).", registry=r,
        )  # fmt: skip
        self.repartition_duplicates = Counter(
            f"{p}repartition_duplicates", "Forwarded events read back again and dropped: already counted (their "
            "source partition was read again after a crash or a rebalance).", registry=r,
        )  # fmt: skip
        self.repartition_errors = Counter(
            f"{p}repartition_errors", "Forwarded events that cannot be counted (refused by the broker, sent out of "
            "order after a failure, unreadable in the internal topic) or counted where their group may be split "
            "(misplaced: placed over another number of partitions than the internal topic has).", ["kind"], registry=r,
        )  # fmt: skip
        self.http_refused = Counter(
            f"{p}http_refused", "HTTP connections closed by the server's bounds, by reason.", ["reason"], registry=r
        )
        self.http_unauthorized = Counter(
            f"{p}http_unauthorized", "HTTP requests refused for want of the right bearer token (http.auth_token).",
            registry=r,
        )  # fmt: skip
        self.build_info = Gauge(f"{p}build_info", "Build information.", ["version"], registry=r)
        self.build_info.labels(version=__version__).set(1)
        # Series that exist from the start at zero, so that an alert on "increased" sees
        # the first failure too (a series born at 1 has no increase to show).
        for reason in REASONS:
            self.events_invalid.labels(reason=reason)
            self.dead_letters.labels(reason=reason)
        for outcome in ("success", "rejected"):
            self.rule_reloads.labels(outcome=outcome)
        for outcome in ("success", "error"):
            self.commits.labels(outcome=outcome)
        for reason in HTTP_REFUSALS:
            self.http_refused.labels(reason=reason)
        for outcome in ("saved", "failed"):
            self.checkpoints.labels(outcome=outcome)
        for kind in REPARTITION_ERRORS:
            self.repartition_errors.labels(kind=kind)
        for outcome in RESTORE_OUTCOMES:
            self.checkpoint_restores.labels(outcome=outcome)


def _orjson(obj: Any, **kw: Any) -> bytes:
    """structlog's JSON serializer: orjson, to bytes; the stdlib for what orjson refuses."""
    try:
        return orjson.dumps(obj, default=kw.get("default"), option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(obj, default=kw.get("default")).encode()


# The processor chains, built once for the process; each logger below only wraps a stream.
_STAMP: list[Any] = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
PROCESSORS: dict[str, list[Any]] = {
    "json": [*_STAMP, structlog.processors.JSONRenderer(serializer=_orjson)],
    "console": [*_STAMP, structlog.dev.ConsoleRenderer(colors=False)],
}


class StreamLogger:
    """structlog's ``BytesLogger``, onto a text or binary stream: one line per event, flushed."""

    def __init__(self, stream: IO[Any]) -> None:
        self._stream = stream
        self._binary = isinstance(stream, io.RawIOBase | io.BufferedIOBase) or "b" in getattr(stream, "mode", "")

    def msg(self, message: bytes | str) -> None:
        if self._binary:
            self._stream.write((message if isinstance(message, bytes) else message.encode()) + b"\n")
        else:
            self._stream.write((message.decode() if isinstance(message, bytes) else message) + "\n")
        self._stream.flush()

    log = debug = info = warn = warning = error = err = critical = fatal = exception = failure = msg


def configure_logging(fmt: str = "json", level: str = "info", stream: IO[Any] | None = None,
                      mask: Processor | None = None) -> Logger:  # fmt: skip
    """A logger of its own writing JSON lines (``json``) or aligned text (``console``) to
    ``stream``; nothing global is configured, so two daemons in one process log apart.

    ``mask`` (the daemon's :meth:`monitor.privacy.Masker.log_processor`) runs on every line
    just before it is rendered: log lines quote events (``invalid_event`` samples, alert
    summaries, library messages), and the one place that sees them all is here."""
    wrapper = structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()])
    chain = PROCESSORS[fmt] if mask is None else [*PROCESSORS[fmt][:-1], mask, PROCESSORS[fmt][-1]]
    return structlog.wrap_logger(StreamLogger(stream if stream is not None else sys.stderr),
                                 processors=chain, wrapper_class=wrapper,
                                 cache_logger_on_first_use=True)  # fmt: skip


class LibraryLogHandler(logging.Handler):
    """Routes the standard-library logging of libraries into the structured log."""

    def __init__(self, telemetry: Telemetry, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.telemetry = telemetry

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.telemetry.library_log(record.name, record.levelno, record.getMessage())
        except Exception:  # logging must never take the daemon down
            self.handleError(record)


def route_library_logs(telemetry: Telemetry, level: str = "warning") -> LibraryLogHandler:
    """Install a :class:`LibraryLogHandler` on the root logger; returns it for removal."""
    handler = LibraryLogHandler(telemetry, max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))
    root = logging.getLogger()
    root.addHandler(handler)
    return handler


class RateLimiter:
    """At most ``per_minute`` log lines per key; the rest are counted and summarised."""

    def __init__(self, per_minute: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._window: dict[str, tuple[float, int, int]] = {}  # key -> (start, logged, suppressed)

    def allow(self, key: str) -> tuple[bool, int]:
        """(may log now, lines suppressed since the last one that was logged)."""
        now = self.clock()
        start, logged, suppressed = self._window.get(key, (now, 0, 0))
        if now - start >= 60:
            start, logged = now, 0
        if logged < self.per_minute:
            self._window[key] = (start, logged + 1, 0)
            return True, suppressed
        self._window[key] = (start, logged, suppressed + 1)
        return False, 0


class Telemetry:
    """One method per internal event: a log line and a metric, together."""

    def __init__(self, metrics: Metrics, log: Logger, *, limiter: RateLimiter | None = None) -> None:
        self.metrics = metrics
        self.log = log
        self.limiter = limiter or RateLimiter()
        self._synced: dict[int, tuple[Any, list[Any], list[int]]] = {}  # id(state) -> metrics
        self._tallies: dict[str, tuple[Any, int, Any]] = {}  # rule id -> (its tally, counted, metric)

    def rules_loaded(self, count: int, digest: str, files: Iterable[str], warnings: Sequence[str] = ()) -> None:
        self.metrics.rules_loaded.set(count)
        self.metrics.rule_reloads.labels(outcome="success").inc()
        self.log.info("rules_loaded", rules=count, digest=digest[:12], files=len(list(files)))
        self._rule_warnings(warnings)

    def _rule_warnings(self, warnings: Sequence[str]) -> None:
        if warnings:  # the set is in force, but some rule probably does not do what it should
            self.log.warning("rule_warnings", warnings=list(warnings[:50]), count=len(warnings))

    def rules_rejected(self, problems: list[str], trigger: str = "start") -> None:
        """Every problem, each ``FILE:LINE:COL: message``: the set in force stays."""
        self.metrics.rule_reloads.labels(outcome="rejected").inc()
        self.log.error("rules_rejected", trigger=trigger, problems=problems, count=len(problems))

    def rules_reloaded(self, trigger: str, count: int, digest: str, previous: str, changes: Mapping[str, Any],
                       warnings: Sequence[str] = ()) -> None:  # fmt: skip
        """The audit line of a reload: which files and rules changed, from which set to which."""
        m = self.metrics
        m.rules_loaded.set(count)
        m.rule_reloads.labels(outcome="success").inc()
        m.rules_last_good.set(0)
        self.log.info("rules_reloaded", trigger=trigger, rules=count, digest=digest[:12], previous=previous[:12],
                      **changes)  # fmt: skip
        self._rule_warnings(warnings)

    def rules_last_good(self, count: int, digest: str, path: str, loaded_at: str, kept: str) -> None:
        """Started on a broken rule set: the kept one runs instead, and that must not go unseen."""
        self.metrics.rules_loaded.set(count)
        self.metrics.rules_last_good.set(1)
        self.log.error("rules_last_good", rules=count, digest=digest[:12], path=path, loaded_at=loaded_at, kept=kept,
                       detail="the rule set at rules.path was rejected; running the last one that loaded "
                              "until it is fixed")  # fmt: skip

    def rules_last_good_unusable(self, error: str) -> None:
        self.log.error("rules_last_good_unusable", error=error)

    def rules_unkept(self, path: str, error: str) -> None:
        self.log.warning("rules_unkept", path=path, error=error,
                         detail="the rule set in force is not kept as the last good one")  # fmt: skip

    def rules_swapped(self, states: Sequence[Any]) -> None:
        """After an engine reload: forget the metrics of states no longer in it, and the
        group gauge of rules gone, so neither holds a dropped rule's memory or value."""
        live = {id(s): s for s in states}
        self._synced = {k: v for k, v in self._synced.items() if live.get(k) is v[0]}
        self._set_active_groups(states)  # partitions given away take their groups with them
        ids = {s.id for s in states}
        for labels in [tuple(sample.labels.values()) for metric in self.metrics.active_groups.collect()
                       for sample in metric.samples]:  # fmt: skip
            if labels and labels[0] not in ids:
                with contextlib.suppress(KeyError):
                    self.metrics.active_groups.remove(*labels)

    def events_received(self, n: int) -> None:
        self.metrics.events_received.inc(n)

    def invalid_event(self, reason: str, sample: str, where: str) -> None:
        self.metrics.events_invalid.labels(reason=reason).inc()
        ok, suppressed = self.limiter.allow(f"invalid:{reason}")
        if ok:
            self.log.warning("invalid_event", reason=reason, where=where, sample=sample, suppressed=suppressed)

    def alert_fired(self, alert: Any) -> None:
        self.metrics.alerts.labels(rule=alert.rule, severity=alert.severity).inc()
        d = alert.to_dict()  # within the alert's size budget, truncation marked
        self.log.warning(
            "alert", alert_id=alert.id, rule=alert.rule, severity=alert.severity,
            group=d["group"], value=alert.value, fired_at=d["fired_at"], summary=d["summary"],
        )  # fmt: skip

    def alert_resolved(self, record: Mapping[str, Any]) -> None:
        self.metrics.alerts_resolved.labels(rule=record["rule"], severity=record["severity"]).inc()
        self.log.info("alert_resolved", alert_id=record["id"], rule=record["rule"], severity=record["severity"],
                      group=record.get("group"), resolved_at=record.get("resolved_at"))  # fmt: skip

    def outputs_declared(self, names: Iterable[str]) -> None:
        m = self.metrics
        for name in names:
            for outcome in ("success", "error"):
                m.output_sends.labels(output=name, outcome=outcome)
                m.output_resends.labels(output=name, outcome="success" if outcome == "success" else "error")
            m.alerts_rejected.labels(output=name)
            m.output_retries.labels(output=name)
        for severity in ("critical", "high", "medium", "low", "info"):
            m.alerts_unrouted.labels(severity=severity)

    def spool_opened(self, output: str, spool: Any) -> None:
        """The spool's gauges read it when scraped, so they are never stale."""
        m = self.metrics
        m.spool_depth.labels(output=output).set_function(lambda: spool.depth)
        m.spool_bytes.labels(output=output).set_function(lambda: spool.bytes)
        m.spool_max_bytes.labels(output=output).set(spool.max_bytes)
        m.spool_oldest.labels(output=output).set_function(spool.oldest_age)
        if spool.torn_bytes:
            self.log.warning("spool_recovered", output=output, torn_bytes=spool.torn_bytes,
                             detail="a torn or damaged tail was cut off; the entries before it are kept")  # fmt: skip
        if spool.depth:
            self.log.info("spool_pending", output=output, records=spool.depth, bytes=spool.bytes)

    def output_failed(self, output: str, reason: str, error: str, n: int) -> None:
        """One attempt failed; it will be retried (the records stay spooled)."""
        self.metrics.output_failures.labels(output=output, reason=reason).inc()
        self.output_result(output, "error", n, error=error)

    def output_retry(self, output: str, delay: float) -> None:
        self.metrics.output_retries.labels(output=output).inc()

    def output_resend(self, output: str, n: int, outcome: str, error: str | None = None) -> None:
        self.metrics.output_resends.labels(output=output, outcome="success" if outcome == "success" else "error").inc()
        if error is not None:
            self.metrics.output_failures.labels(output=output, reason=outcome).inc()
            ok, suppressed = self.limiter.allow(f"resend:{output}")
            if ok:
                self.log.error("output_resend_failed", output=output, records=n, reason=outcome, error=error,
                               suppressed=suppressed)  # fmt: skip

    def alert_rejected(self, output: str, record: Mapping[str, Any], answer: str) -> None:
        self.metrics.alerts_rejected.labels(output=output).inc()
        self.log.error("alert_rejected", output=output, alert_id=record.get("id"), rule=record.get("rule"),
                       type=record.get("type"), answer=answer[:300],
                       detail="parked in the output's spool, never retried")  # fmt: skip

    def alert_unrouted(self, record: Mapping[str, Any]) -> None:
        severity = str(record.get("severity"))
        self.metrics.alerts_unrouted.labels(severity=severity).inc()
        ok, suppressed = self.limiter.allow(f"unrouted:{severity}")
        if ok:
            self.log.warning("alert_unrouted", alert_id=record.get("id"), rule=record.get("rule"),
                             severity=severity, type=record.get("type"), suppressed=suppressed,
                             detail="no output's match: takes it")  # fmt: skip

    def episodes_watched(self, count: Callable[[], int]) -> None:
        """The open-episodes gauge reads the table when scraped."""
        self.metrics.episodes_open.set_function(count)

    def checkpoint_saved(self, partitions: int, size: int, seconds: float) -> None:
        m = self.metrics
        m.checkpoints.labels(outcome="saved").inc()
        m.checkpoint_bytes.inc(size)
        m.checkpoint_seconds.observe(seconds)
        self.log.debug("checkpoint_saved", partitions=partitions, bytes=size, seconds=round(seconds, 4))

    def checkpoint_failed(self, store: str, error: str) -> None:
        self.metrics.checkpoints.labels(outcome="failed").inc()
        ok, suppressed = self.limiter.allow("checkpoint")
        if ok:
            self.log.error("checkpoint_failed", store=store, error=error, suppressed=suppressed,
                           detail="offsets are not committed without their checkpoint; retried at the next "
                                  "interval, and a restart now reads again from the last checkpoint")  # fmt: skip

    def checkpoint_store_unavailable(self, store: str, error: str) -> None:
        self.metrics.source_errors.labels(kind="checkpoint_store").inc()
        ok, suppressed = self.limiter.allow("checkpoint_store")
        if ok:
            self.log.error("checkpoint_store_unavailable", store=store, error=error, suppressed=suppressed,
                           detail="no partition is read before its checkpoint can be; retrying")  # fmt: skip

    def checkpoint_restored(self, key: str, outcome: str, offset: int | None = None, *, size: int = 0,
                            error: str | None = None, misfits: Sequence[str] = (), action: str | None = None) -> None:  # fmt: skip
        """A partition taken over: what its checkpoint gave (``outcome`` is one of
        :data:`RESTORE_OUTCOMES`), said at the level it deserves."""
        self.metrics.checkpoint_restores.labels(outcome=outcome).inc()
        fields: dict[str, Any] = {"partition": key, "offset": offset}
        if misfits:
            fields["rules_started_empty"] = list(misfits)
        if outcome == "restored":
            self.log.info("checkpoint_restored", bytes=size, **fields)
        elif outcome == "none":
            self.log.info("checkpoint_none", detail="no checkpoint yet: starting empty from the committed offset",
                          **fields)  # fmt: skip
        elif outcome == "fell_back":
            self.log.warning("checkpoint_fell_back", error=error, bytes=size,
                             detail="the newest checkpoint was unreadable; the previous one is restored and "
                                    "its events are read again", **fields)  # fmt: skip
        else:
            self.log.error("checkpoint_corrupt", error=error, action=action, **fields)

    def key_mismatch(self, n: int, where: str, key: str | None, expected: str | None, key_field: str) -> None:
        self.metrics.key_mismatches.inc(n)
        ok, suppressed = self.limiter.allow("key_mismatch")
        if ok:
            self.log.warning("key_mismatch", records=n, example=where, key=key, key_field=key_field,
                             field_value=expected, suppressed=suppressed,
                             detail="the producer keys records by something other than kafka.key_field: groups "
                                    "of one value are split over partitions, and rules grouped by it miss "
                                    "events")  # fmt: skip

    def consumption_paused(self, outputs: Sequence[str]) -> None:
        self.metrics.consumption_paused.set(1)
        self.log.warning("consumption_paused", outputs=list(outputs),
                         detail="spool full (spool.max_bytes): fetching resumes when it drains")  # fmt: skip

    def consumption_resumed(self) -> None:
        self.metrics.consumption_paused.set(0)
        self.log.info("consumption_resumed")

    def output_result(self, output: str, outcome: str, n: int = 1, error: str | None = None) -> None:
        self.metrics.output_sends.labels(output=output, outcome=outcome).inc(n)
        if error is not None:
            ok, suppressed = self.limiter.allow(f"output:{output}")
            if ok:
                self.log.error("output_failed", output=output, error=error, suppressed=suppressed)

    def http_refused(self, reason: str, detail: str) -> None:
        self.metrics.http_refused.labels(reason=reason).inc()
        ok, suppressed = self.limiter.allow(f"http:{reason}")
        if ok:
            self.log.warning("http_refused", reason=reason, detail=detail, suppressed=suppressed)

    def http_unauthorized(self, path: str) -> None:
        """A request without the right token: the path is said, never what was presented."""
        self.metrics.http_unauthorized.inc()
        ok, suppressed = self.limiter.allow("http:unauthorized")
        if ok:
            self.log.warning("http_unauthorized", path=path[:200], suppressed=suppressed)

    def forwarded(self, n: int) -> None:
        self.metrics.forwarded.inc(n)

    def repartition_read(self, counted: int, duplicates: int) -> None:
        """An internal partition's batch: events counted, and those dropped as counted already."""
        self.metrics.repartition_counted.inc(counted)
        if duplicates:
            self.metrics.repartition_duplicates.inc(duplicates)

    def repartition_error(self, kind: str, error: str, n: int = 1) -> None:
        self.metrics.repartition_errors.labels(kind=kind).inc(n)
        ok, suppressed = self.limiter.allow(f"repartition:{kind}")
        if ok:
            self.log.error("repartition_error", kind=kind, error=error, events=n, suppressed=suppressed)

    def dead_lettered(self, reason: str, n: int = 1) -> None:
        self.metrics.dead_letters.labels(reason=reason).inc(n)

    def source_error(self, kind: str, error: str) -> None:
        self.metrics.source_errors.labels(kind=kind).inc()
        ok, suppressed = self.limiter.allow(f"source:{kind}")
        if ok:
            self.log.error("source_error", kind=kind, error=error, suppressed=suppressed)

    def files_followed(self, source: str, n: int) -> None:
        self.metrics.files_followed.labels(source=source).set(n)

    def file_bytes_read(self, source: str, n: int) -> None:
        self.metrics.file_bytes_read.labels(source=source).inc(n)

    def file_rotated(self, source: str, kind: str) -> None:
        """A followed file renamed away (drained, then let go) or truncated (read from 0)."""
        self.metrics.file_rotations.labels(source=source, kind=kind).inc()
        self.log.info("file_rotated", source=source, kind=kind)

    def events_skipped(self, reasons: Mapping[str, int]) -> None:
        for reason, n in reasons.items():
            self.metrics.events_skipped.labels(reason=reason).inc(n)

    def source_connected(self, connected: bool) -> None:
        self.metrics.source_connected.set(1 if connected else 0)
        self.log.info("source_connected" if connected else "source_disconnected")

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)

    def partitions_assigned(self, partitions: list[tuple[str, int]]) -> None:
        self.metrics.partitions_assigned.set(len(partitions))
        self.log.info("partitions_assigned", count=len(partitions),
                      partitions=[f"{t}/{p}" for t, p in sorted(partitions)][:100])  # fmt: skip

    def partitions_revoked(self, partitions: list[tuple[str, int]]) -> None:
        """Drop the lag series of partitions we no longer read, so they do not freeze."""
        self.metrics.partitions_assigned.set(0)
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(topic, str(partition))
        self.log.info("partitions_revoked", count=len(partitions),
                      partitions=[f"{t}/{p}" for t, p in sorted(partitions)][:100])  # fmt: skip

    def committed(self, partitions: int) -> None:
        self.metrics.commits.labels(outcome="success").inc()
        self.log.debug("committed", partitions=partitions)

    def commit_failed(self, error: str) -> None:
        self.metrics.commits.labels(outcome="error").inc()
        ok, suppressed = self.limiter.allow("commit")
        if ok:
            self.log.warning("commit_failed", error=error, suppressed=suppressed)

    def lifecycle(self, event: str, **fields: Any) -> None:
        """Start, stop and signal lines: rare, so never rate-limited."""
        self.log.info(event, **fields)

    def library_log(self, logger: str, level: int, message: str) -> None:
        """A log record of a library (aiokafka, aiohttp), rate-limited per logger and level:
        a broker outage makes aiokafka repeat the same error several times a second."""
        ok, suppressed = self.limiter.allow(f"lib:{logger}:{level}")
        if ok:
            name = logging.getLevelName(level).lower()
            method = getattr(self.log, name if name in ("debug", "info", "warning", "error") else "error")
            method("library", logger=logger, message=message[:500], suppressed=suppressed)

    def batch_done(self, engine: Any, seconds: float, newest_event_ms: int | None, now_ms: int | None) -> None:
        """Move the engine's plain counters into Prometheus: once per batch, not per event."""
        m = self.metrics
        m.batch_seconds.observe(seconds)
        if newest_event_ms is not None and now_ms is not None:
            m.event_time_lag.observe(max(0.0, (now_ms - newest_event_ms) / 1000))
        # One rule has a state in every partition's engine: counters add up on their own,
        # the groups gauge is summed per rule. States of partitions given away are pruned.
        synced_now: dict[int, tuple[Any, list[Any], list[int]]] = {}
        states = engine.states
        for state in states:
            synced = self._synced.get(id(state))
            if synced is None or synced[0] is not state:
                synced = self._children(state)
            synced_now[id(state)] = synced
            _, children, last = synced
            values = (state.matches, state.late, state.evictions, state.approximations, state.saturations)
            for i, value in enumerate(values):
                if value > last[i]:
                    children[i].inc(value - last[i])
                    last[i] = value
        self._synced = synced_now
        self._sync_mismatches(states)
        self._set_active_groups(states)

    def _sync_mismatches(self, states: Sequence[Any]) -> None:
        """Type mismatches are counted in the rule's one tally, which every partition's
        state of the rule shares: read once per rule, not once per state."""
        tallies = self._tallies
        for state in states:
            tally = state.mismatch
            seen = tallies.get(state.id)
            if seen is None or seen[0] is not tally:
                # a reloaded rule's tally carries the old one's count on: so does its mark
                last = seen[1] if seen is not None and tally.source is seen[0] else 0
                seen = tallies[state.id] = (tally, last, self.metrics.rule_type_mismatches.labels(rule=state.id))
            if tally.value > seen[1]:
                seen[2].inc(tally.value - seen[1])
                tallies[state.id] = (tally, tally.value, seen[2])

    def _set_active_groups(self, states: Sequence[Any]) -> None:
        held: dict[str, int] = {}
        for st in states:
            held[st.id] = held.get(st.id, 0) + len(st.groups)
        for rid, n in held.items():
            self.metrics.active_groups.labels(rule=rid).set(n)

    def _children(self, state: Any) -> tuple[Any, list[Any], list[int]]:
        """The rule's labelled metrics, looked up once: ``labels()`` costs more than the
        increments themselves when batches are small."""
        m = self.metrics
        rid = state.id
        children = [
            m.rule_matches.labels(rule=rid), m.events_late.labels(rule=rid),
            m.group_evictions.labels(rule=rid), m.distinct_approximations.labels(rule=rid),
            m.saturated_sums.labels(rule=rid),
        ]  # fmt: skip
        return state, children, [0, 0, 0, 0, 0]


def quiet_telemetry() -> Telemetry:
    """For commands that report their own counts (``demo``, ``test``): metrics on a
    registry of their own, only errors logged, and each bad event's line said once."""
    return Telemetry(Metrics(), configure_logging("console", "error"), limiter=RateLimiter(1, lambda: 0.0))
