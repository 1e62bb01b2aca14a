"""Property tests of the engine's promises (README, "Semantics" and "Guarantees")."""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.engine import Engine, EngineOptions
from tests.support.engine import T0, ruleset, run

SEC = 1000
ACTORS = ["a", "b", "c"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rule_yaml(aggregate: Any, op: str, n: int, window_s: int, suppress_s: int | None,
              resolve_after_s: int | None = None) -> str:  # fmt: skip
    import orjson

    body: dict[str, Any] = {
        "id": "r", "severity": "high", "group_by": ["actor.id"], "window": f"{window_s}s",
        "aggregate": aggregate, "threshold": {op: n},
    }  # fmt: skip
    if suppress_s is not None:
        body["suppress"] = f"{suppress_s}s"
    if resolve_after_s:
        body["resolve_after"] = f"{resolve_after_s}s"
    return "rules:\n  - " + orjson.dumps(body).decode() + "\n"


aggregates = st.sampled_from(["count", {"sum": "rows"}, {"max": "rows"}, {"distinct": "cust"}])


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[dict[str, Any], int]]:
    """Roughly time-ordered events, with some disorder, a few actors and fields."""
    n = draw(st.integers(1, 80))
    t = T0
    out = []
    for i in range(n):
        t += draw(st.integers(0, 20 * SEC))
        ts = t - draw(st.sampled_from([0, 0, 0, 3 * SEC, 50 * SEC, 90 * SEC]))
        e = {
            "ts": ts, "id": f"e{i}", "actor": {"id": draw(st.sampled_from(ACTORS))},
            "rows": draw(st.integers(0, 50)), "cust": draw(st.integers(0, 6)),
        }  # fmt: skip
        out.append((e, ts))
    return out


@SETTINGS
@given(
    aggregate=aggregates,
    op=st.sampled_from(["gt", "gte", "lt", "lte", "eq"]),
    n=st.integers(1, 60),
    window_s=st.sampled_from([30, 60, 120]),
    suppress_s=st.sampled_from([None, 0, 45, 300]),
    events=streams(),
    cuts=st.lists(st.integers(0, 80), max_size=10),
    max_groups=st.sampled_from([2, 100]),
)
def test_any_batching_gives_identical_alerts(
    aggregate: Any, op: str, n: int, window_s: int, suppress_s: int | None,
    events: list[tuple[dict[str, Any], int]], cuts: list[int], max_groups: int,
) -> None:  # fmt: skip
    rs = ruleset(rule_yaml(aggregate, op, n, window_s, suppress_s))
    options = EngineOptions(allowed_lateness_ms=60 * SEC, max_groups_per_rule=max_groups, distinct_exact_limit=4)
    one_by_one = run(Engine(rs, options), events, batch=1)
    bounds = sorted({0, len(events), *(c for c in cuts if c <= len(events))})
    eng = Engine(rs, options)
    batched = []
    for lo, hi in itertools.pairwise(bounds):
        batched.extend(eng.process(events[lo:hi]))
    assert [a.to_dict() for a in batched] == [a.to_dict() for a in one_by_one]


# -- episodes ---------------------------------------------------------------------------


def _episodes(eng: Engine, events: list[tuple[dict[str, Any], int]], bounds: list[int]) -> tuple[list[Any], list[Any]]:
    """Alerts and resolutions (collected after each batch, then the rest at the end)."""
    alerts: list[Any] = []
    resolutions: list[Any] = []
    for lo, hi in itertools.pairwise(bounds):
        alerts.extend(eng.process(events[lo:hi]))
        drained = eng.resolutions()
        assert drained == sorted(drained, key=lambda r: r.resolved_at_ms)
        resolutions.extend(drained)
    resolutions.extend(eng.resolve_all())
    return alerts, resolutions


def _records(resolutions: list[Any]) -> list[dict[str, Any]]:
    return sorted((r.to_dict() for r in resolutions), key=lambda d: (d["resolved_at"], d["episode_start"], d["id"]))


