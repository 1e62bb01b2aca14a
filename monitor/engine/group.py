"""A group's window state: the buckets and running aggregates of one group of one rule.

Plain data with slots, because a shop has many groups (one per shopper for some rules)
and each costs its allocations on the hot path.
"""

from __future__ import annotations

from typing import Any

from monitor.engine.hll import HLL

VALUE, COUNT, NEWEST = 0, 1, 2


class Group:
    __slots__ = ("buckets", "count", "cur", "fires", "newest", "refs", "samples", "seeded", "sketch", "stored", "total")

    def __init__(self, ts: int, cur: int, total: Any, refs: dict[Any, int] | None) -> None:
        self.newest = ts
        self.cur = cur  # bucket of the newest event
        self.buckets: dict[int, list[Any]] = {}
        self.total: Any = total  # aggregate over the window ending at ``cur``
        self.count = 0  # events in that window
        self.fires: list[int] | tuple[()] = ()  # most groups never fire: no list for them
        self.samples: list[Any] = []  # flat: time, id, provenance, ... of the last 5 events with either
        self.refs = refs  # distinct, counted exactly: value -> buckets holding it
        self.sketch: HLL | None = None  # distinct past the exact limit: union of the window
        self.stored = 0  # distinct: values kept across buckets
        self.seeded: int | None = None  # newest bucket seeded from the evicted-group summary
