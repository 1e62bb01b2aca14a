"""The open episodes between two runs of the daemon: ``state.dir/episodes.snapshot``.

Re-sends and resolutions come from the engine's table of open episodes, not from the
spool; a daemon that forgot the table at a restart would leave every alert open in
Alertmanager to lapse when its lease ends, unresolved and no longer renewed. So the
daemon writes the table (:mod:`monitor.engine.codec`, atomically:
:func:`monitor.statedir.write_atomic`) whenever it changed, before each commit of
offsets or file positions (so what was committed has its episodes on disk), after an
idle resolution and at a stop, and hands it to the next engine at start.

A file that cannot be used (damaged, of an unknown version) is no reason to stop
detecting: the daemon starts without the episodes, says so (``state_unreadable`` in the
log, ``exfil_monitor_state_unreadable_total{file="episodes"}``, ``/readyz`` degraded until
a restart), and keeps the file beside as ``episodes.snapshot.unreadable``.

The file holds the opening alerts as the engine made them, before ``privacy:`` masking
(their group values are what finds the group again); it is written 0600, and state.dir
should be as private as the events.

For now the table is one file for the whole daemon; per-partition checkpoints will carry
the same episode items (:func:`monitor.engine.codec.episode_data`).
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.engine.codec import SnapshotError, decode_episodes, encode_episodes
from monitor.engine.episodes import Episode, Episodes
from monitor.health import DEGRADED, Health
from monitor.statedir import write_atomic
from monitor.telemetry import Telemetry

FILE = "episodes.snapshot"
_NAME = "episodes"  # the metrics' `file` label


class EpisodeStore:
    def __init__(self, state_dir: Path, telemetry: Telemetry, health: Health | None = None) -> None:
        self.path = Path(state_dir) / FILE
        self.telemetry = telemetry
        self.health = health
        self._saved: tuple[Episodes, int] | None = None  # the table and revision last written

    def load(self) -> list[Episode]:
        """The episodes the last run left open; none (said) when the file is unusable."""
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            return self._unreadable(f"cannot read: {exc.strerror or exc}")
        try:
            episodes = decode_episodes(blob)
        except SnapshotError as exc:
            return self._unreadable(str(exc))
        self.telemetry.episodes_restored(str(self.path), len(episodes))
        return episodes

    def _unreadable(self, error: str) -> list[Episode]:
        kept: Path | None = self.path.with_name(FILE + ".unreadable")
        try:
            os.replace(self.path, self.path.with_name(FILE + ".unreadable"))
        except OSError:
            kept = None
        self.telemetry.state_unreadable(_NAME, str(self.path), error, str(kept) if kept else None)
        if self.health is not None:
            where = f"kept as {kept}" if kept else f"left at {self.path}"
            self.health.set("episodes", DEGRADED,
                            f"the open episodes of the last run were unreadable ({error}), {where}: started "
                            "without them, so their alerts are not re-sent or resolved (receivers end them "
                            "when their lease runs out)")  # fmt: skip
        return []

    def save(self, table: Episodes) -> None:
        """Write ``table`` if it changed since the last write; a failure is said and the
        next call tries again."""
        if self._saved is not None and self._saved[0] is table and self._saved[1] == table.revision:
            return
        revision = table.revision
        try:
            write_atomic(self.path, encode_episodes(table.open()))
        except OSError as exc:
            error = exc.strerror or str(exc)
            self.telemetry.state_write_failed(_NAME, str(self.path), error)
            if self.health is not None:
                self.health.set("episodes-write", DEGRADED,
                                f"cannot write the open episodes to {self.path} ({error}): a restart "
                                "would start from the last table written")  # fmt: skip
            return
        self._saved = (table, revision)
        if self.health is not None:
            self.health.clear("episodes-write")