@SETTINGS
@given(
    aggregate=aggregates,
    op=st.sampled_from(["gt", "gte", "lt", "lte", "eq"]),
    n=st.integers(1, 60),
    window_s=st.sampled_from([30, 60, 120]),
    suppress_s=st.sampled_from([None, 0, 45, 300]),
    resolve_after_extra_s=st.sampled_from([None, 0, 30, 400]),
    events=streams(),
    cuts=st.lists(st.integers(0, 80), max_size=10),
    max_groups=st.sampled_from([2, 100]),
)
def test_any_batching_gives_identical_alerts_and_resolutions(
    aggregate: Any, op: str, n: int, window_s: int, suppress_s: int | None, resolve_after_extra_s: int | None,
    events: list[tuple[dict[str, Any], int]], cuts: list[int], max_groups: int,
) -> None:  # fmt: skip
    effective_suppress = window_s if suppress_s is None else suppress_s
    ra = None if resolve_after_extra_s is None else effective_suppress + resolve_after_extra_s
    rs = ruleset(rule_yaml(aggregate, op, n, window_s, suppress_s, ra))
    options = EngineOptions(allowed_lateness_ms=60 * SEC, max_groups_per_rule=max_groups, distinct_exact_limit=4)
    alerts1, res1 = _episodes(Engine(rs, options), events, list(range(len(events) + 1)))
    bounds = sorted({0, len(events), *(c for c in cuts if c <= len(events))})
    alerts2, res2 = _episodes(Engine(rs, options), events, bounds)
    assert [a.to_dict() for a in alerts2] == [a.to_dict() for a in alerts1]
    assert _records(res2) == _records(res1)
    # every episode is opened by an alert (the first naming its start), and ends once
    episodes = {(a.group["actor.id"], a.episode_start_ms) for a in alerts1}
    assert sorted((r.alert.group["actor.id"], r.start_ms) for r in res1) == sorted(episodes)
    assert all(any(a is r.alert for a in alerts1) and r.alert.fired_at_ms == r.start_ms for r in res1)


@SETTINGS
@given(
    aggregate=aggregates,
    n=st.integers(1, 20),
    window_s=st.sampled_from([30, 60]),
    suppress_s=st.sampled_from([None, 0, 45, 300]),
    resolve_after_extra_s=st.sampled_from([None, 0, 30, 400]),
    events=streams(),
)
def test_in_time_order_episodes_of_a_group_are_disjoint_and_hold_their_alerts(
    aggregate: Any, n: int, window_s: int, suppress_s: int | None, resolve_after_extra_s: int | None,
    events: list[tuple[dict[str, Any], int]],
) -> None:  # fmt: skip
    effective_suppress = window_s if suppress_s is None else suppress_s
    ra = None if resolve_after_extra_s is None else effective_suppress + resolve_after_extra_s
    rs = ruleset(rule_yaml(aggregate, "gte", n, window_s, suppress_s, ra))
    ordered = sorted(events, key=lambda p: p[1])
    alerts, resolutions = _episodes(Engine(rs), ordered, list(range(len(ordered) + 1)))
    by_start = {(r.alert.group["actor.id"], r.start_ms): r for r in resolutions}
    assert len(by_start) == len(resolutions)
    for a in alerts:
        r = by_start[(a.group["actor.id"], a.episode_start_ms)]
        assert r.start_ms <= a.fired_at_ms <= r.last_hold_ms < r.resolved_at_ms
        assert r.resolved_at_ms - r.last_hold_ms == rs.rules[0].spec.resolve_after_ms
    for actor in ACTORS:
        mine = sorted((r for r in resolutions if r.alert.group["actor.id"] == actor), key=lambda r: r.start_ms)
        for before, after in itertools.pairwise(mine):
            assert after.start_ms > before.resolved_at_ms


# -- generated dispatch against the plain closures -------------------------------------

FIELDS = ["action", "actor.type", "resource.name", "n", "tags", "ip", "x.y.z"]
VALUES: list[Any] = ["select", "export", "vendor", "customers", "10.0.0.7", 3, 7.5, True, None, ["pii", "x"], {"k": 1}]


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    match: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(FIELDS), min_size=0, max_size=3, unique=True)):
        op = draw(st.sampled_from(["eq", "ne", "in", "not_in", "exists", "contains", "gt", "regex", "cidr"]))
        if op in ("eq", "ne"):
            arg: Any = draw(st.sampled_from(["select", "export", "vendor", "customers", 3, True]))
        elif op in ("in", "not_in"):
            arg = draw(st.lists(st.sampled_from(["select", "export", "customers", "vendor", 3]), min_size=1, max_size=3))
        elif op == "exists":
            arg = draw(st.booleans())
        elif op == "contains":
            arg = draw(st.sampled_from(["pii", "sel", "x"]))
        elif op == "gt":
            arg = draw(st.sampled_from([2, "m"]))
        elif op == "regex":
            arg = draw(st.sampled_from(["^sel", "port$", "\\d+"]))
        else:
            arg = "10.0.0.0/8"
        match[path] = {op: arg}
    return match


