"""Hostile single events (issue 6): numbers at the float limit, values nested deep as
keys, times at the calendar's edges, and the group cap as evasion. Each test is a
reproduction that crashed or evaded before the fix; README "Limits" states the bounds."""

from __future__ import annotations

import gc
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import monitor.replay
from monitor.cli import main
from monitor.engine.evicted import DEPTH, MAX_SPANS, WIDTH
from monitor.engine.sums import SUM_BOUND, saturating_sum
from monitor.event import KEY_MAX_DEPTH, KEY_MAX_JSON, TOO_LARGE, JsonKey, hashable
from monitor.telemetry import Metrics, Telemetry, configure_logging
from tests.support.engine import T0, engine, ev, rule, run

SEC = 1000
BIG = 1.7e308


def summing(**extra: object) -> str:
    body: dict[str, Any] = {
        "group_by": ["actor.id"], "window": "10m", "aggregate": {"sum": "rows"}, "threshold": {"gte": 1.75e308},
    }  # fmt: skip
    return rule(**{**body, **extra})


def nested(depth: int) -> Any:
    v: Any = "x"
    for _ in range(depth):
        v = [v]
    return v


# -- numbers at the edges ----------------------------------------------------------------


def test_a_sum_past_the_float_limit_saturates_and_says_so() -> None:
    # fsum raised OverflowError ("intermediate overflow") on the second event.
    eng = engine(summing())
    alerts = run(eng, [ev(T0, rows=BIG), ev(T0 + SEC, rows=BIG)])
    assert [a.value for a in alerts] == [SUM_BOUND]
    d = alerts[0].to_dict()
    assert d["saturated"] is True and d["value"] == SUM_BOUND
    assert eng.states[0].saturations >= 1
    json.loads(alerts[0].to_json())  # a plain JSON number, not Infinity


def test_a_sum_that_left_the_float_range_and_came_back_is_exact() -> None:
    # Three buckets: BIG + BIG - BIG is BIG exactly, though fsum overflows on the way.
    eng = engine(summing(threshold={"gte": 1e308}, suppress="0s"))
    alerts = run(eng, [ev(T0, rows=BIG), ev(T0 + 20 * SEC, rows=BIG), ev(T0 + 40 * SEC, rows=-BIG)])
    assert [a.value for a in alerts] == [BIG, SUM_BOUND, BIG]
    assert [a.saturated for a in alerts] == [False, True, False]
    assert "saturated" not in alerts[2].to_dict()


def test_buckets_overflowed_both_ways_do_not_raise() -> None:
    # One bucket's own sum is +inf, another's -inf: fsum raised ValueError (inf + -inf).
    eng = engine(summing(threshold={"lt": 0}, suppress="0s"))
    events = [ev(T0, rows=BIG), ev(T0 + 1, rows=BIG), ev(T0 + 20 * SEC, rows=-BIG), ev(T0 + 20 * SEC + 1, rows=-BIG)]
    alerts = run(eng, events)
    assert all(a.saturated for a in alerts)
    assert saturating_sum([float("inf"), float("-inf")]) == (SUM_BOUND, True)
    assert saturating_sum([float("-inf"), 1.0]) == (-SUM_BOUND, True)


def test_late_events_recompute_a_saturating_window_without_raising() -> None:
    eng = engine(summing(suppress="0s"))
    alerts = run(eng, [ev(T0 + 30 * SEC, rows=1.0), ev(T0 + 10 * SEC, rows=BIG), ev(T0 + 5 * SEC, rows=BIG)])
    assert [a.value for a in alerts] == [SUM_BOUND]


def test_integer_sums_beyond_64_bits_and_beyond_floats() -> None:
    eng = engine(summing(threshold={"gte": 1.8e19}, suppress="0s"))
    alerts = run(eng, [ev(T0, rows=2**63), ev(T0 + 1, rows=2**63), ev(T0 + 2, rows=10**400)])
    assert [a.to_dict()["value"] for a in alerts] == [float(2**64), SUM_BOUND]
    assert [a.saturated for a in alerts] == [False, True]
    for a in alerts:
        a.to_json()  # float(10**400) raised OverflowError


