"""Per-rule, per-group window state and the firing decision.

Semantics (the README's "Semantics" section is the contract; this is how it is kept):

* A group keeps buckets of width ``R``: ``{bucket index: [value, events, newest ts]}``.
  Only non-empty buckets exist, and only those a window or an allowed-late event can
  still reach, so memory grows with buckets per window, never with events.
* A running aggregate over the window ending at the group's newest bucket makes the
  common case (an event at or after the group's newest) O(1); late-but-allowed events
  take a slower path that recomputes the windows they touch.
* Suppression remembers every fire that a future evaluation could still be within
  ``suppress`` of, so it holds both before and after a fire even when events arrive
  out of order.
* Every evaluation that holds, fired or suppressed, is noted in :attr:`RuleState.held`
  in order, for the engine's episode table (:mod:`monitor.engine.episodes`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from monitor.engine.distinct import (
    add_distinct,
    back_to_exact,
    distinct_count,
    rebuild_sketch,
    to_sketch,
)
from monitor.engine.evicted import Evicted
from monitor.engine.group import COUNT, NEWEST, VALUE, Group
from monitor.engine.hll import HLL
from monitor.engine.sums import saturating_sum
from monitor.event import PROVENANCE, TOO_LARGE, Event, Tally, getter, group_key, hashable, unkey
from monitor.rules.model import RuleSpec


class Fire(NamedTuple):
    """What a rule hands back when it fires; the engine turns it into an Alert.

    A tuple, made only when a rule fires, so the event path pays nothing for the names.
    """

    end: int | None  # the window's last bucket; None for a rule without a window
    value: Any
    fired_at: int
    events: int  # events in the window
    samples: list[Any]  # (id, provenance) of the window's last events, either may be None
    key: Hashable  # the group
    estimated: bool  # the value includes the evicted-group summary's estimate

class RuleState:
    """Everything one rule remembers, plus counters the telemetry reads per batch."""

    def __init__(
        self,
        spec: RuleSpec,
        threshold: Callable[[Any], bool],
        *,
        allowed_lateness_ms: int,
        max_groups: int,
        distinct_exact_limit: int,
    ) -> None:
        self.id = spec.id
        # The state's shape (monitor.engine.reload.shape): fixed for the state's life.
        self.key = group_key(spec.group_by)
        self.kind = spec.aggregate
        self.field = getter(spec.aggregate_field) if spec.aggregate_field else None
        self.window = spec.window_ms
        self.res = spec.resolution_ms or 1
        self.nb = (spec.window_ms // self.res) if spec.window_ms else 0
        self.lateness = allowed_lateness_ms
        self.max_groups = max_groups
        self.exact_limit = distinct_exact_limit
        self.groups: OrderedDict[Hashable, Group] = OrderedDict()
        # aggregate inputs used as they are; anything else goes through _odd_contribution
        self._plain = frozenset((int, float, str) if self.kind == "distinct" else (int, float))
        # counters, exported per batch
        self.matches = 0
        self.late = 0
        self.evictions = 0
        self.approximations = 0
        self.saturations = 0  # sum windows computed at the bound
        self.mismatch = Tally()
        # holds since the engine last took them: (time, group key, clock, Fire or None)
        self.held: list[tuple[int, Hashable, int, Fire | None]] = []
        # what evicted groups had, for count/sum/max windows; created at the first eviction
        self.evicted: Evicted | None = None
        self._cap_scan = -(2**62)
        self.rebind(spec, threshold, self.mismatch)

    def rebind(self, spec: RuleSpec, threshold: Callable[[Any], bool], mismatch: Tally) -> None:
        """Take the rule's judging from ``spec`` (threshold, suppression, resolve_after,
        labels, ...) and keep the groups: a reloaded rule of the same shape goes on from
        the state it has. ``mismatch`` is the new rule's tally, carrying on the count."""
        if mismatch is not self.mismatch and mismatch.source is not self.mismatch:
            # Once: every partition's state of the rule shares the old tally and the new one.
            mismatch.value += self.mismatch.value
            mismatch.source = self.mismatch
        self.spec = spec
        self.threshold = threshold
        self.mismatch = mismatch
        self.suppress = spec.suppress_ms
        # a group outlives its open episode: resolve_after + lateness is the latest that
        # episode can become final (README "Semantics", Forgetting)
        self.horizon = max(spec.window_ms or 0, spec.suppress_ms, spec.resolve_after_ms) + self.lateness
        # Fires a later evaluation could still be within `suppress` of: windowed rules see
        # nothing older than the lateness; rules without a window see any event, and are
        # judged exactly for events up to the horizon older than the group's newest.
        self._fire_memory = spec.suppress_ms + (self.lateness if spec.window_ms else self.horizon)

    # -- helpers ---------------------------------------------------------------------

    def _odd_contribution(self, v: Any) -> Any:
        """The aggregate's input when the field is not a number, or None to skip the event.

        ``distinct`` counts any JSON value; ``sum`` and ``max`` need numbers, and an event
        without one is left out (and counted as a type mismatch unless the field is absent).
        """
        if self.kind == "distinct":
            if v is None:
                return None
            k = hashable(v)
            if k is TOO_LARGE:
                self.mismatch.value += 1
                return None
            return k
        if v is not None:
            self.mismatch.value += 1
        return None

    def _group(self, key: Hashable, ts: int, clock: int) -> Group | None:
        """A fresh group; an existing one idle past the horizon is forgotten first,
        exactly as a sweep would have, so sweeping never changes an alert.

        None for a key past the size bounds (a type mismatch of the rule): only new
        groups need the check, so the per-event path never pays for it.
        """
        if key is TOO_LARGE or (key.__class__ is tuple and TOO_LARGE in key):
            self.mismatch.value += 1
            return None
        groups = self.groups
        if key in groups:
            del groups[key]
        elif len(groups) >= self.max_groups:
            # Groups already forgotten must not cost a live one its place. Scanning all
            # groups is O(cap), so it is done at most once per second of clock.
            if clock - self._cap_scan >= 1000:
                self._cap_scan = clock
                self._drop_stale(clock)
            if len(groups) >= self.max_groups:
                old_key, old = groups.popitem(last=False)
                self.evictions += 1
                if self.window is not None and self.kind != "distinct":
                    if self.evicted is None:
                        self.evicted = Evicted(self.kind, self.nb, self.lateness // self.res + 1)
                    self.evicted.add(old_key, old.buckets, clock // self.res)
        if self.kind == "distinct":
            g = groups[key] = Group(ts, ts // self.res, 0, {})
        else:
            g = groups[key] = Group(ts, ts // self.res, None if self.kind == "max" else 0, None)
            if self.evicted is not None:
                self._seed(g, key, clock)
        return g

    def _seed(self, g: Group, key: Hashable, clock: int) -> None:
        """Start a new group from the evicted-group summary's estimate of its past."""
        assert self.evicted is not None
        seeds = self.evicted.estimate(key, g.cur, clock // self.res)
        low = g.cur - self.nb
        for b, v in seeds:
            value: Any = v
            if v.is_integer() and abs(v) < 2**53:
                value = int(v)
            g.buckets[b] = [value, 0, b * self.res]
            g.seeded = b
            if b > low:
                if self.kind == "max":
                    g.total = value if g.total is None or value > g.total else g.total
                else:
                    g.total += value
        if g.total.__class__ is float and self.kind != "max":
            g.total = self._fsum(g, g.cur)

    def _estimated(self, g: Group, end: int) -> bool:
        return g.seeded is not None and g.seeded > end - self.nb

    def _suppressed(self, g: Group, at: int) -> bool:
        s = self.suppress
        return any(abs(at - f) < s for f in g.fires)

    def _record_fire(self, g: Group, at: int) -> None:
        if self.suppress:
            keep = g.newest - self._fire_memory
            fires = [f for f in g.fires if f >= keep]
            fires.append(at)
            g.fires = fires

    def _drop_stale(self, clock: int) -> int:
        horizon = self.horizon
        stale = [k for k, g in self.groups.items() if clock - g.newest > horizon]
        for k in stale:
            del self.groups[k]
        return len(stale)

    def sweep(self, clock: int) -> int:
        """Free groups idle past the horizon, oldest-touched first.

        Only memory depends on this: ``_group`` applies the same rule lazily, so whether
        a stale group is swept now or later never changes an alert. That lets the sweep
        stop at the first live group instead of walking every group each time.
        """
        groups = self.groups
        horizon = self.horizon
        stale = []
        for key, g in groups.items():
            if clock - g.newest <= horizon:
                break
            stale.append(key)
        for key in stale:
            del groups[key]
        return len(stale)

    # -- the event path --------------------------------------------------------------

    def apply(self, e: Event, ts: int, clock: int) -> Fire | None:
        """Apply one matching event (the caller has tested the rule's conditions)."""
        return self.apply_with(e, ts, clock, self.key(e), 1 if self.field is None else self.field(e))

    def apply_with(self, e: Event, ts: int, clock: int, key: Hashable, contrib: Any) -> Fire | None:
        """``apply`` with the group key and the aggregate field's raw value (1 for count)
        already read, which the generated dispatch loop does with fields it has at hand."""
        self.matches += 1
        if contrib.__class__ not in self._plain:
            contrib = self._odd_contribution(contrib)
            if contrib is None:
                return None
        if self.window is None:
            return self._apply_single(e, ts, clock, key, 1 if self.kind == "distinct" else contrib)
        g = self.groups.get(key)
        if g is None or clock - g.newest > self.horizon:
            g = self._group(key, ts, clock)
            if g is None:
                return None
        else:
            self.groups.move_to_end(key)
        newest = g.newest
        if ts < newest - self.lateness:
            self.late += 1
            return None
        eid = e.get("id")
        where = e.get(PROVENANCE)
        if eid is not None or where is not None:
            samples = g.samples
            samples.append(ts)
            samples.append(eid)
            samples.append(where)
            if len(samples) > 15:
                del samples[:3]
        b = ts // self.res
        if ts < newest:
            return self._late(g, key, b, ts, contrib, clock)
        if b != g.cur:
            self._advance(g, b, ts)
        g.newest = ts
        kind = self.kind
        if kind == "sum" or kind == "count":  # the common case, inlined
            bucket = g.buckets.get(b)
            if bucket is None:
                g.buckets[b] = [contrib, 1, ts]
            else:
                bucket[VALUE] += contrib
                bucket[COUNT] += 1
                bucket[NEWEST] = ts
            g.count += 1
            total = g.total + contrib
            if total.__class__ is float:  # a running float total drifts: add the buckets up
                total = self._fsum(g, b)
            g.total = total
        elif kind == "distinct" and g.refs is not None:  # exact distinct, inlined
            bucket = g.buckets.get(b)
            if bucket is None:
                g.buckets[b] = [{contrib}, 1, ts]
                new = True
            else:
                bucket[COUNT] += 1
                bucket[NEWEST] = ts
                values = bucket[VALUE]
                new = contrib not in values
                if new:
                    values.add(contrib)
            g.count += 1
            if new:
                g.stored += 1
                refs = g.refs
                refs[contrib] = refs.get(contrib, 0) + 1
                g.total = len(refs)
                if g.stored > self.exact_limit:
                    to_sketch(g, self.nb)
                    self.approximations += 1
            total = g.total
        else:
            self._add(g, b, ts, contrib, in_window=True)
            total = g.total
            if total is None:
                return None
        if not self.threshold(total):
            return None
        if g.fires and self._suppressed(g, ts):
            self.held.append((ts, key, clock, None))
            return None
        self._record_fire(g, ts)
        fire = Fire(b, total, ts, g.count, self._samples(g, b), key, self._estimated(g, b))
        self.held.append((ts, key, clock, fire))
        return fire

    def _apply_single(self, e: Event, ts: int, clock: int, key: Hashable, value: Any) -> Fire | None:
        if not self.threshold(value):
            return None
        if key is TOO_LARGE or (key.__class__ is tuple and TOO_LARGE in key):
            self.mismatch.value += 1
            return None
        if self.suppress:
            g = self.groups.get(key)
            if g is None or clock - g.newest > self.horizon:
                g = self._group(key, ts, clock)
                assert g is not None  # the key is within bounds
            else:
                self.groups.move_to_end(key)
            g.newest = max(g.newest, ts)
            if self._suppressed(g, ts):
                self.held.append((ts, key, clock, None))
                return None
            self._record_fire(g, ts)
        eid, where = e.get("id"), e.get(PROVENANCE)
        fire = Fire(None, value, ts, 1, [] if eid is None and where is None else [(eid, where)], key, False)
        self.held.append((ts, key, clock, fire))
        return fire

    def _add(self, g: Group, b: int, ts: int, v: Any, *, in_window: bool) -> None:
        bucket = g.buckets.get(b)
        kind = self.kind
        if bucket is None:
            if kind == "distinct":
                bucket = g.buckets[b] = [set(), 0, ts]
            else:
                bucket = g.buckets[b] = [None if kind == "max" else 0, 0, ts]
        elif ts > bucket[NEWEST]:
            bucket[NEWEST] = ts
        bucket[COUNT] += 1
        if in_window:
            g.count += 1
        if kind == "count" or kind == "sum":
            bucket[VALUE] += v
            if in_window:
                g.total += v
        elif kind == "max":
            if bucket[VALUE] is None or v > bucket[VALUE]:
                bucket[VALUE] = v
            if in_window and (g.total is None or v > g.total):
                g.total = v
        else:
            if add_distinct(g, bucket, v, in_window, self.exact_limit, self.nb):
                self.approximations += 1

    def _advance(self, g: Group, b: int, ts: int) -> None:
        """Slide the running window from ``g.cur`` to ``b`` and prune unreachable buckets."""
        nb = self.nb
        old_low, new_low = g.cur - nb, b - nb
        buckets = g.buckets
        kind = self.kind
        exact_distinct = kind == "distinct" and g.refs is not None
        if new_low - old_low < len(buckets):  # a short slide: look the few buckets up
            expiring = [k for k in range(old_low + 1, new_low + 1) if k in buckets]
        else:
            expiring = [k for k in buckets if old_low < k <= new_low]
        for k in expiring:
            bucket = buckets[k]
            g.count -= bucket[COUNT]
            if kind == "count" or kind == "sum":
                g.total -= bucket[VALUE]
            elif exact_distinct:
                refs = g.refs
                assert refs is not None
                for v in bucket[VALUE]:
                    n = refs[v] - 1
                    if n:
                        refs[v] = n
                    else:
                        del refs[v]
        g.cur = b
        if g.total.__class__ is float and kind != "max":
            g.total = self._fsum(g, b)
        keep_low = (ts - self.lateness) // self.res - nb
        # Buckets are created in time order (a late one may come after newer ones and is
        # then freed a little later: it is outside every window either way).
        stale = []
        for k in buckets:
            if k > keep_low:
                break
            stale.append(k)
        for k in stale:
            bucket = buckets.pop(k)
            if kind == "distinct" and bucket[VALUE].__class__ is set:
                g.stored -= len(bucket[VALUE])
        if kind == "max":
            vals = [bk[VALUE] for k, bk in buckets.items() if k > new_low and bk[VALUE] is not None]
            g.total = max(vals) if vals else None
        elif kind == "distinct":
            if g.sketch is not None:
                if any(bk[VALUE].__class__ is HLL for bk in buckets.values()):
                    rebuild_sketch(g, self.nb)
                else:
                    back_to_exact(g, self.nb)
            else:
                assert g.refs is not None
                g.total = len(g.refs)

    def _fsum(self, g: Group, end: int) -> float:
        """The exact float sum of the window ending at bucket ``end``, saturated."""
        low = end - self.nb
        total, saturated = saturating_sum([bk[VALUE] for k, bk in g.buckets.items() if low < k <= end])
        if saturated:
            self.saturations += 1
        return total  # type: ignore[no-any-return]

    def _late(self, g: Group, key: Hashable, b: int, ts: int, contrib: Any, clock: int) -> Fire | None:
        nb = self.nb
        self._add(g, b, ts, contrib, in_window=b > g.cur - nb)
        ends = [b, *sorted(k for k in g.buckets if b < k <= g.cur)]
        for end in ends:
            value, count, newest = self._window_at(g, end)
            if value is None or not self.threshold(value):
                continue
            if self._suppressed(g, newest):
                self.held.append((newest, key, clock, None))
                continue
            self._record_fire(g, newest)
            fire = Fire(end, value, newest, count, self._samples(g, end), key, self._estimated(g, end))
            self.held.append((newest, key, clock, fire))
            return fire
        return None

    def _window_at(self, g: Group, end: int) -> tuple[Any, int, int]:
        """(value, events, newest event time) of the window ending at bucket ``end``."""
        low = end - self.nb
        inside = [bk for k, bk in g.buckets.items() if low < k <= end]
        count = sum(bk[COUNT] for bk in inside)
        newest = max(bk[NEWEST] for bk in inside)
        kind = self.kind
        if kind == "count" or kind == "sum":
            value: Any = sum(bk[VALUE] for bk in inside)
            if value.__class__ is float:
                value, saturated = saturating_sum([bk[VALUE] for bk in inside])
                if saturated:
                    self.saturations += 1
        elif kind == "max":
            vals = [bk[VALUE] for bk in inside if bk[VALUE] is not None]
            value = max(vals) if vals else None
        else:
            value = distinct_count([bk[VALUE] for bk in inside])
        return value, count, newest

    def _samples(self, g: Group, end: int) -> list[Any]:
        low = (end - self.nb + 1) * self.res
        high = (end + 1) * self.res
        s = g.samples
        return [(s[i + 1], s[i + 2]) for i in range(0, len(s), 3) if low <= s[i] < high]

    # -- introspection ---------------------------------------------------------------

    def group_values(self, key: Hashable) -> list[Any]:
        n = len(self.spec.group_by)
        if n == 0:
            return []
        if n == 1:
            return [unkey(key)]
        assert isinstance(key, tuple)
        return [unkey(k) for k in key]