def _set(e: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for p in parents:
        e = e.setdefault(p, {})
    e[leaf] = value


@st.composite
def field_events(draw: st.DrawFn) -> list[tuple[dict[str, Any], int]]:
    out = []
    for i in range(draw(st.integers(1, 40))):
        e: dict[str, Any] = {"ts": T0 + i * SEC, "actor": {"id": draw(st.sampled_from(ACTORS))}}
        for path in draw(st.lists(st.sampled_from(FIELDS), max_size=len(FIELDS), unique=True)):
            _set(e, path, draw(st.sampled_from(VALUES)))
        out.append((e, T0 + i * SEC))
    return out


@SETTINGS
@given(matches=st.lists(conditions(), min_size=1, max_size=4), events=field_events())
def test_generated_dispatch_matches_the_plain_closures(
    matches: list[dict[str, Any]], events: list[tuple[dict[str, Any], int]]
) -> None:
    import orjson

    rules = [
        {"id": f"r{i}", "severity": "low", "match": m, "group_by": ["actor.id"], "window": "1m"}
        for i, m in enumerate(matches)
    ]
    text = "rules:\n" + "".join(f"  - {orjson.dumps(r).decode()}\n" for r in rules)
    fast, plain = Engine(ruleset(text)), Engine(ruleset(text), generated=False)
    key = lambda a: (a.fired_at_ms, a.rule)  # noqa: E731 - rule order within an event may differ
    assert sorted(map(key, run(fast, events))) == sorted(map(key, run(plain, events)))
    assert [s.matches for s in fast.states] == [s.matches for s in plain.states]
    assert [s.mismatch.value for s in fast.states] == [s.mismatch.value for s in plain.states]


# -- arrival order within the lateness -------------------------------------------------

LATENESS = 10 * SEC


@st.composite
def incidents(draw: st.DrawFn) -> tuple[str, list[tuple[dict[str, Any], int]], int]:
    """Bursts per actor, separated by more than suppress + 2 x lateness, in time order."""
    window_s = draw(st.sampled_from([30, 60]))
    suppress = window_s * SEC + 3 * LATENESS  # bursts fit within suppress - 2 x lateness
    aggregate = draw(aggregates)
    op = draw(st.sampled_from(["gt", "gte"]))
    n = draw(st.integers(1, 8))
    text = rule_yaml(aggregate, op, n, window_s, suppress // SEC)
    events = []
    for actor in ACTORS:
        t = T0 + draw(st.integers(0, 30 * SEC))
        for _ in range(draw(st.integers(0, 3))):
            for _ in range(draw(st.integers(1, 12))):
                t += draw(st.integers(0, window_s * SEC // 12))
                e = {"ts": t, "actor": {"id": actor}, "rows": draw(st.integers(0, 5)), "cust": draw(st.integers(0, 9))}
                events.append((e, t))
            t += suppress + 2 * LATENESS + window_s * SEC + draw(st.integers(1, 60 * SEC))
    events.sort(key=lambda p: p[1])
    return text, events, draw(st.integers(0, 2**32))


@SETTINGS
@given(case=incidents())
def test_arrival_order_within_the_lateness_keeps_every_alert(
    case: tuple[str, list[tuple[dict[str, Any], int]], int],
) -> None:
    text, events, seed = case
    rng = random.Random(seed)
    # Arrival = event time + a delay under the lateness: no event ever arrives more than
    # the lateness behind the newest event already seen.
    shuffled = sorted(events, key=lambda p: p[1] + rng.randrange(LATENESS))
    options = EngineOptions(allowed_lateness_ms=LATENESS)
    ordered = run(Engine(ruleset(text), options), events)
    arrived = run(Engine(ruleset(text), options), shuffled, batch=7)
    assert sorted((a.rule, str(a.group)) for a in arrived) == sorted((a.rule, str(a.group)) for a in ordered)
    by_group: dict[str, list[int]] = {}
    for a in arrived:
        by_group.setdefault(str(a.group), []).append(a.fired_at_ms)
    for a in ordered:
        moved = min(abs(t - a.fired_at_ms) for t in by_group[str(a.group)])
        assert moved <= LATENESS
