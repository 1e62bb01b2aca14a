"""Snapshots of the episode table (monitor.engine.codec): what one run writes, the next
reads back whole, or refuses; an engine given the table carries its episodes on."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.engine import Engine, EngineOptions, Resolution
from monitor.engine.alert import Alert
from monitor.engine.codec import (
    EPISODES,
    Schema,
    SnapshotError,
    decode_episodes,
    encode_episodes,
    seal,
    unseal,
)
from monitor.engine.episodes import Episode
from monitor.event import getter, group_key
from tests.support.engine import MIN, T0, engine, ev, rule, ruleset, run

SEC = 1000
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TWO_PATHS = rule(group_by=["actor.id", "ctx"], window="1m", suppress="1m", resolve_after="5m")


def opened() -> Engine:
    """An engine with two open episodes, one of them extended, one grouped by an object."""
    eng = engine(TWO_PATHS)
    run(eng, [ev(T0, "a", ctx={"ip": "10.0.0.1", "ok": True}), ev(T0 + 10 * SEC, "b", ctx=7),
              ev(T0 + 2 * MIN, "a", ctx={"ok": True, "ip": "10.0.0.1"})])  # fmt: skip
    assert len(eng.open_episodes()) == 2
    return eng


def test_the_open_episodes_round_trip_whole() -> None:
    eng = opened()
    blob = encode_episodes(eng.open_episodes())
    head, _, payload = blob.partition(b"\n")
    assert orjson.loads(head) == {"kind": "episodes", "version": 1, "bytes": len(payload),
                                  "sha256": hashlib.sha256(payload).hexdigest()}  # fmt: skip
    back = decode_episodes(blob)
    assert back == eng.open_episodes()
    assert [ep.record() for ep in back] == [ep.record() for ep in eng.open_episodes()]
    assert decode_episodes(encode_episodes([])) == []


def test_an_engine_given_the_table_carries_the_episodes_on() -> None:
    before = opened()
    (a_ep, b_ep) = before.open_episodes()
    after = Engine(before.ruleset, before.options, episodes=decode_episodes(encode_episodes(before.open_episodes())))
    # a's group (its object key written in another order) fires again: a re-alert of the
    # episode the last run opened, not a new one
    [again] = run(after, [ev(T0 + 4 * MIN, "a", ctx={"ok": True, "ip": "10.0.0.1"})])
    assert again.episode_start_ms == a_ep.start_ms == T0
    assert after.episodes.revision > 0
    # b's episode, untouched since, resolves at its resolved_at once the clock passes it
    # plus the lateness (1m)
    run(after, [ev(T0 + 10 * SEC + 6 * MIN + 1, "c", ctx=0)])
    assert [(r.alert.id, r.resolved_at_ms) for r in after.resolutions()] == [(b_ep.alert.id, T0 + 10 * SEC + 5 * MIN)]
    assert [(r.alert.group["actor.id"], r.start_ms) for r in after.resolve_all()] == [("a", T0), ("c", T0 + 10 * SEC + 6 * MIN + 1)]


# ------------------------------------------------------------------ a restart, anywhere


def resolutions(rs: Any, options: EngineOptions, events: list[tuple[dict[str, Any], int]],
                cut: int | None) -> list[tuple[str, int, int, int]]:  # fmt: skip
    """(alert id, start, last hold, resolved_at) of every episode, with the engine
    replaced by a new one given the table (as a restarted daemon's) after ``cut`` events."""
    out: list[Resolution] = []
    eng = Engine(rs, options)
    for i, e in enumerate(events):
        if i == cut:
            eng = Engine(rs, options, episodes=decode_episodes(encode_episodes(eng.open_episodes())))
        eng.process([e])
        out.extend(eng.resolutions())
    out.extend(eng.resolve_all())
    return [(r.alert.id, r.start_ms, r.last_hold_ms, r.resolved_at_ms) for r in out]


@SETTINGS
@given(
    gaps=st.lists(st.tuples(st.integers(0, 4 * MIN), st.sampled_from(["a", "b", "c"])), min_size=1, max_size=40),
    suppress_s=st.sampled_from([0, 30, 120]),
    resolve_after_s=st.sampled_from([60, 150, 300]),
    cut=st.integers(0, 40),
)
def test_a_restart_with_the_table_gives_the_episodes_of_an_unbroken_run(
    gaps: list[tuple[int, str]], suppress_s: int, resolve_after_s: int, cut: int
) -> None:
    # Every event holds (count >= 1), so the window state a restart loses changes which
    # holds fire, never which hold: the episodes depend on the table alone.
    resolve_after_s = max(resolve_after_s, suppress_s)
    rs = ruleset(rule(group_by=["actor.id"], window="1m", suppress=f"{suppress_s}s",
                      resolve_after=f"{resolve_after_s}s"))  # fmt: skip
    options = EngineOptions(allowed_lateness_ms=30 * SEC)
    t, events = T0, []
    for gap, actor in gaps:
        t += gap
        events.append(ev(t, actor))
    assert resolutions(rs, options, events, cut) == resolutions(rs, options, events, None)


# ------------------------------------------------------------------ any episode

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # JSON has no lone surrogates
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
_PATHS = ("actor.id", "ctx", "a.b.c")


@st.composite
def episodes(draw: st.DrawFn) -> tuple[Episode, Any]:
    """An episode whose group is read from an event by ``n`` paths, and the key the
    rule's state gives that event."""
    n = draw(st.integers(0, 3))
    event: dict[str, Any] = {}
    for path in _PATHS[:n]:
        *parents, last = path.split(".")
        cur = event
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[last] = draw(_JSON)
    paths = _PATHS[:n]
    group = {p: getter(p)(event) for p in paths}
    start = draw(st.integers(0, 2**50))
    alert = Alert(
        id=draw(st.text("0123456789abcdef", min_size=16, max_size=16)), rule=draw(_TEXT), severity="high",
        description=draw(_TEXT), group=group, value=draw(st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)),
        threshold={"gte": draw(st.integers(0, 10**9))}, window=draw(st.none() | st.just("5m")),
        window_start_ms=start, window_end_ms=start + 1, fired_at_ms=start, event_count=draw(st.integers(1, 10**6)),
        summary=draw(_TEXT), labels=draw(st.dictionaries(_TEXT, _TEXT, max_size=3)),
        annotations=draw(st.dictionaries(_TEXT, _TEXT, max_size=3)),
        sample_event_ids=draw(st.lists(_JSON, max_size=3)), sample_provenance=draw(st.lists(_TEXT, max_size=3)),
        unit=draw(st.sampled_from(["events", "rows", "bytes"])), saturated=draw(st.booleans()),
        estimated=draw(st.booleans()), episode_start_ms=start,
    )  # fmt: skip
    hold = start + draw(st.integers(0, 10**9))
    ep = Episode(alert.rule, group_key(paths)(event), start, hold, draw(st.integers(1, 10**9)), alert)
    return ep, group_key(paths)(event)


