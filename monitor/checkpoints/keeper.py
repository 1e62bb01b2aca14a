"""Partitions' state in and out of the checkpoint store: the daemon's side of checkpoints.

Saving, in the order that makes a crash at any point safe: the caller has fsynced the
outputs' spools (what the state's events raised is durable), then each partition's engine
is snapshotted *synchronously* with the offset it reflects (no batch, reload or idle
resolution can run in between), the checkpoints are written, and only when the store has
them does the caller commit offsets. A failed write commits nothing: the previous
checkpoint and the previous committed offset still agree.

Restoring, when partitions are assigned (or a file source starts): a partition this
instance still holds in memory (handed straight back by an eager rebalance) keeps its
engine and is read on from the offset that engine reflects; any other gets a fresh engine
with its checkpoint restored, and is read on from the checkpoint's offset. The checkpoint,
not the committed offset, is the source of truth: the two differ only after a crash
between the write and the commit, and then the checkpoint is the later one.

A store that cannot be read (the broker away in the middle of a rebalance) is retried
with backoff, the partitions waiting, for as long as it takes: no partition is read
before its checkpoint can be, and a store that does not answer is not a corrupt one.
A checkpoint that cannot be read falls back to the one before it (said, counted, and
``/readyz`` degraded until that partition's next checkpoint: its events are read again). With none readable, ``on_corrupt: stop``
(the default) stops the daemon with exit code 1, because starting empty silently forgets
windows and suppressions an incident may be in the middle of; ``start_empty`` starts that
partition empty, loudly.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any

from monitor.checkpoints.base import Checkpoint, CheckpointError, Loaded, Store
from monitor.engine import snapshot
from monitor.engine.partitioned import Partitioned
from monitor.health import DEGRADED, NOT_READY, Health
from monitor.retry import Backoff, wait_or_stop
from monitor.telemetry import Telemetry

STORE_CONDITION = "checkpoint store"  # /readyz while the store cannot be read
FAILING_CONDITION = "checkpoints failing"  # /readyz while writes fail


@dataclass(frozen=True, slots=True)
class Restored:
    """Where a partition is read on from: ``offset`` (None: the committed offset) and the
    position the checkpoint was written with (a file source's follow positions, an internal
    partition's marks: also kept in its slot)."""

    offset: int | None
    position: Any = None
    found: bool = True  # False: the store has no checkpoint for it (not even a corrupt one)


class Keeper:
    def __init__(self, store: Store, engines: Partitioned, telemetry: Telemetry, health: Health, *,
                 key: Callable[[Hashable], str], on_corrupt: str = "stop",
                 wall_clock: Callable[[], float] = time.time, stopping: asyncio.Event | None = None,
                 backoff: Backoff | None = None) -> None:  # fmt: skip
        self.store = store
        self.engines = engines
        self.telemetry = telemetry
        self.health = health
        self.key = key  # a partition's checkpoint key
        self.on_corrupt = on_corrupt
        self.wall_clock = wall_clock
        self.stopping = stopping  # ends the retries of an unreadable store
        self.backoff = backoff or Backoff()
        self.fatal: str | None = None  # a checkpoint none of which is readable, with on_corrupt: stop
        self._started = False
        self._saving = asyncio.Lock()

    async def start(self) -> bool:
        """Start the store (a Kafka store makes its topic), retried with backoff while it
        fails: no partition may be read before its checkpoint can be. False if the daemon
        stops first."""
        if self._started:
            raise RuntimeError("the checkpoint keeper was started already")
        while True:
            try:
                await self.store.start()
            except Exception as exc:  # Kafka's, the OS's, CheckpointError: all "not yet"
                await self.store.stop()  # idempotent: what the failed start opened
                if not await self._unavailable(exc):
                    return False
                continue
            self._available()
            self._started = True
            return True

    async def stop(self) -> None:
        self._started = False
        await self.store.stop()  # every store's stop is idempotent

    # -- restore -----------------------------------------------------------------------

    async def restore(self, partitions: Collection[Hashable]) -> dict[Hashable, Restored]:
        """Engines for ``partitions`` (kept or restored) and where to read each on from;
        engines of partitions not among them are dropped (another instance has them now).
        A partition whose checkpoint is corrupt under ``on_corrupt: stop`` is left out:
        :attr:`fatal` says why, and the caller stops without reading it."""
        engines = self.engines
        gone = [p for p, _ in engines if p not in partitions]
        for p in gone:  # what another instance holds now is its to report on
            self.health.clear(f"checkpoint {self.key(p)}")
        engines.drop(gone)
        out = {p: Restored(slot.offset) for p, slot in engines if p in partitions}
        wanted = [p for p in partitions if p not in engines]
        if not wanted:
            return out
        keys = {self.key(p): p for p in wanted}
        found = await self._load(list(keys))
        if found is None:  # stopping before the store answered: nothing is read
            return out
        for key, p in keys.items():
            restored = self._restore(key, p, found[key])
            if restored is not None:
                out[p] = restored
        return out

    async def _load(self, keys: list[str]) -> dict[str, Loaded] | None:
        """The store's answer for ``keys``, retried while the store cannot be read; None if
        the daemon stops first."""
        while True:
            try:
                found = await self.store.load(keys)
            except Exception as exc:  # CheckpointError, Kafka's and the OS's: all "not now"
                if not await self._unavailable(exc):
                    return None
                continue
            self._available()
            return found

    async def _unavailable(self, exc: BaseException) -> bool:
        """Say that the store failed, wait the backoff; False if the daemon stops meanwhile."""
        said = str(exc) if isinstance(exc, CheckpointError) else repr(exc)
        self.telemetry.checkpoint_store_unavailable(self.store.name, said)
        self.health.set(STORE_CONDITION, NOT_READY, f"checkpoint store ({self.store.name}): {said}")
        return not await wait_or_stop(self.stopping, self.backoff.next())

    def _available(self) -> None:
        self.backoff.reset()
        self.health.clear(STORE_CONDITION)

    def _restore(self, key: str, p: Hashable, loaded: Loaded) -> Restored | None:
        engines = self.engines
        cp, engine = loaded.checkpoint, engines.fresh(p)
        error = loaded.error
        misfits: list[str] = []
        if cp is not None:
            try:
                misfits = snapshot.restore(engine, cp.state)
            except Exception as exc:  # whole (checksummed) yet not restorable: corrupt all the same
                error, engine = f"checkpoint {key}: the state cannot be restored: {exc!r}", engines.fresh(p)
        if error is not None:
            if self._corrupt(key, error):
                return None
            engines.add(p, engine, None)
            return Restored(None)
        if cp is None:
            engines.add(p, engine, None)
            self.telemetry.checkpoint_restored(key, "none")
            return Restored(None, found=False)
        slot = engines.add(p, engine, cp.offset)
        slot.saved = (cp.offset, engine.episodes.revision)
        slot.position = cp.position
        if loaded.fell_back:
            self.health.set(f"checkpoint {key}", DEGRADED,
                            f"{loaded.fell_back}: restored the previous checkpoint (its events are read again; "
                            "alerts already sent are sent again with the same ids)")  # fmt: skip
        self.telemetry.checkpoint_restored(key, "fell_back" if loaded.fell_back else "restored", cp.offset,
                                           size=len(cp.state), error=loaded.fell_back, misfits=misfits)  # fmt: skip
        return Restored(cp.offset, cp.position)

    def _corrupt(self, key: str, error: str) -> bool:
        """No readable checkpoint for ``key``: True when the daemon must stop."""
        stop = self.on_corrupt == "stop"
        action = "stopping (checkpoint.on_corrupt: stop)" if stop else "starting it empty (on_corrupt: start_empty)"
        self.telemetry.checkpoint_restored(key, "corrupt", error=error, action=action)
        if stop:
            self.fatal = f"{error}; set checkpoint.on_corrupt: start_empty to start that partition empty"
            self.health.set(f"checkpoint {key}", NOT_READY, self.fatal)
        else:
            self.health.set(f"checkpoint {key}", DEGRADED,
                            f"{error}: started empty (checkpoint.on_corrupt: start_empty), so windows and "
                            "suppressions of that partition were forgotten")  # fmt: skip
        return stop

    # -- save --------------------------------------------------------------------------

    async def save(self, partitions: Collection[Hashable] | None = None, position: Any = None) -> bool:
        """Checkpoint ``partitions`` (default: all held) whose state changed since their
        last checkpoint; False if the store failed, or a partition's state was dropped (a
        batch that failed half-way): then nothing may be committed. One save at a time:
        a revoke's or a reload's may come while the loop's is being written."""
        async with self._saving:
            return await self._save(partitions, position)

    async def _save(self, partitions: Collection[Hashable] | None, position: Any) -> bool:
        if partitions is not None and (dropped := [p for p in partitions if p not in self.engines]):
            self.telemetry.checkpoint_failed(self.store.name, f"no state for {[self.key(p) for p in dropped]}: "
                                             "its batch failed, so its offset stays uncommitted")  # fmt: skip
            return False
        now = int(self.wall_clock() * 1000)
        t0 = time.perf_counter()
        batch: dict[str, Checkpoint] = {}
        marks = []
        for p, slot in self.engines:
            if partitions is not None and p not in partitions:
                continue
            mark = (slot.offset, slot.engine.episodes.revision)
            if (slot.saved == mark or slot.offset is None) and position is None:
                continue  # unchanged, or nothing read and nothing restored: nothing to keep
            # Synchronous from here to the dict: the state and its offset are one instant.
            # A stream's own position (an internal partition's marks) is copied with it.
            at = position if position is not None else _copy(slot.position)
            batch[self.key(p)] = Checkpoint(slot.offset or 0, snapshot.encode(slot.engine), now, at)
            marks.append((slot, mark))
        if not batch:
            return True
        try:
            size = await self.store.save(batch)
        except Exception as exc:  # a store's failures are many (Kafka, OS): none may commit
            self.telemetry.checkpoint_failed(self.store.name, repr(exc))
            self.health.set(FAILING_CONDITION, DEGRADED,
                            f"checkpoints failing ({self.store.name}: {exc!r}): offsets are not committed, and a "
                            "restart would read everything since the last checkpoint again")  # fmt: skip
            return False
        self.health.clear(FAILING_CONDITION)
        for slot, mark in marks:
            slot.saved = mark
        for key in batch:  # a fallback or an empty start is behind that partition now
            self.health.clear(f"checkpoint {key}")
        self.telemetry.checkpoint_saved(len(batch), size, time.perf_counter() - t0)
        return True


def _copy(position: Any) -> Any:
    """A slot's position as of now: the next batch changes the slot's own in place (an
    internal partition's marks are nested: source -> route -> mark)."""
    return copy.deepcopy(position)
