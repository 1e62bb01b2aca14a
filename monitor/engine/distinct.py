"""``distinct``: exact sets while a group holds few values, HyperLogLog beyond.

Buckets hold sets until the group holds more than the exact limit; then every bucket
becomes a sketch. New buckets start as sets again, so a group returns to exact counting
once its sketched buckets have left the window. An enumeration attack is exactly when a
group sees huge numbers of values, and the attacker must not size the monitor's memory.
"""

from __future__ import annotations

from typing import Any

from monitor.engine.group import VALUE, Group
from monitor.engine.hll import HLL, hash64


def add_distinct(g: Group, bucket: list[Any], v: Any, in_window: bool, exact_limit: int, nb: int) -> bool:
    """Add ``v`` to a bucket (and the running window when ``in_window``); True when
    the group had to switch to sketches."""
    values = bucket[VALUE]
    h = None
    if values.__class__ is HLL:
        h = hash64(v)
        values.add_hash(h)
    elif v not in values:
        values.add(v)
        g.stored += 1
        if g.refs is not None and in_window:
            g.refs[v] = g.refs.get(v, 0) + 1
            g.total = len(g.refs)
    else:
        return False
    if g.sketch is not None and in_window:
        g.sketch.add_hash(hash64(v) if h is None else h)
        g.total = g.sketch.estimate()
    if g.stored > exact_limit:
        first = g.sketch is None
        to_sketch(g, nb)
        return first
    return False


def to_sketch(g: Group, nb: int) -> None:
    for bucket in g.buckets.values():
        bucket[VALUE] = as_sketch(bucket[VALUE])
    g.refs = None
    g.stored = 0
    rebuild_sketch(g, nb)


def rebuild_sketch(g: Group, nb: int) -> None:
    low = g.cur - nb
    g.sketch = HLL.union([as_sketch(bk[VALUE]) for k, bk in g.buckets.items() if k > low])
    g.total = g.sketch.estimate()


def back_to_exact(g: Group, nb: int) -> None:
    """Once no sketched bucket is left, the group counts exactly again."""
    refs: dict[Any, int] = {}
    low = g.cur - nb
    for k, bk in g.buckets.items():
        if k > low:
            for v in bk[VALUE]:
                refs[v] = refs.get(v, 0) + 1
    g.refs, g.sketch, g.total = refs, None, len(refs)


def distinct_count(values: list[set[Any] | HLL]) -> int:
    """Distinct values across some buckets: exact if all are sets, else estimated."""
    if any(v.__class__ is HLL for v in values):
        return HLL.union([as_sketch(v) for v in values]).estimate()
    union: set[Any] = set()
    for v in values:
        union |= v  # type: ignore[arg-type]
    return len(union)


def as_sketch(values: set[Any] | HLL) -> HLL:
    if isinstance(values, HLL):
        return values
    sketch = HLL()
    for v in values:
        sketch.add(v)
    return sketch