def test_saturated_sums_are_a_metric() -> None:
    eng = engine(summing())
    run(eng, [ev(T0, rows=BIG), ev(T0 + SEC, rows=BIG)])
    metrics = Metrics(CollectorRegistry())
    Telemetry(metrics, configure_logging("json", "info", io.StringIO())).batch_done(eng, 0.01, None, None)
    assert metrics.registry.get_sample_value("exfil_monitor_saturated_sums_total", {"rule": "r"}) >= 1


# -- values used as keys -------------------------------------------------------------------


def test_key_bounds() -> None:
    assert isinstance(hashable(nested(KEY_MAX_DEPTH)), JsonKey)
    assert hashable(nested(KEY_MAX_DEPTH + 1)) is TOO_LARGE
    assert hashable({"a": nested(KEY_MAX_DEPTH - 1)}) is not TOO_LARGE
    assert hashable(["x" * (KEY_MAX_JSON - 4)]) is not TOO_LARGE  # ["..."] is exactly 1 KiB
    assert hashable(["x" * (KEY_MAX_JSON - 3)]) is TOO_LARGE
    assert hashable(list(range(10**6))) is TOO_LARGE
    assert hashable("y" * 10_000) == "y" * 10_000  # text stays on the fast path, unbounded here


@pytest.mark.parametrize("generated", [True, False])
def test_a_group_value_nested_hundreds_deep_is_a_type_mismatch(generated: bool) -> None:
    # orjson.dumps raised "Recursion limit reached" making the group key.
    eng = engine(rule(group_by=["actor.id"], window="1m", threshold={"gte": 1}), generated=generated)
    alerts = run(eng, [ev(T0, actor=nested(500)), ev(T0 + 1, actor="b")])
    assert [a.group for a in alerts] == [{"actor.id": "b"}]
    assert eng.states[0].mismatch.value == 1


def test_several_group_values_and_windowless_rules_bound_keys_too() -> None:
    eng = engine(rule(group_by=["actor.id", "x"], suppress="1m"))
    alerts = run(eng, [ev(T0, x=nested(300)), ev(T0 + 1, x={"k": "v"})])
    assert [a.group["x"] for a in alerts] == [{"k": "v"}]
    assert eng.states[0].mismatch.value == 1


def test_a_distinct_value_nested_hundreds_deep_is_a_type_mismatch() -> None:
    eng = engine(rule(group_by=["actor.id"], window="1m", aggregate={"distinct": "c"}, threshold={"gte": 2}))
    alerts = run(eng, [ev(T0, c=nested(400)), ev(T0 + 1, c=[1]), ev(T0 + 2, c=[2])])
    assert [a.value for a in alerts] == [2]
    assert eng.states[0].mismatch.value == 1


# -- replay: the real code path ------------------------------------------------------------


