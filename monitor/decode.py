"""Bytes to (event, event time), or the reason they cannot be one.

Bad input is the attacker's and the producer's bug alike; it must never stop the
monitor. Each message is either decoded or named with a reason from :data:`REASONS`,
which the caller counts, logs and, in the daemon, dead-letters.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from monitor import defaults
from monitor.event import PROVENANCE, Event, getter
from monitor.timeparse import EVENT_TIME_MAX_MS, EVENT_TIME_MIN_MS, parse_str, parse_ts

_NEVER = -(2**62)
REASONS = (
    "invalid_json", "not_an_object", "missing_time", "bad_time", "future_time", "time_out_of_range", "empty",
)


class Decoder:
    """Decodes batches; remembers the newest accepted event time for the future-skew check.

    ``reference_ms``, when given, is what the skew is measured from (the daemon passes the
    wall clock). Without it (replay), the reference is the newest accepted event time,
    and a recording legitimately jumps ahead after a quiet gap. So there an event too far
    ahead is held, not judged: if the next usable event agrees with it (lies within the
    skew of it), the jump is real and both are accepted; otherwise the held event is
    rejected as ``future_time``. One event from the far future never moves the clock.
    """

    def __init__(
        self, *, time_field: str = defaults.TIME_FIELD, max_future_skew_ms: int = defaults.MAX_FUTURE_SKEW_MS
    ) -> None:
        self.time_field = time_field
        self._time = getter(time_field)
        self.max_future_skew_ms = max_future_skew_ms
        self.newest: int | None = None
        # (event, time, raw) of a far-ahead event awaiting the next event's agreement
        self._held: tuple[Event, int, bytes | str] | None = None
        # raws of events held in an earlier call and rejected in this one (index -1 in `bad`)
        self.rejected_held: list[bytes | str] = []

    def decode(
        self, raws: Sequence[bytes | str], *, reference_ms: int | None = None,
        provenance: Sequence[str] | None = None,
    ) -> tuple[list[tuple[Event, int]], list[tuple[int, str]]]:
        """Return the good events and (position in ``raws``, reason) for the rest.

        A position of -1 names an event held from an earlier call; its raw bytes are in
        ``rejected_held``. ``provenance[i]``, when given, is set on the event of ``raws[i]``
        as :data:`~monitor.event.PROVENANCE` (overwriting what the input said there).
        """
        good: list[tuple[Event, int]] = []
        bad: list[tuple[int, str]] = []
        self.rejected_held = []
        loads = orjson.loads
        get_time = self._time
        top_field = None if "." in self.time_field else self.time_field
        skew = self.max_future_skew_ms
        earliest, until = EVENT_TIME_MIN_MS, EVENT_TIME_MAX_MS  # locals: read per event
        newest = self.newest if self.newest is not None else _NEVER
        limit = reference_ms if reference_ms is not None else self.newest
        limit = None if limit is None or skew <= 0 else limit + skew
        track = reference_ms is None and skew > 0  # the limit follows the newest event
        holding = self._held is not None
        held_index = -1  # position of self._held in raws, -1 when it came from an earlier call
        i = -1
        for raw in raws:
            i += 1
            try:
                e = loads(raw)
            except orjson.JSONDecodeError:
                if raw.strip():  # blank lines are nothing, not bad input
                    bad.append((i, "invalid_json"))
                continue
            if e.__class__ is not dict:
                bad.append((i, "not_an_object"))
                continue
            if provenance is not None:
                e[PROVENANCE] = provenance[i]
            t = e.get(top_field) if top_field is not None else get_time(e)
            if t is None:
                bad.append((i, "missing_time"))
                continue
            ts = parse_str(t) if t.__class__ is str else parse_ts(t)
            if ts is None:
                bad.append((i, "bad_time"))
                continue
            if not earliest <= ts < until:
                bad.append((i, "time_out_of_range"))
                continue
            if limit is not None and ts > limit:
                if reference_ms is not None:
                    bad.append((i, "future_time"))
                    continue
                held = self._held
                if held is None or abs(ts - held[1]) > skew:
                    if held is not None:
                        self._reject_held(bad, held_index)
                    self._held, held_index, holding = (e, ts, raw), i, True
                    continue
                good.append((held[0], held[1]))  # a second opinion: the jump is real
                self._held, holding = None, False
                if held[1] > newest:
                    newest = held[1]
                    limit = newest + skew  # else a later event is judged by the old limit
            elif holding:
                self._reject_held(bad, held_index)
                holding = False
            if ts > newest:
                newest = ts
                if track:
                    limit = ts + skew
            good.append((e, ts))
        if newest != _NEVER:
            self.newest = newest
        return good, bad

    def _reject_held(self, bad: list[tuple[int, str]], index: int) -> None:
        assert self._held is not None
        if index < 0:
            self.rejected_held.append(self._held[2])
        bad.append((index, "future_time"))
        self._held = None

    def finish(self) -> list[bytes | str]:
        """At the end of a stream: the raw event still held, which nothing confirmed."""
        held, self._held = self._held, None
        return [] if held is None else [held[2]]


def sample(raw: bytes | str, limit: int = 200) -> str:
    """A printable, truncated copy of bad input for a log line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"

