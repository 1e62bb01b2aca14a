"""Snapshots: an engine restored from one goes on exactly as the engine it was taken of."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.engine import Engine, EngineOptions
from monitor.engine.hll import HLL
from monitor.engine.snapshot import (
    FORMAT_VERSION,
    SnapshotError,
    decode,
    encode,
    pack,
    restore,
    unpack,
)
from monitor.event import JsonKey
from tests.engine.test_properties import SEC, SETTINGS, aggregates, rule_yaml, streams
from tests.support.engine import T0, ruleset

DATA = Path(__file__).parent / "data"


def _resolutions(rs: list[Any]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in rs]


@SETTINGS
@given(
    aggregate=aggregates,
    op=st.sampled_from(["gt", "gte", "lt"]),
    n=st.integers(1, 60),
    window_s=st.sampled_from([30, 60, 120]),
    suppress_s=st.sampled_from([None, 0, 45, 300]),
    events=streams(),
    cuts=st.lists(st.integers(0, 80), max_size=4),
    max_groups=st.sampled_from([2, 100]),
)
def test_restored_engines_give_the_alerts_and_resolutions_of_one_uninterrupted_run(
    aggregate: Any, op: str, n: int, window_s: int, suppress_s: int | None,
    events: list[tuple[dict[str, Any], int]], cuts: list[int], max_groups: int,
) -> None:  # fmt: skip
    """A crash after any batch, restored from the snapshot taken then: nothing missing,
    nothing new, the same ids (evicted-group summaries, sketches and episodes included)."""
    rs = ruleset(rule_yaml(aggregate, op, n, window_s, suppress_s, resolve_after_s=300))
    options = EngineOptions(allowed_lateness_ms=60 * SEC, max_groups_per_rule=max_groups, distinct_exact_limit=4)
    bounds = sorted({0, len(events), *(c for c in cuts if c <= len(events))})
    whole = Engine(rs, options)
    want, want_res = [], []
    for lo, hi in itertools.pairwise(bounds):
        want.extend(a.to_dict() for a in whole.process(events[lo:hi]))
        want_res.extend(_resolutions(whole.resolutions()))
    want_res.extend(_resolutions(whole.resolve_all()))

    got, got_res = [], []
    eng = Engine(rs, options)
    for lo, hi in itertools.pairwise(bounds):
        got.extend(a.to_dict() for a in eng.process(events[lo:hi]))
        got_res.extend(_resolutions(eng.resolutions()))
        blob = encode(eng)
        eng = Engine(rs, options)  # the crash: a new process with the same rules
        assert restore(eng, blob) == []
        assert encode(eng) == blob  # nothing lost or added on the way
    got_res.extend(_resolutions(eng.resolve_all()))
    assert got == want
    assert got_res == want_res


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    | st.tuples(inner, inner)
    | st.frozensets(st.integers() | st.text(max_size=3), max_size=3),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, frozenset):
        return b == set(a)
    return type(a) is type(b) and a == b


@given(values)
def test_values_round_trip_with_their_types(v: Any) -> None:
    import orjson

    assert _same(v, unpack(orjson.loads(orjson.dumps(pack(v)))))


def test_types_json_lacks_keep_theirs() -> None:
    h = HLL()
    h.add("x")
    for v in (JsonKey(("true",)), 2**70, -(2**70), float("inf"), (1, "a"), {1, 2}, h):
        back = unpack(pack(v))
        assert type(back) is type(v) and (back.registers == v.registers if v is h else back == v)


def _engine_with_state() -> Engine:
    rs = ruleset(rule_yaml("count", "gte", 2, 60, 30, resolve_after_s=60))
    eng = Engine(rs, EngineOptions(allowed_lateness_ms=10 * SEC))
    events = [({"ts": T0 + i * SEC, "id": f"e{i}", "actor": {"id": "a"}}, T0 + i * SEC) for i in range(3)]
    assert eng.process(events)
    return eng


def test_torn_foreign_and_future_snapshots_are_refused() -> None:
    blob = encode(_engine_with_state())
    with pytest.raises(SnapshotError, match="checksum"):
        decode(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(SnapshotError, match="shorter"):
        decode(blob[:10])
    with pytest.raises(SnapshotError, match="magic"):
        decode(b"PK\x03\x04" + blob[4:])
    future = blob[:4] + (FORMAT_VERSION + 1).to_bytes(2, "big") + blob[6:]
    with pytest.raises(SnapshotError, match="newer"):
        decode(future)


def test_state_goes_only_into_a_rule_of_the_same_shape() -> None:
    blob = encode(_engine_with_state())
    same_shape = Engine(ruleset(rule_yaml("count", "gte", 50, 60, 30, resolve_after_s=60)))
    assert restore(same_shape, blob) == []  # another threshold: kept
    assert len(same_shape.states[0].groups) == 1 and len(same_shape.open_episodes()) == 1
    other = Engine(ruleset(rule_yaml("count", "gte", 2, 120, 30, resolve_after_s=60)))
    assert restore(other, blob) == ["r"]  # another window: starts empty, its episode kept
    assert not other.states[0].groups and len(other.open_episodes()) == 1
    gone = Engine(ruleset(rule_yaml("count", "gte", 2, 60, 30, resolve_after_s=60).replace("id: r", "id: s")
                          .replace('"id":"r"', '"id":"s"')))  # fmt: skip
    assert restore(gone, blob) == ["r"] and not gone.open_episodes()


def test_a_snapshot_of_every_earlier_format_version_restores() -> None:
    """``data/snapshot-v<N>.bin`` were written by format version N; each must restore
    (regenerate one only when adding a new version: ``python -m tests.engine.test_snapshot``)."""
    files = sorted(DATA.glob("snapshot-v*.bin"))
    assert [f.name for f in files] == [f"snapshot-v{v}.bin" for v in range(1, FORMAT_VERSION + 1)]
    for f in files:
        eng = Engine(ruleset(rule_yaml("count", "gte", 2, 60, 30, resolve_after_s=60)),
                     EngineOptions(allowed_lateness_ms=10 * SEC))  # fmt: skip
        assert restore(eng, f.read_bytes()) == []
        [ep] = eng.open_episodes()
        assert ep.alert.group == {"actor.id": "a"} and ep.start_ms == T0 + SEC
        # the next event of the window fires as it would have (suppressed within 30s)
        later = T0 + 40 * SEC
        [alert] = eng.process([({"ts": later, "id": "e9", "actor": {"id": "a"}}, later)])
        assert alert.episode_start_ms == T0 + SEC


if __name__ == "__main__":  # write the current version's sample
    DATA.mkdir(exist_ok=True)
    (DATA / f"snapshot-v{FORMAT_VERSION}.bin").write_bytes(encode(_engine_with_state()))