@pytest.fixture
def replay(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    threshold = gc.get_threshold()

    def run_replay(rules: str, events: list[Any], *args: str) -> tuple[int, list[dict[str, Any]], str]:
        monkeypatch.setattr(monitor.replay.stdout_emitter, "__defaults__", (sys.stdout,))
        (tmp_path / "rules.yaml").write_text(rules)
        lines = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
        (tmp_path / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        code = main(["replay", "--rules", str(tmp_path / "rules.yaml"), *args, str(tmp_path / "events.jsonl")])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, [json.loads(line) for line in out.splitlines()], err

    yield run_replay
    gc.unfreeze()
    gc.set_threshold(*threshold)
    structlog.reset_defaults()


SCHEDULED = """\
schedules:
  office: {timezone: America/Chicago, days: [mon, tue, wed, thu, fri], hours: ["08:00-18:00"]}
rules:
  - id: off-hours
    severity: high
    group_by: [actor]
    when: {outside: office}
    window: 10m
    threshold: {gte: 20}
"""


def test_replay_of_hostile_numbers_and_nesting(replay: Any) -> None:
    rules = "rules:\n  - " + summing(group_by=["actor"]).split("- ", 1)[1]
    events = [
        {"ts": T0, "actor": "a", "rows": BIG},
        b'{"ts": %d, "actor": "a", "rows": 1e999}' % T0,  # orjson: invalid JSON, not inf
        {"ts": T0 + 1, "actor": "a", "rows": BIG},
        b'{"ts": %d, "actor": %s"x"%s, "rows": 1}' % (T0 + 2, b"[" * 600, b"]" * 600),
    ]
    code, alerts, err = replay(rules, events)
    assert code == 0
    assert [(a["value"], a.get("saturated")) for a in alerts] == [(SUM_BOUND, True)]
    assert "invalid_json: 1" in err


@pytest.mark.parametrize("t", ["0001-01-01T00:00:00Z", -62_135_596_800, "1969-12-31T23:59:59.999Z"])
def test_replay_rejects_events_before_1970_before_any_rule(replay: Any, t: Any) -> None:
    # The schedule check raised OverflowError in year 1; 20 such events then raised while
    # formatting the window start.
    events = [{"ts": t, "actor": "a"} for _ in range(20)]
    code, alerts, err = replay(SCHEDULED, events)
    assert (code, alerts) == (0, [])
    assert "time_out_of_range: 20" in err


def test_replay_with_no_future_skew_rejects_year_9999(replay: Any) -> None:
    # With --max-future-skew 0s nothing is held back, and the window end overflowed to 10000.
    rules = "rules:\n  - " + rule(group_by=["actor"], window="1d", threshold={"gte": 1}).split("- ", 1)[1]
    events = [{"ts": "9999-12-31T23:59:59Z", "actor": "a"}, {"ts": "8999-12-31T23:59:59.999Z", "actor": "b"}]
    code, alerts, err = replay(rules, events, "--max-future-skew", "0s")
    assert code == 0
    assert [(a["group"], a["fired_at"], a["window_end"]) for a in alerts] == [
        ({"actor": "b"}, "8999-12-31T23:59:59.999Z", "9000-01-01T00:00:00.000Z")
    ]
    assert "time_out_of_range: 1" in err


def test_windows_of_millennia_around_accepted_times_format(replay: Any) -> None:
    rules = "rules:\n  - " + rule(group_by=["actor"], window="9999999d", threshold={"gte": 1}).split("- ", 1)[1]
    events = [{"ts": "1970-01-01T00:00:00Z", "actor": "a"}, {"ts": "8999-12-31T23:59:59.999Z", "actor": "b"}]
    code, alerts, _ = replay(rules, events, "--max-future-skew", "0s")
    assert code == 0 and len(alerts) == 2
    assert alerts[0]["window_start"] == "0001-01-01T00:00:00.000Z"  # shown clamped
    assert alerts[1]["window_end"] > alerts[1]["fired_at"] == "8999-12-31T23:59:59.999Z"


# -- eviction as evasion ---------------------------------------------------------------------


def reading(**extra: object) -> str:
    body: dict[str, Any] = {
        "window": "10m", "aggregate": {"sum": "rows"}, "threshold": {"gte": 5000}, **extra,
    }  # fmt: skip
    return rule(group_by=["actor.id"], **body)


def test_a_flood_of_fresh_groups_does_not_hide_an_insider() -> None:
    # 3,000 rows, a flood that evicts the insider's group, 3,000 rows: no alert before.
    eng = engine(reading(), max_groups_per_rule=100)
    flood = [ev(T0 + SEC + i, actor=f"fake{i}", rows=1) for i in range(1000)]
    alerts = run(eng, [ev(T0, actor="insider", rows=3000), *flood, ev(T0 + 2 * SEC, actor="insider", rows=3000)], batch=50)
    mine = [a for a in alerts if a.group == {"actor.id": "insider"}]
    assert [(a.value >= 6000, a.estimated, a.to_dict().get("estimated")) for a in mine] == [(True, True, True)]
    assert eng.states[0].evictions >= 900


def test_without_evictions_nothing_is_estimated() -> None:
    eng = engine(reading(), max_groups_per_rule=100)
    alerts = run(eng, [ev(T0, actor="insider", rows=3000), ev(T0 + SEC, actor="insider", rows=3000)])
    assert [(a.value, a.estimated) for a in alerts] == [(6000, False)]
    assert "estimated" not in alerts[0].to_dict()
    assert eng.states[0].evicted is None


def test_max_survives_eviction() -> None:
    eng = engine(reading(aggregate={"max": "rows"}, threshold={"gte": 100}), max_groups_per_rule=2)
    events = [ev(T0, actor="i", rows=150), *(ev(T0 + 1 + n, actor=f"f{n}", rows=1) for n in range(10))]
    alerts = run(eng, [*events, ev(T0 + 100, actor="i", rows=1)])
    # eviction forgot the fire, so the returning group alerts again, from the estimate
    assert [(a.group["actor.id"], a.estimated) for a in alerts] == [("i", False), ("i", True)]
    eng2 = engine(reading(aggregate={"max": "rows"}, threshold={"gte": 100}, suppress="0s"), max_groups_per_rule=2)
    alerts = run(eng2, [*events, ev(T0 + 100, actor="i", rows=1)])
    assert [(a.value, a.estimated) for a in alerts] == [(150, False), (150, True)]


def test_the_evicted_summary_is_bounded() -> None:
    eng = engine(reading(window="16m"), max_groups_per_rule=10)
    events = [ev(T0 + i * 7 * SEC, actor=f"f{i}", rows=1 + i % 7) for i in range(3000)]  # ~6 hours
    run(eng, events, batch=100)
    summary = eng.states[0].evicted
    assert summary is not None and 0 < len(summary.spans) <= MAX_SPANS
    assert summary.memory_bytes() <= MAX_SPANS * DEPTH * WIDTH * 8
    assert len(eng.states[0].groups) <= 10


@st.composite
def floods(draw: st.DrawFn) -> list[tuple[dict[str, Any], int]]:
    """The target's reads in time order, with floods of fresh or reused groups between."""
    t = T0
    out = []
    for i in range(draw(st.integers(1, 12))):
        t += draw(st.integers(0, 90 * SEC))
        out.append(({"ts": t, "actor": {"id": "target"}, "rows": draw(st.integers(0, 40))}, t))
        for j in range(draw(st.integers(0, 30))):
            t += draw(st.integers(0, 5 * SEC))
            who = draw(st.sampled_from(["fresh", "f0", "f1", "f2"]))
            actor = f"fresh{i}-{j}" if who == "fresh" else who
            out.append(({"ts": t, "actor": {"id": actor}, "rows": draw(st.integers(0, 40))}, t))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=floods(),
    aggregate=st.sampled_from(["count", {"sum": "rows"}, {"max": "rows"}]),
    n=st.integers(1, 120),
    cap=st.integers(1, 4),
    window_s=st.sampled_from([60, 300]),
)
def test_whatever_the_flood_a_group_crossing_its_threshold_fires(
    events: list[tuple[dict[str, Any], int]], aggregate: Any, n: int, cap: int, window_s: int
) -> None:
    eng = engine(
        rule(group_by=["actor.id"], window=f"{window_s}s", aggregate=aggregate, threshold={"gte": n}, suppress="0s"),
        max_groups_per_rule=cap,
    )
    res = window_s * SEC // 60
    fired = {a.fired_at_ms for a in run(eng, events, batch=7) if a.group == {"actor.id": "target"}}
    mine: list[tuple[int, int]] = []
    for e, ts in events:
        if e["actor"]["id"] != "target":
            continue
        mine.append((ts, 1 if aggregate == "count" else e["rows"]))
        low = (ts // res - 60) * res + res  # the window ending at this event's bucket
        inside = [v for t, v in mine if t >= low]
        value = max(inside) if aggregate == {"max": "rows"} else sum(inside)
        if value >= n:
            assert ts in fired, (ts, value)



def test_a_placeholder_naming_a_value_nested_past_the_encoder_limit_renders() -> None:
    from monitor.engine.alert import render

    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    text = render("read {details}", {}, lambda name: deep)
    assert text == "read [value not shown: nested too deep or a number too large]"
