"""State per partition: each partition's engine is what ``replay`` of that partition's
events alone would build, however the daemon's batches interleave the partitions."""

from __future__ import annotations

import itertools
import zlib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from monitor.engine import Engine, EngineOptions
from monitor.engine.partitioned import Partitioned
from tests.engine.test_properties import SEC, SETTINGS, aggregates, rule_yaml, streams
from tests.support.engine import T0, ruleset, run

PARTITIONS = 3


def partition_of(event: dict[str, Any]) -> int:
    """As a producer keyed by actor.id would place it (any stable function will do)."""
    return zlib.crc32(event["actor"]["id"].encode()) % PARTITIONS


@SETTINGS
@given(
    aggregate=aggregates,
    n=st.integers(1, 30),
    window_s=st.sampled_from([30, 120]),
    suppress_s=st.sampled_from([None, 45]),
    events=streams(),
    cuts=st.lists(st.integers(0, 80), max_size=8),
)
def test_partitions_in_any_batches_give_each_partitions_replay(
    aggregate: Any, n: int, window_s: int, suppress_s: int | None,
    events: list[tuple[dict[str, Any], int]], cuts: list[int],
) -> None:  # fmt: skip
    rs = ruleset(rule_yaml(aggregate, "gte", n, window_s, suppress_s))
    options = EngineOptions(allowed_lateness_ms=60 * SEC)
    by_partition: dict[int, list[tuple[dict[str, Any], int]]] = {}
    for e in events:
        by_partition.setdefault(partition_of(e[0]), []).append(e)
    expected = sorted(a.id for evs in by_partition.values() for a in run(Engine(rs, options), evs, batch=len(evs)))

    engines = Partitioned(rs, options)
    got = []
    bounds = sorted({0, len(events), *(c for c in cuts if c <= len(events))})
    offsets = dict.fromkeys(by_partition, 0)
    for lo, hi in itertools.pairwise(bounds):  # a batch holds some of each partition's next events
        streams_: dict[int, list[tuple[dict[str, Any], int]]] = {}
        for e in events[lo:hi]:
            streams_.setdefault(partition_of(e[0]), []).append(e)
        for p, evs in streams_.items():
            offsets[p] += len(evs)
        got.extend(engines.process(streams_, {p: offsets[p] for p in streams_}))
    assert sorted(a.id for a in got) == expected
    assert {p: slot.offset for p, slot in engines} == offsets


def test_a_partition_far_ahead_does_not_forget_another_partitions_groups() -> None:
    """The forgetting clock is per partition: one partition two hours ahead (a producer
    catching up, a lagging consumer) leaves the other's window whole."""
    rs = ruleset(rule_yaml("count", "gte", 3, 600, None))
    engines = Partitioned(rs, EngineOptions(allowed_lateness_ms=60 * SEC))

    def ev(i: int, actor: str, ts: int) -> tuple[dict[str, Any], int]:
        return {"ts": ts, "id": f"e{i}", "actor": {"id": actor}}, ts

    assert not engines.process({0: [ev(1, "slow", T0), ev(2, "slow", T0 + SEC)]}, {0: 2})
    assert not engines.process({1: [ev(3, "fast", T0 + 7200 * SEC)]}, {1: 1})
    [alert] = engines.process({0: [ev(4, "slow", T0 + 2 * SEC)]}, {0: 3})
    assert alert.group == {"actor.id": "slow"}
    assert engines.slots[0].engine.clock != engines.slots[1].engine.clock


def test_a_reload_reaches_every_partitions_engine_and_the_ones_made_later() -> None:
    engines = Partitioned(ruleset(rule_yaml("count", "gte", 3, 600, None)))
    engines.process({0: [({"ts": T0, "id": "e", "actor": {"id": "a"}}, T0)]}, {0: 1})
    changed = ruleset(rule_yaml("count", "gte", 2, 600, None))
    decided = engines.reload(changed)
    assert decided.keep == {"r"}, "threshold only: the state is kept"
    assert engines.slots[0].engine.ruleset is changed
    assert engines.fresh(1).ruleset is changed
