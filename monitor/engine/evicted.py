"""What a rule remembers of the groups it evicted at its group cap.

Without it, eviction is evasion: read most of a threshold, flood the rule with fresh
group keys until the cap evicts your group, read the rest. So each evicted group's
buckets go into a count-min sketch per *span* (a sixteenth of the window), and a group
created while the sketch holds anything starts from the sketch's estimate of what it
had. A count-min sketch only ever over-estimates (a cell is the sum, or for ``max`` the
maximum, of everything hashed to it, and the estimate is the smallest of the key's
cells), so a returning group's window is at least its true value: eviction can cause an
early or a spurious alert, marked ``estimated``, but never hides a crossing of an upper
threshold.

* ``count`` and ``sum``: the positive part of each bucket is added (conservative
  update: a cell grows only as far as the key's estimate requires), so negative values
  can never lower an estimate below the truth.
* ``max``: cells keep the maximum.
* ``distinct`` is not summarised: a sketch of counts cannot be merged back into a set
  of values (README "Limits").

Memory is bounded and allocated only after the rule's first eviction: DEPTH x WIDTH
float cells per span (128 KiB), at most MAX_SPANS spans (4 MiB per rule). An estimate
is placed at the end of its span, or at the returning event's bucket if that is
earlier, so it stays in a window at least as long as the values it stands for; this is
exact for a group that returns in time order.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable
from typing import Any

from monitor.engine.group import VALUE
from monitor.engine.hll import hash64

DEPTH = 4
WIDTH = 4096
SPANS_PER_WINDOW = 16
MAX_SPANS = 2 * SPANS_PER_WINDOW
_MASK = (1 << 32) - 1


class Evicted:
    def __init__(self, kind: str, nb: int, lateness_buckets: int) -> None:
        self.is_max = kind == "max"
        self.step = max(1, -(-nb // SPANS_PER_WINDOW))  # fine buckets per span
        self.reach = nb + lateness_buckets  # how far back a window or a late event can see
        self.spans: dict[int, array[float]] = {}  # span index -> DEPTH * WIDTH cells
        self._empty = array("d", [float("-inf") if self.is_max else 0.0]) * (DEPTH * WIDTH)

    def _cells(self, key: Hashable) -> list[int]:
        h = hash64(key)
        a, b = h & _MASK, (h >> 32) | 1
        return [i * WIDTH + (a + i * b) % WIDTH for i in range(DEPTH)]

    def _prune(self, now_bucket: int) -> None:
        """Forget spans no window can reach any more, and the oldest beyond MAX_SPANS."""
        low = (now_bucket - self.reach) // self.step
        spans = self.spans
        for c in [c for c in spans if c < low]:
            del spans[c]
        while len(spans) > MAX_SPANS:
            del spans[min(spans)]

    def add(self, key: Hashable, buckets: dict[int, list[Any]], now_bucket: int) -> None:
        """Summarise an evicted group's buckets."""
        step, is_max = self.step, self.is_max
        per_span: dict[int, float] = {}
        for k, bk in buckets.items():
            v = bk[VALUE]
            if v is None or (not is_max and v <= 0):
                continue
            v = float(v) if abs(v) < 1.7e308 else float("inf")
            c = k // step
            old = per_span.get(c)
            per_span[c] = v if old is None else (max(old, v) if is_max else old + v)
        if not per_span:
            return
        cells = self._cells(key)
        spans = self.spans
        for c, v in per_span.items():
            cellar = spans.get(c)
            if cellar is None:
                cellar = spans[c] = array("d", self._empty)
            if is_max:
                for i in cells:
                    if v > cellar[i]:
                        cellar[i] = v
            else:
                want = min(cellar[i] for i in cells) + v
                for i in cells:
                    if cellar[i] < want:
                        cellar[i] = want
        self._prune(now_bucket)

    def estimate(self, key: Hashable, at_bucket: int, now_bucket: int) -> list[tuple[int, float]]:
        """(bucket index, value) to seed a new group of ``key`` with, in time order."""
        self._prune(now_bucket)
        if not self.spans:
            return []
        cells = self._cells(key)
        step, is_max = self.step, self.is_max
        out: dict[int, float] = {}
        for c in sorted(self.spans):
            cellar = self.spans[c]
            v = min(cellar[i] for i in cells)
            if v <= (float("-inf") if is_max else 0.0):
                continue
            p = min((c + 1) * step - 1, at_bucket)
            old = out.get(p)
            out[p] = v if old is None else (max(old, v) if is_max else old + v)
        return sorted(out.items())

    def memory_bytes(self) -> int:
        return sum(a.itemsize * len(a) for a in self.spans.values())
