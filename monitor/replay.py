"""``exfil-monitor replay``: recorded events through the rules, alerts to standard output.

The same pipeline (:mod:`monitor.pipeline`) as the daemon, fed from files instead of Kafka, so a replay
of the events a daemon consumed names the same alerts with the same ids.

With ``--resolutions`` the ends of episodes are printed too, each once final, merged into
the alerts of the batch whose events made it final by time (``resolved_at`` before an
alert's ``fired_at`` comes first). At the end of the input every episode
still open resolves at its ``resolved_at``, even one past the last event: that is what
a daemon whose source then stayed idle would send, so the output shows every incident's
end. Without the flag the output is alerts only, as it always was.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import orjson

from monitor.decode import Decoder
from monitor.engine import Alert, Engine, Resolution
from monitor.inputs.reader import MappedFileSource
from monitor.pipeline import Counts, Pipeline
from monitor.sources.files import FileSource
from monitor.telemetry import Telemetry
from monitor.timeparse import format_ts
from monitor.units import format_value


@dataclass
class ReplayStats(Counts):
    late: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    resolved: int | None = None  # episodes resolved, when they are printed
    warm: Counts | None = None  # the --warmup files', when there were any

    def summary_lines(self) -> list[str]:
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        lines = []
        if self.warm is not None:
            w = self.warm
            lines.append(f"warm-up: {w.events} events read, {w.valid} used, {sum(w.invalid.values())} invalid, "
                         f"{sum(w.alerts.values())} alerts held back")  # fmt: skip
        lines.append(f"events read: {self.events} in {self.seconds:.2f}s ({rate:,.0f}/s)")
        lines.append(f"events used: {self.valid}")
        invalid = sum(self.invalid.values())
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.invalid.items()))
        lines.append(f"invalid: {invalid}" + (f" ({detail})" if detail else ""))
        if self.invalid.get("future_time"):
            lines.append(
                "  (future_time: more than --max-future-skew ahead of the newest event so far, "
                "and not confirmed by the next event)"
            )
        if self.skipped:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
            lines.append(f"skipped (not data access): {sum(self.skipped.values())} ({detail})")
        late = sum(self.late.values())
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.late.items()) if v)
        lines.append(f"late (dropped from windowed rules): {late}" + (f" ({detail})" if detail else ""))
        lines.append(f"alerts: {sum(self.alerts.values())}")
        lines.extend(f"  {rule}: {n}" for rule, n in sorted(self.alerts.items()))
        if self.resolved is not None:
            lines.append(f"resolutions: {self.resolved}")
        return lines


class Progress:
    """A one-line progress display on a terminal; silent otherwise.

    Given the source, and when its inputs are regular files (their size known), the line
    also shows the share done and the time left, both from bytes read (a .gz counts its
    compressed bytes, so no file is read twice to learn its size).
    """

    def __init__(self, stream: TextIO, enabled: bool, source: FileSource | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.stream = stream
        self.enabled = enabled
        self.source = source
        self.total = source.total_bytes() if source is not None and enabled else None
        self.clock = clock
        self._last = 0.0
        self._width = 0
        self._start = clock()

    def update(self, stats: ReplayStats, name: str) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now - self._last < 0.25:
            return
        self._last = now
        text = self.line(stats, name, now) + "   "
        self._width = max(self._width, len(text))
        self.stream.write("\r" + text)
        self.stream.flush()

    def line(self, stats: ReplayStats, name: str, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = stats.events / elapsed
        alerts = sum(stats.alerts.values())
        text = f"{name}: {stats.events:,} events, {rate:,.0f}/s, {alerts} alerts"
        if self.source is None or not self.total:
            return text
        share = min(self.source.bytes_read() / self.total, 1.0)
        left = elapsed * (1 - share) / share if share > 0 else None
        return f"{share:6.1%} {text}, " + (f"{_clock_time(left)} left" if left is not None else "time left unknown")

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * max(78, self._width) + "\r")
            self.stream.flush()


def _clock_time(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def run_replay(
    source: FileSource | MappedFileSource,
    decoder: Decoder,
    engine: Engine,
    emit: Callable[[Alert], None],
    telemetry: Telemetry,
    progress: Progress | None = None,
    resolved: Callable[[Resolution], None] | None = None,
    warmup: FileSource | MappedFileSource | None = None,
) -> ReplayStats:
    """``resolved``, when given, receives each episode's resolution (``--resolutions``);
    without it they are collected and dropped, so a long replay holds none.

    ``warmup``: events read first, as the beginning of the same timeline, that train
    every rule's state (windows, suppressions, clocks) and emit nothing: what they would
    have raised is counted as held back, and their episodes are forgotten."""
    stats = ReplayStats(resolved=None if resolved is None else 0)
    if warmup is not None:
        stats.warm = Counts()
        warm = Pipeline(decoder, engine, telemetry, counts=stats.warm)
        for batch in warmup.batches():
            warm.feed(batch)
            engine.resolutions()  # of alerts never sent: dropped
        engine.warmed()  # the decoder carries on: the files that follow continue the timeline

    def ended(alerts: list[Alert], resolutions: list[Resolution]) -> None:
        if resolved is None:
            return
        stats.resolved = (stats.resolved or 0) + len(resolutions)
        i = 0
        for alert in alerts:
            while i < len(resolutions) and resolutions[i].resolved_at_ms <= alert.fired_at_ms:
                resolved(resolutions[i])
                i += 1
            emit(alert)
        for r in resolutions[i:]:
            resolved(r)

    # with resolutions to merge in, the alerts are printed here, not as they fire
    pipeline = Pipeline(decoder, engine, telemetry, emit=emit if resolved is None else None, counts=stats)
    start = time.perf_counter()
    for batch in source.batches():
        ended(pipeline.feed(batch), engine.resolutions())
        if progress is not None:
            progress.update(stats, batch.name)
    pipeline.finish()
    ended([], engine.resolve_all())
    stats.seconds = time.perf_counter() - start
    for state in engine.states:
        stats.late[state.id] = state.late
    if progress is not None:
        progress.done()
    return stats


TABLE_HEADER = f"{'FIRED AT':<24}  {'SEVERITY':<8}  {'RULE':<34}  {'GROUP':<24}  {'VALUE':>14}  SUMMARY"


def table_row(alert: Alert) -> str:
    d = alert.to_dict()
    group = ",".join(f"{v}" for v in alert.group.values()) or "-"
    value_text = format_value(d["value"], alert.unit)
    return (
        f"{d['fired_at']:<24}  {alert.severity:<8}  {alert.rule[:34]:<34}  {group[:24]:<24}  "
        f"{value_text:>14}  {alert.summary}"
    )


def resolution_row(r: Resolution) -> str:
    """A table row for the end of an episode: its resolved_at where alerts show fired_at."""
    group = ",".join(f"{v}" for v in r.alert.group.values()) or "-"
    return (
        f"{format_ts(r.resolved_at_ms):<24}  {r.alert.severity:<8}  {r.rule[:34]:<34}  {group[:24]:<24}  "
        f"{'-':>14}  resolved: the episode since {format_ts(r.start_ms)} is over"
    )


class Printer:
    """Alerts and resolutions to ``out`` (by default whatever ``sys.stdout`` is when this
    is made), as JSON lines or one table under one header."""

    def __init__(self, fmt: str, out: TextIO | None = None) -> None:
        self.fmt = fmt
        self.out = out if out is not None else sys.stdout
        self._header = False

    def _row(self, text: str) -> None:
        if not self._header:
            self.out.write(TABLE_HEADER + "\n")
            self._header = True
        self.out.write(text + "\n")

    def alert(self, alert: Alert) -> None:
        if self.fmt == "table":
            self._row(table_row(alert))
        else:
            self.out.write(alert.to_json().decode() + "\n")

    def resolution(self, r: Resolution) -> None:
        if self.fmt == "table":
            self._row(resolution_row(r))
        else:
            self.out.write(orjson.dumps(r.to_dict()).decode() + "\n")


def stdout_emitter(fmt: str, out: TextIO | None = None) -> Callable[[Alert], None]:
    """Alerts to ``out``, by default whatever ``sys.stdout`` is when this is called."""
    return Printer(fmt, out).alert
