"""Rule reloads in the running daemon: from the watched path, ``SIGHUP`` or ``POST /-/reload``.

A new set goes live whole or not at all: it is read, parsed, validated and compiled off
the event loop, and only then handed to the daemon, which swaps it into the engine between
batches (:meth:`monitor.engine.Engine.reload` decides which rules keep their state). A set
with problems changes nothing but the record of the attempt: every problem is logged as
``FILE:LINE:COL``, counted (``exfil_monitor_rule_reloads_total{outcome="rejected"}``),
shown on ``/rules`` and, while the files stay broken, on ``/readyz`` as degraded.

The path is polled (``rules.watch_interval``) rather than watched with inotify: polling
sees a Kubernetes ConfigMap's update, which swaps the ``..data`` symlink and leaves every
file's own name and often its mtime as it was, and it works on any file system. What is
compared is the set's digest over the files' names and bytes, never mtimes; a change is
acted on once the files have held still for one interval, so a folder half copied, or
an editor's write in several steps, is not loaded in between.

Every set that goes live is kept under ``state.dir`` (:mod:`monitor.rules.lastgood`); a
daemon started on a broken set runs the kept one instead of staying down, and says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.config import RulesConfig
from monitor.engine.reload import Plan, plan
from monitor.health import DEGRADED, Condition
from monitor.problems import Problem
from monitor.rules.errors import RuleLoadError
from monitor.rules.lastgood import LastGood, LastGoodUnusable
from monitor.rules.loader import RuleSet, load_texts, read_sources, sources_digest
from monitor.telemetry import Telemetry
from monitor.timeparse import format_ts

# Swaps a set in between batches and returns what it did; raises RuleLoadError if the
# daemon cannot use the set (the source's input format is not among its inputs:).
Apply = Callable[[RuleSet], Awaitable[Plan]]
Read = tuple[str, list[tuple[str, bytes]] | None, RuleLoadError | None]  # fingerprint, files, why none


@dataclass(frozen=True)
class Rejected:
    at_ms: int
    trigger: str  # start | watch | sighup | http
    digest: str | None  # of the files read; None when they could not be read
    problems: tuple[Problem, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"at": format_ts(self.at_ms), "trigger": self.trigger, "digest": self.digest,
                "problems": [p.format(codes=True) for p in self.problems]}  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    outcome: str  # success | rejected
    digest: str  # the live set's, after the attempt
    plan: Plan | None = None
    problems: tuple[Problem, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome, "digest": self.digest}
        if self.plan is not None:
            out.update(self.plan.audit())
        if self.problems:
            out["problems"] = [p.format(codes=True) for p in self.problems]
        return out


class Settle:
    """The watcher's debounce: a fingerprint is acted on when two polls in a row saw it
    and it is not the one last attempted (whatever triggered that attempt)."""

    def __init__(self, attempted: str) -> None:
        self.seen = self.last = attempted

    def poll(self, fingerprint: str) -> bool:
        if fingerprint != self.seen:
            self.seen = fingerprint
            return False
        return fingerprint != self.last

    def attempted(self, fingerprint: str) -> None:
        self.seen = self.last = fingerprint


def read(path: Path) -> Read:
    """The files under ``path`` and their fingerprint: the digest the set would have, or,
    when they cannot be read, the reason (so a lasting failure is attempted once)."""
    try:
        sources = read_sources(path)
    except RuleLoadError as exc:
        return "unreadable:" + "\n".join(map(str, exc.problems)), None, exc
    return sources_digest(sources), sources, None


class Reloader:
    def __init__(self, config: RulesConfig, state_dir: Path, telemetry: Telemetry, *,
                 wall_clock: Callable[[], float]) -> None:  # fmt: skip
        self.config = config
        self.telemetry = telemetry
        self.wall_clock = wall_clock
        self.store = LastGood(state_dir)
        self.live: RuleSet | None = None
        self.loaded_at_ms: int | None = None
        self.from_last_good = False  # the live set is the kept one: rules.path was broken at start
        self.rejected: Rejected | None = None  # the last rejected attempt
        self.broken = False  # the last attempt was rejected: the files differ from what runs
        self.settle = Settle("")
        self._lock = asyncio.Lock()

    def _now(self) -> int:
        return int(self.wall_clock() * 1000)

    # ---------------------------------------------------------- at start

    def start(self) -> RuleSet | None:
        """The set at ``rules.path``; if it is broken, the last good one, loudly; None if
        there is none (the daemon refuses to start)."""
        fingerprint, sources, error = read(self.config.path)
        self.settle = Settle(fingerprint)
        try:
            if error is not None:
                raise error
            assert sources is not None
            rs = load_texts(sources)
        except RuleLoadError as exc:
            self._reject("start", None if sources is None else fingerprint, exc.problems)
            return self._last_good()
        self.telemetry.rules_loaded(len(rs.enabled), rs.digest, rs.files, [str(w) for w in rs.warnings])
        self._live(rs)
        self._keep(rs)
        return rs

    def _last_good(self) -> RuleSet | None:
        try:
            kept = self.store.load()
        except LastGoodUnusable as exc:
            self.telemetry.rules_last_good_unusable(str(exc))
            return None
        if kept is None:
            return None
        rs = kept.ruleset
        self.live, self.loaded_at_ms, self.from_last_good = rs, self._now(), True
        self.telemetry.rules_last_good(len(rs.enabled), rs.digest, kept.path, format_ts(kept.loaded_at_ms),
                                       str(self.store.path))  # fmt: skip
        return rs

    # ---------------------------------------------------------- while running

    async def reload(self, trigger: str, apply: Apply, files: Read | None = None) -> Outcome:
        """One attempt, whole: read (unless the watcher did), load, apply. Attempts run
        one at a time, whatever asked for them."""
        async with self._lock:
            assert self.live is not None
            fingerprint, sources, error = files if files is not None else await asyncio.to_thread(read, self.config.path)
            self.settle.attempted(fingerprint)
            try:
                if error is not None:
                    raise error
                assert sources is not None
                rs = await asyncio.to_thread(load_texts, sources)
                previous = self.live
                changes = plan(previous, rs) if rs.digest == previous.digest else await apply(rs)
            except RuleLoadError as exc:
                self._reject(trigger, None if sources is None else fingerprint, exc.problems)
                return Outcome("rejected", self.live.digest, problems=tuple(exc.problems))
            self.telemetry.rules_reloaded(trigger, len(rs.enabled), rs.digest, previous.digest, changes.audit(),
                                          [str(w) for w in rs.warnings])  # fmt: skip
            if rs.digest != previous.digest or self.from_last_good:
                self._live(rs)
                await asyncio.to_thread(self._keep, rs)
            else:  # the same files again (a SIGHUP, or an edit undone): nothing to swap or keep
                self.broken = False
            return Outcome("success", rs.digest, changes)

    async def watch(self, apply: Apply, stopping: asyncio.Event) -> None:
        """Poll ``rules.path`` until ``stopping``; reload what changed and held still."""
        interval = self.config.watch_interval / 1000
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), interval)
                return
            except TimeoutError:
                pass
            files = await asyncio.to_thread(read, self.config.path)
            if self.settle.poll(files[0]) and not self._lock.locked():
                await self.reload("watch", apply, files)

    def _live(self, rs: RuleSet) -> None:
        self.live, self.loaded_at_ms = rs, self._now()
        self.from_last_good = self.broken = False

    def _keep(self, rs: RuleSet) -> None:
        try:
            self.store.save(rs, loaded_at_ms=self.loaded_at_ms or self._now(), origin=str(self.config.path))
        except OSError as exc:  # only the fallback is lost
            self.telemetry.rules_unkept(str(self.store.path), str(exc))

    def _reject(self, trigger: str, digest: str | None, problems: list[Problem]) -> None:
        self.rejected = Rejected(self._now(), trigger, digest, tuple(problems))
        self.broken = True
        self.telemetry.rules_rejected([str(p) for p in problems], trigger=trigger)

    # ---------------------------------------------------------- status

    def status(self) -> dict[str, Any]:
        """What ``/rules`` adds to the live set's description."""
        return {
            "loaded_at": format_ts(self.loaded_at_ms) if self.loaded_at_ms is not None else None,
            "origin": "last good (state.dir)" if self.from_last_good else "rules.path",
            "last_rejected": self.rejected.to_dict() if self.rejected is not None else None,
        }

    def condition(self) -> Condition | None:
        """Degraded while the set in force is not the one at ``rules.path``."""
        live, rejected = self.live, self.rejected
        if live is None or not self.broken or rejected is None:
            return None
        n = len(rejected.problems)
        broken = f"the rules at {self.config.path} were rejected ({n} problem{'s' * (n != 1)}, see /rules)"
        if self.from_last_good:
            return Condition(DEGRADED, f"running the last good rule set sha256:{live.digest[:12]} kept in "
                                       f"{self.store.path}: {broken}")  # fmt: skip
        return Condition(DEGRADED, f"{broken}; sha256:{live.digest[:12]}, loaded "
                                   f"{format_ts(self.loaded_at_ms or 0)}, stays in force")  # fmt: skip
