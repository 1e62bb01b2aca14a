"""Episodes: when an alert's incident is over, decided in event time.

An alert opens an **episode** for its (rule, group). Every later evaluation of the group
whose threshold holds (an alert, or a hold that suppression kept quiet) at time ``t``
extends it while ``t <= last_hold + resolve_after``; the episode resolves at
``resolved_at = last_hold + resolve_after``. That is a fact about event time, so replay
and the daemon (which share this table through the engine) decide the same episodes.

When the decision is final is a matter of the clock: late events may still hold, up to
``allowed_lateness`` behind, so an episode is final once the engine's clock has passed
``resolved_at + allowed_lateness``, or as soon as the group holds beyond its reach (then
the episode is over: nothing earlier can join a later hold's episode instead). A final
episode never reopens: a hold arriving after that (a slow partition's) only counts if it
fires, and then opens a new episode.

:meth:`Episodes.resolve_idle` is the daemon's way out when its source is idle: no event
will move the clock, so episodes whose ``resolved_at`` the wall clock has passed are made
final with the same ``resolved_at``; wall time changes when a resolution is sent, never
its content.

This table is apart from the window state on purpose: evicting a group (the group cap)
forgets its buckets and fires, never its episode, so a returning group's re-alert joins
the incident that is still open. For the same reason it outlives the process: it is part
of each partition's checkpoint (:mod:`monitor.engine.snapshot`), written again whenever
:attr:`Episodes.revision` moved.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from monitor.engine.alert import Alert
from monitor.timeparse import format_ts

_NONE_DUE = 2**62


@dataclass(slots=True)
class Episode:
    """One open incident of one rule and group; its opening alert names it."""

    rule: str
    key: Hashable  # the group, as the rule's state keys it
    start_ms: int  # fired_at of the opening alert
    last_hold_ms: int
    resolve_after_ms: int
    alert: Alert  # the alert that opened it

    @property
    def resolved_at_ms(self) -> int:
        return self.last_hold_ms + self.resolve_after_ms

    def record(self) -> dict[str, Any]:
        """The opening alert's record: what a re-send of the open episode carries."""
        return self.alert.to_dict()


@dataclass(frozen=True)
class Resolution:
    """The end of an episode, as every output sends it."""

    rule: str
    key: Hashable
    start_ms: int
    last_hold_ms: int
    resolved_at_ms: int
    alert: Alert  # the alert that opened the episode

    def to_dict(self, detected_at_ms: int | None = None) -> dict[str, Any]:
        """The opening alert's record with ``type: "resolved"`` and ``resolved_at`` (after
        ``episode_start``): the same id, rule, severity, labels and group, so every
        output derives the same identity for the incident as for its alert."""
        out: dict[str, Any] = {}
        for k, v in self.alert.to_dict().items():
            out[k] = "resolved" if k == "type" else v
            if k == "episode_start":
                out["resolved_at"] = format_ts(self.resolved_at_ms)
        if detected_at_ms is not None:
            out["detected_at"] = format_ts(detected_at_ms)
        return out


def resolution_order(r: Resolution) -> tuple[int, str, int, str]:
    return (r.resolved_at_ms, r.rule, r.start_ms, r.alert.id)


class Episodes:
    """The open episodes of every rule, and the resolutions final since the last take."""

    def __init__(self, allowed_lateness_ms: int) -> None:
        self.lateness = allowed_lateness_ms
        self._open: dict[tuple[str, Hashable], Episode] = {}  # a snapshot restores into it
        self._final: list[Resolution] = []
        self._due = _NONE_DUE  # no open episode resolves before this (a lower bound)
        # Moves whenever what :meth:`open` returns changes (an episode opened, extended or
        # ended), so the daemon writes the table only when there is something new.
        self.revision = 0

    def __len__(self) -> int:
        return len(self._open)

    def hold(self, rule: str, key: Hashable, t: int, now: int) -> None:
        """The group held at ``t`` but did not fire (suppressed): it extends an open
        episode in reach, and opens none."""
        ep = self._current(rule, key, t, now)
        if ep is not None and t > ep.last_hold_ms:
            ep.last_hold_ms = t
            self.revision += 1

    def fire(self, rule: str, key: Hashable, t: int, now: int, resolve_after_ms: int,
             build: Callable[[int], Alert]) -> Alert:  # fmt: skip
        """An alert at ``t``: ``build(episode start)`` makes it; it joins the open episode
        in reach (a re-alert of the same incident) or opens a new one."""
        ep = self._current(rule, key, t, now)
        if ep is not None:
            if t > ep.last_hold_ms:
                ep.last_hold_ms = t
                self.revision += 1
            return build(ep.start_ms)
        alert = build(t)
        self._open[(rule, key)] = Episode(rule, key, t, t, resolve_after_ms, alert)
        self._due = min(self._due, t + resolve_after_ms)
        self.revision += 1
        return alert

    def _current(self, rule: str, key: Hashable, t: int, now: int) -> Episode | None:
        """The episode a hold at ``t`` joins, after ending the group's episode if it is
        final at ``now`` or ``t`` is beyond its reach."""
        ep = self._open.get((rule, key))
        if ep is None:
            return None
        r = ep.resolved_at_ms
        if now - self.lateness > r or t > r:
            self._end(ep)
            return None
        return ep

    def _end(self, ep: Episode) -> None:
        del self._open[(ep.rule, ep.key)]
        self.revision += 1
        self._final.append(Resolution(ep.rule, ep.key, ep.start_ms, ep.last_hold_ms, ep.resolved_at_ms, ep.alert))

    def advance(self, clock: int) -> None:
        """The engine's clock reached ``clock``: end the episodes final by it."""
        if clock - self.lateness <= self._due:
            return
        self._end_where(lambda ep: clock - self.lateness > ep.resolved_at_ms)

    def _end_where(self, over: Callable[[Episode], bool]) -> None:
        due = _NONE_DUE
        for ep in list(self._open.values()):
            if over(ep):
                self._end(ep)
            else:
                due = min(due, ep.resolved_at_ms)
        self._due = due

    def end_rules(self, rules: set[str], clock: int | None) -> int:
        """End every open episode of ``rules`` now (a reload removed them or restarts
        their state): resolved at ``clock``, the engine's clock, or at its own
        ``resolved_at`` if that is earlier, never before its last hold. Returns how many."""
        ended = [ep for ep in self._open.values() if ep.rule in rules]
        for ep in ended:
            at = ep.resolved_at_ms if clock is None else max(ep.last_hold_ms, min(ep.resolved_at_ms, clock))
            del self._open[(ep.rule, ep.key)]
            self._final.append(Resolution(ep.rule, ep.key, ep.start_ms, ep.last_hold_ms, at, ep.alert))
        return len(ended)

    def take(self) -> list[Resolution]:
        """The resolutions final since the last take, by resolved_at (then rule, start)."""
        out, self._final = self._final, []
        out.sort(key=resolution_order)
        return out

    def resolve_idle(self, wall_ms: int) -> list[Resolution]:
        """End the episodes whose ``resolved_at`` is at or before ``wall_ms``, with that
        ``resolved_at``; returns them with any final ones not yet taken."""
        self._end_where(lambda ep: ep.resolved_at_ms <= wall_ms)
        return self.take()

    def resolve_all(self) -> list[Resolution]:
        """End every open episode at its ``resolved_at``: the input is over (replay)."""
        self._end_where(lambda ep: True)
        return self.take()

    def open(self) -> list[Episode]:
        """The open episodes, oldest first (the delivery re-sends them)."""
        return sorted(self._open.values(), key=lambda ep: (ep.start_ms, ep.rule, ep.alert.id))
