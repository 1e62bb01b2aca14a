"""One engine per input partition: the daemon's state, split the way Kafka splits the stream.

A partition's events are one ordered stream, so each partition gets an :class:`Engine` of
its own, with its own forgetting clock (the newest event time *of that partition*): a
partition that lags behind the others keeps its groups, and never has them forgotten by
another partition's clock. Each engine is then exactly what ``replay`` of that partition's
events would build, which is what makes a checkpoint of it (:mod:`monitor.engine.snapshot`)
restorable on whichever instance the group hands the partition to next.

Groups are only whole within a partition: producers key events by one field
(``kafka.key_field``), so rules grouped by that field see every event of a group in one
engine. ``max_groups_per_rule`` bounds each partition's engine.

Rules whose groups span partitions are evaluated after repartitioning
(:mod:`monitor.engine.repartition`): with a :class:`~monitor.engine.repartition.Router`,
each stream's engine runs its view of the rule set, a source partition's the rules it
counts alone, an internal topic partition's the repartitioned ones.

A stream is whatever the source names one (a Kafka ``TopicPartition``, a file source's
name); nothing here knows which. :attr:`Slot.offset` is the first record the slot's state
has not seen, the position its checkpoint is written with; :attr:`Slot.position` is
whatever else the checkpoint must carry for that stream (an internal partition's
high-water marks of the source offsets it has counted).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.engine.alert import Alert
from monitor.engine.engine import Engine, EngineOptions
from monitor.engine.episodes import Episode, Resolution, resolution_order
from monitor.engine.reload import Plan, plan
from monitor.engine.repartition import Router
from monitor.engine.windows import RuleState
from monitor.event import Event
from monitor.rules.loader import RuleSet


@dataclass(slots=True)
class Slot:
    engine: Engine
    offset: int | None = None  # the first record the state has not seen; None: nothing seen yet
    saved: tuple[int | None, int] | None = None  # (offset, episode revision) last checkpointed
    position: Any = None  # plain data checkpointed with the state (see the module's docstring)


class Partitioned:
    """The engines of the streams this instance owns, behind the calls the daemon makes."""

    def __init__(self, ruleset: RuleSet, options: EngineOptions | None = None, router: Router | None = None) -> None:
        self.ruleset = ruleset
        self.options = options or EngineOptions()
        self.router = router
        self.slots: dict[Hashable, Slot] = {}

    def view(self, stream: Hashable, ruleset: RuleSet | None = None) -> RuleSet:
        """The rules ``stream``'s engine runs: all of them, unless a router splits them."""
        rs = ruleset or self.ruleset
        return rs if self.router is None else self.router.view(stream, rs)

    # -- ownership ---------------------------------------------------------------------

    def fresh(self, stream: Hashable) -> Engine:
        """An empty engine for the current rule set (a checkpoint is restored into it)."""
        return Engine(self.view(stream), self.options)

    def add(self, stream: Hashable, engine: Engine, offset: int | None) -> Slot:
        slot = self.slots[stream] = Slot(engine, offset)
        return slot

    def drop(self, streams: Iterable[Hashable]) -> None:
        """Forget streams given to another instance: their checkpoints carry them on."""
        for s in streams:
            self.slots.pop(s, None)

    def __contains__(self, stream: Hashable) -> bool:
        return stream in self.slots

    def __iter__(self) -> Iterator[tuple[Hashable, Slot]]:
        return iter(list(self.slots.items()))

    # -- evaluation --------------------------------------------------------------------

    def process(self, streams: Mapping[Hashable, list[tuple[Event, int]]], offsets: Mapping[Hashable, int]) -> list[Alert]:
        """Each stream's events through its own engine, the forgetting clock being that
        stream's newest event time (as in ``replay``); ``offsets``: the first record after
        the batch, per stream. A stream nobody added gets an empty engine: a source
        without checkpoints to restore (or the first run) starts that way anyway."""
        alerts: list[Alert] = []
        for stream, events in streams.items():
            alerts.extend(self.slot(stream).engine.process(events))
        for stream, offset in offsets.items():
            self.slot(stream).offset = offset
        return alerts

    def slot(self, stream: Hashable) -> Slot:
        return self.slots.get(stream) or self.add(stream, self.fresh(stream), None)

    def resolutions(self) -> list[Resolution]:
        return _by_time(r for _, s in self for r in s.engine.resolutions())

    def resolve_idle(self, wall_ms: int) -> list[Resolution]:
        return _by_time(r for _, s in self for r in s.engine.resolve_idle(wall_ms))

    def open_episodes(self) -> list[Episode]:
        return [ep for _, s in self for ep in s.engine.open_episodes()]

    def reload(self, ruleset: RuleSet) -> Plan:
        """Every engine swaps to ``ruleset`` (same plan for all: it depends on the rule
        sets only); engines made later start with it."""
        decided = plan(self.ruleset, ruleset)
        for stream, slot in self:
            slot.engine.reload(self.view(stream, ruleset))
        self.ruleset = ruleset
        return decided

    # -- introspection for telemetry ---------------------------------------------------

    @property
    def states(self) -> list[RuleState]:
        return [st for _, s in self for st in s.engine.states]

    def episode_count(self) -> int:
        return sum(len(s.engine.episodes) for _, s in self)


def _by_time(resolutions: Iterable[Resolution]) -> list[Resolution]:
    return sorted(resolutions, key=resolution_order)
