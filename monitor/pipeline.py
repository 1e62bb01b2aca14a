"""Decode → engine → alerts, with the telemetry of each step: the one pipeline.

``run`` (the daemon), ``replay``, ``test`` and ``demo`` all push their batches through
a :class:`Pipeline`, so an event is decoded, judged, counted and logged the same way
whichever command reads it; only where the bytes come from (Kafka, files, a test case)
and where the alerts go differ. A batch from an input format (``replay
--input-format``) goes through :meth:`Pipeline.feed` too, its unreadable records
counted as invalid input like undecodable JSON. :meth:`Pipeline.decode` is also where
every event, whatever path it came by, gets its ``actor.type`` from the rule set's
``actors:`` table (:mod:`monitor.inputs.actors`), before any rule sees it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.decode import Decoder, sample
from monitor.engine import Alert, Engine
from monitor.engine.partitioned import Partitioned
from monitor.event import Event
from monitor.inputs.reader import MappedBatch
from monitor.sources.files import Batch
from monitor.telemetry import Telemetry

Decoded = tuple[list[tuple[Event, int]], list[tuple[int, str]]]


@dataclass
class Counts:
    """What went through: read, used, invalid by reason, skipped by reason, alerts by rule."""

    events: int = 0
    valid: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # not data access (input formats)


class Pipeline:
    """One decoder and one engine, and the counts and telemetry around them.

    ``emit``, when given, receives each alert as it fires (replay prints them); the
    alerts are also returned from :meth:`evaluate` for callers that deliver them
    themselves (the daemon). ``counts`` may be a richer subclass the caller reports from.
    """

    def __init__(self, decoder: Decoder, engine: Engine | Partitioned, telemetry: Telemetry, *,
                 emit: Callable[[Alert], None] | None = None, counts: Counts | None = None) -> None:  # fmt: skip
        self.decoder = decoder
        self.engine = engine
        self.telemetry = telemetry
        self.emit = emit
        self.counts = counts if counts is not None else Counts()

    def reject(self, reason: str, raw: bytes | str, where: str) -> None:
        """Input found unusable before the decoder (an empty message, an unreadable record)."""
        self.counts.events += 1
        self.counts.invalid[reason] += 1
        self.telemetry.events_received(1)
        self.telemetry.invalid_event(reason, sample(raw), where)

    def decode(self, raws: Sequence[bytes | str], where: Callable[[int], str], *,
               reference_ms: int | None = None, provenance: Sequence[str] | None = None) -> Decoded:  # fmt: skip
        """Decode one batch; each bad event is counted and logged at ``where(position)``.

        A position of -1 is an event held from the previous batch (see the decoder).
        ``provenance`` (the daemon's) names where each raw was read, for alerts' samples.
        """
        good, bad = self.decoder.decode(raws, reference_ms=reference_ms, provenance=provenance)
        actors = self.engine.ruleset.actors  # read per batch: a reloaded rule set brings its own
        if actors:
            fill = actors.fill
            for e, _ in good:
                fill(e)
        c = self.counts
        n = len(good) + len(bad)
        c.events += n
        c.valid += len(good)
        self.telemetry.events_received(n)
        for i, reason in bad:
            c.invalid[reason] += 1
            raw = self.decoder.rejected_held[0] if i < 0 else raws[i]
            self.telemetry.invalid_event(reason, sample(raw), where(i))
        return good, bad

    def evaluate(self, good: list[tuple[Event, int]]) -> list[Alert]:
        """One engine over decoded events (replay, rule tests)."""
        t0 = time.perf_counter()
        engine = self.engine
        assert isinstance(engine, Engine)
        return self._done(engine.process(good), t0, None, None)

    def evaluate_streams(self, streams: Mapping[Hashable, list[tuple[Event, int]]], offsets: Mapping[Hashable, int], *,
                         started: float, newest_ms: int | None, now_ms: int | None) -> list[Alert]:  # fmt: skip
        """The daemon's: each partition's events through its own engine (``offsets``: where
        each partition's reading goes on after the batch)."""
        engine = self.engine
        assert isinstance(engine, Partitioned)
        return self._done(engine.process(streams, offsets), started, newest_ms, now_ms)

    def _done(self, alerts: list[Alert], t0: float, newest_ms: int | None, now_ms: int | None) -> list[Alert]:
        if alerts:
            counted = self.counts.alerts
            emit = self.emit
            for alert in alerts:
                counted[alert.rule] += 1
                if emit is not None:
                    emit(alert)
        self.telemetry.batch_done(self.engine, time.perf_counter() - t0, newest_ms, now_ms)
        return alerts

    def feed(self, batch: Batch) -> list[Alert]:
        """A batch of lines from a file (or mapped from an input format) all the way through."""
        if isinstance(batch, MappedBatch):
            self._mapped(batch)
        good, _ = self.decode(batch.lines, lambda i: where_in(batch, i))
        return self.evaluate(good)

    def finish(self) -> None:
        """At the end of a stream: a last event far ahead that nothing after it confirmed."""
        for raw in self.decoder.finish():
            # Counted as read and invalid, but (as before) not as received in the metrics.
            self.counts.events += 1
            self.counts.invalid["future_time"] += 1
            self.telemetry.invalid_event("future_time", sample(raw), "end of input")

    def skipped(self, reasons: Counter[str]) -> None:
        """Records an input format read and skipped as not data access (not bad input)."""
        if reasons:
            self.counts.skipped.update(reasons)
            self.telemetry.events_skipped(reasons)

    def _mapped(self, batch: MappedBatch) -> None:
        """Records the input format could not read are invalid input like undecodable JSON."""
        c = self.counts
        self.skipped(batch.skipped)
        c.events += len(batch.invalid)
        self.telemetry.events_received(len(batch.invalid))
        for line, reason, raw in batch.invalid:
            c.invalid[reason] += 1
            self.telemetry.invalid_event(reason, sample(raw), f"{batch.name}:{line}")


def where_in(batch: Batch, i: int) -> str:
    """Where line ``i`` of a file batch is, for messages: ``FILE:LINE``."""
    if i < 0:  # held from the previous batch, rejected now
        return f"{batch.name}:before line {batch.first_line}"
    return f"{batch.name}:{batch.line_number(i)}"