@SETTINGS
@given(items=st.lists(episodes(), max_size=5))
def test_any_episode_round_trips_and_finds_its_group_again(items: list[tuple[Episode, Any]]) -> None:
    eps = [ep for ep, _ in items]
    back = decode_episodes(encode_episodes(eps))
    assert back == eps
    assert [ep.key for ep in back] == [key for _, key in items]
    assert [ep.alert.to_dict() for ep in back] == [ep.alert.to_dict() for ep in eps]


# ------------------------------------------------------------------ refused, never half used


def _damage(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1:]


@pytest.mark.parametrize(
    ("mangle", "said"),
    [
        (lambda b: b[: len(b) - 3], "not whole"),
        (lambda b: _damage(b, len(b) - 20), "damaged: the checksum does not match"),
        (lambda b: b + b"\n", "not whole"),
        (lambda b: b"", "not a snapshot"),
        (lambda b: b"\x00" * 64, "not a snapshot"),
        (lambda b: b"garbage\n" + b, "not a snapshot"),
        (lambda b: b.partition(b"\n")[2], "not a snapshot"),
        (lambda b: seal(Schema("checkpoint", 1), []), "a snapshot of 'checkpoint', not of 'episodes'"),
        (lambda b: seal(Schema("episodes", 2), []), "version 2 was written by a newer monitor; "
                                                    "this one reads episodes versions 1 to 1"),
        (lambda b: seal(Schema("episodes", 0), []), "version 0 is older than this monitor reads"),
        (lambda b: seal(EPISODES, {"not": "a list"}), "damaged: the episodes are not a list"),
        (lambda b: seal(EPISODES, [{"rule": "r"}]), "damaged: an episode that does not read"),
        (lambda b: seal(EPISODES, [{**orjson.loads(b.partition(b"\n")[2])[0], "start_ms": "soon"}]),
         "damaged: an episode whose times are not whole milliseconds"),
    ],
)
def test_a_snapshot_that_is_not_whole_damaged_or_foreign_is_refused(mangle: Any, said: str) -> None:
    blob = encode_episodes(opened().open_episodes())
    with pytest.raises(SnapshotError, match="^" + said.replace("(", r"\(").replace(")", r"\)")):
        decode_episodes(mangle(blob))


def test_any_single_flipped_byte_is_refused_or_harmless() -> None:
    blob = encode_episodes(opened().open_episodes())
    want = decode_episodes(blob)
    for at in range(0, len(blob), 7):
        try:
            got = decode_episodes(_damage(blob, at))
        except SnapshotError:
            continue
        assert got == want, at  # only a flip the header does not depend on (e.g. in a key's case) can pass


def test_an_older_version_is_read_through_the_schema_upgrades() -> None:
    # A schema at version 3 that renamed `hold` to `last_hold` in 2 and added `note` in 3.
    v3 = Schema("demo", 3, {1: lambda d: [{"last_hold": x["hold"]} for x in d],
                            2: lambda d: [{**x, "note": ""} for x in d]})  # fmt: skip
    assert v3.oldest == 1
    assert unseal(v3, seal(Schema("demo", 1), [{"hold": 5}])) == [{"last_hold": 5, "note": ""}]
    assert unseal(v3, seal(Schema("demo", 2), [{"last_hold": 5}])) == [{"last_hold": 5, "note": ""}]
    assert unseal(v3, seal(v3, [{"last_hold": 5, "note": "x"}])) == [{"last_hold": 5, "note": "x"}]
    with pytest.raises(SnapshotError, match="damaged"):  # an upgrade that cannot read what it got
        unseal(v3, seal(Schema("demo", 1), [{"held": 5}]))
    only_2 = Schema("demo", 3, {2: lambda d: d})
    with pytest.raises(SnapshotError, match="version 1 is older than this monitor reads"):
        unseal(only_2, seal(Schema("demo", 1), []))
