"""Window, suppression, lateness and forgetting semantics, one behaviour per test."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from tests.support.engine import MIN, T0, engine, ev, fired, rule, run

SEC = 1000


def counting(**extra: object) -> str:
    return rule(group_by=["actor.id"], **extra)


# -- aggregates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aggregate", "values", "expected", "at"),
    [
        ("count", [5, 7, 9], 3, 2),
        ({"sum": "rows"}, [5, 7, 9], 21, 2),
        ({"max": "rows"}, [5, 7, 9], 9, 2),
        ({"distinct": "rows"}, [5, 5, 7], 2, 2),
        ({"distinct": "rows"}, [5, 7, 5], 2, 1),
    ],
)
def test_each_aggregate_over_a_window(aggregate: object, values: list[int], expected: int, at: int) -> None:
    eng = engine(counting(window="1m", aggregate=aggregate, threshold={"gte": expected}))
    events = [ev(T0 + i * SEC, rows=v) for i, v in enumerate(values)]
    assert fired(run(eng, events)) == [("r", expected, at * SEC)]


@pytest.mark.parametrize(
    ("aggregate", "rows", "value"),
    [("count", 10, 1), ({"sum": "rows"}, 10, 10), ({"max": "rows"}, 10, 10), ({"distinct": "rows"}, 10, 1)],
)
def test_without_a_window_the_value_is_the_single_event(aggregate: object, rows: int, value: int) -> None:
    eng = engine(counting(aggregate=aggregate))
    assert fired(run(eng, [ev(T0, rows=rows)])) == [("r", value, 0)]


def test_sum_skips_events_without_a_number_and_counts_the_mismatch() -> None:
    eng = engine(counting(window="1m", aggregate={"sum": "rows"}, threshold={"gte": 10}))
    alerts = run(eng, [ev(T0, rows="9"), ev(T0 + 1, rows=None), ev(T0 + 2), ev(T0 + 3, rows=true_value())])
    assert alerts == []
    assert eng.states[0].mismatch.value == 2  # the text and the boolean; absent and null are not mismatches


def true_value() -> bool:
    return True


def test_max_forgets_values_that_leave_the_window() -> None:
    eng = engine(counting(window="1m", aggregate={"max": "rows"}, threshold={"gte": 9}, suppress="0s"))
    alerts = run(eng, [ev(T0, rows=9), ev(T0 + 61 * SEC, rows=3), ev(T0 + 62 * SEC, rows=9)])
    assert fired(alerts) == [("r", 9, 0), ("r", 9, 62 * SEC)]


def test_distinct_past_the_exact_limit_switches_to_an_estimate() -> None:
    eng = engine(
        counting(window="1h", aggregate={"distinct": "customer_id"}, threshold={"gte": 1_000_000}),
        distinct_exact_limit=100,
    )
    run(eng, [ev(T0 + i, customer_id=f"c{i}") for i in range(3000)], batch=500)
    state = eng.states[0]
    (group,) = state.groups.values()
    assert state.approximations == 1
    assert group.refs is None and group.sketch is not None
    assert abs(group.total - 3000) < 3000 * 0.1
    assert sum(len(b[0].registers) for b in group.buckets.values()) <= 60 * 1024  # bounded by buckets


def test_distinct_stays_exact_under_the_limit() -> None:
    eng = engine(counting(window="1h", aggregate={"distinct": "customer_id"}, threshold={"gte": 99}))
    alerts = run(eng, [ev(T0 + i * SEC, customer_id=f"c{i % 99}") for i in range(500)], batch=50)
    assert [a.value for a in alerts] == [99]
    assert eng.states[0].approximations == 0


# -- window edges ----------------------------------------------------------------------


def test_an_event_exactly_window_old_is_outside() -> None:
    eng = engine(counting(window="1m", threshold={"gte": 2}))
    assert run(eng, [ev(T0), ev(T0 + MIN)]) == []


def test_an_event_just_under_window_old_is_inside() -> None:
    eng = engine(counting(window="1m", threshold={"gte": 2}))
    assert fired(run(eng, [ev(T0), ev(T0 + MIN - 1)])) == [("r", 2, MIN - 1)]


def test_buckets_decide_membership_on_their_boundaries() -> None:
    # R = 1s. The window ending at 60.999s covers buckets 1..60: 0.999s is in bucket 0, out;
    # 1.000s opens bucket 1, in, although both are about 60 seconds old.
    eng = engine(counting(window="1m", threshold={"gte": 2}))
    assert run(eng, [ev(T0 + 999), ev(T0 + 60_999)]) == []
    eng = engine(counting(window="1m", threshold={"gte": 2}))
    (alert,) = run(eng, [ev(T0 + 1000), ev(T0 + 60_999)])
    assert (alert.window_start_ms, alert.window_end_ms) == (T0 + 1000, T0 + 61_000)


def test_resolution_sets_the_bucket_width() -> None:
    eng = engine(counting(window="10m", resolution="5m", threshold={"gte": 2}))
    # buckets [0,5m) and [5m,10m): at 10m the window covers buckets 1..2 only
    assert run(eng, [ev(T0 + 4 * MIN), ev(T0 + 10 * MIN)]) == []
    eng = engine(counting(window="10m", resolution="5m", threshold={"gte": 2}))
    assert len(run(eng, [ev(T0 + 5 * MIN), ev(T0 + 14 * MIN)])) == 1


def test_groups_are_counted_apart() -> None:
    eng = engine(counting(window="1m", threshold={"gte": 2}))
    assert run(eng, [ev(T0, "a"), ev(T0 + 1, "b")]) == []
    assert [a.group for a in run(eng, [ev(T0 + 2, "b")])] == [{"actor.id": "b"}]


# -- suppression -----------------------------------------------------------------------


def test_suppression_holds_after_a_fire_and_ends_at_exactly_suppress() -> None:
    eng = engine(counting(suppress="10m"))
    alerts = run(eng, [ev(T0), ev(T0 + 5 * MIN), ev(T0 + 10 * MIN - 1), ev(T0 + 10 * MIN)])
    assert [a.fired_at_ms - T0 for a in alerts] == [0, 10 * MIN]


def test_suppression_holds_before_a_fire_for_older_events() -> None:
    eng = engine(counting(suppress="10m"), allowed_lateness_ms=30 * MIN)
    alerts = run(eng, [ev(T0 + 20 * MIN), ev(T0 + 15 * MIN), ev(T0 + 10 * MIN + 1), ev(T0 + 10 * MIN)])
    assert [a.fired_at_ms - T0 for a in alerts] == [20 * MIN, 10 * MIN]


def test_windowed_late_event_is_suppressed_by_a_later_fire() -> None:
    eng = engine(counting(window="1m", suppress="10m"), allowed_lateness_ms=5 * MIN)
    alerts = run(eng, [ev(T0 + 10 * MIN), ev(T0 + 6 * MIN)])
    assert [a.fired_at_ms - T0 for a in alerts] == [10 * MIN]


def test_default_suppress_is_the_window() -> None:
    eng = engine(counting(window="1m"))
    alerts = run(eng, [ev(T0 + i * 10 * SEC) for i in range(13)])
    assert [a.fired_at_ms - T0 for a in alerts] == [0, 60 * SEC, 120 * SEC]


# -- lateness --------------------------------------------------------------------------


def test_events_older_than_the_lateness_are_dropped_and_counted() -> None:
    eng = engine(counting(window="1h", threshold={"gte": 2}))
    assert run(eng, [ev(T0 + 10 * MIN), ev(T0 + 9 * MIN - 1)]) == []
    assert eng.states[0].late == 1


def test_unwindowed_rules_still_evaluate_very_late_events() -> None:
    eng = engine(counting())
    assert len(run(eng, [ev(T0 + 10 * MIN), ev(T0)])) == 2
    assert eng.states[0].late == 0


def test_a_late_event_can_complete_a_later_window() -> None:
    eng = engine(counting(window="1m", threshold={"gte": 3}))
    a, b, late = ev(T0 + 10 * MIN), ev(T0 + 10 * MIN + 30 * SEC), ev(T0 + 10 * MIN - 500)
    (alert,) = run(eng, [a, b, late])
    # its own window holds one event, the next bucket's two, the newest bucket's three
    assert alert.fired_at_ms == b[1]
    assert alert.value == 3
    assert alert.window_end_ms == T0 + 10 * MIN + 31 * SEC


def test_lateness_is_per_group() -> None:
    eng = engine(counting(window="1h", threshold={"gte": 2}))
    alerts = run(eng, [ev(T0 + 30 * MIN, "fast"), ev(T0, "slow"), ev(T0 + 1, "slow")])
    assert [a.group["actor.id"] for a in alerts] == ["slow"]
    assert eng.states[0].late == 0


# -- forgetting and bounds -------------------------------------------------------------


@pytest.mark.parametrize(
    ("resolve_after", "horizon"),
    [("10m", 11 * MIN), ("20m", 21 * MIN), (None, 16 * MIN)],
)
def test_state_is_forgotten_only_after_the_horizon(resolve_after: str | None, horizon: int) -> None:
    # horizon = max(window 1m, suppress 10m, resolve_after) + lateness 1m; resolve_after
    # defaults to max(15m, suppress)
    extra = {} if resolve_after is None else {"resolve_after": resolve_after}

    def replay(clock_event_at: int) -> list[int]:
        eng = engine(counting(window="1m", suppress="10m", **extra), allowed_lateness_ms=MIN)
        events = [ev(T0, "a"), ev(T0 + clock_event_at, "b"), ev(T0 + 30 * SEC, "a")]
        alerts = run(eng, events, batch=len(events))  # one batch: no sweep in between
        return [x.fired_at_ms - T0 for x in alerts if x.group["actor.id"] == "a"]

    assert replay(horizon) == [0]  # kept: the second event of a is suppressed
    assert replay(horizon + 1) == [0, 30 * SEC]  # forgotten: it fires again


def test_idle_groups_are_swept_from_memory() -> None:
    eng = engine(counting(window="1m"))
    run(eng, [ev(T0 + i, f"actor-{i}") for i in range(100)], batch=100)
    assert eng.active_groups() == {"r": 100}
    run(eng, [ev(T0 + 17 * MIN, "late-riser")])  # past the horizon: resolve_after 15m + 1m
    assert eng.active_groups() == {"r": 1}


def test_the_group_cap_evicts_the_least_recently_active() -> None:
    eng = engine(counting(window="1h", threshold={"gte": 2}), max_groups_per_rule=2)
    run(eng, [ev(T0, "a"), ev(T0 + 1, "b"), ev(T0 + 2, "a"), ev(T0 + 3, "c")])
    state = eng.states[0]
    assert list(state.groups) == ["a", "c"]
    assert state.evictions == 1


def test_buckets_per_group_stay_bounded_by_the_window() -> None:
    eng = engine(counting(window="1m", aggregate={"sum": "rows"}, threshold={"gt": 10**12}))
    run(eng, [ev(T0 + i * 250, rows=1) for i in range(20_000)], batch=1000)
    (group,) = eng.states[0].groups.values()
    # 60 buckets in the window plus what the 60 s lateness can still reach
    assert len(group.buckets) <= 121


# -- alerts ----------------------------------------------------------------------------


def test_alert_carries_id_bounds_samples_and_rendered_summary() -> None:
    eng = engine(
        rule(
            group_by=["actor.id", "resource.name"],
            window="10m",
            aggregate={"sum": "rows"},
            threshold={"gt": 100},
            labels={"team": "security", "tier": 1},
            annotations={"summary": "{actor.id} read {value} rows of {resource.name} in {window} from {ip}"},
        )
    )
    events = [ev(T0 + i * MIN, "mallory", id=f"e{i}", rows=30, ip="10.1.2.3", resource={"name": "customers"})
              for i in range(7)]  # fmt: skip
    (alert,) = run(eng, events)
    gvals = [orjson.dumps("mallory"), orjson.dumps("customers")]
    expected_id = hashlib.sha256(b"\x1f".join([b"r", *gvals, str(T0 + 3 * MIN).encode()])).hexdigest()[:16]
    d = alert.to_dict()
    assert d["id"] == expected_id
    assert d["group"] == {"actor.id": "mallory", "resource.name": "customers"}
    assert (d["value"], d["event_count"], d["threshold"]) == (120, 4, {"gt": 100})
    assert d["fired_at"] == "2026-11-27T00:03:00.000Z"
    assert (d["window_start"], d["window_end"]) == ("2026-11-26T23:53:10.000Z", "2026-11-27T00:03:10.000Z")
    assert d["sample_event_ids"] == ["e0", "e1", "e2", "e3"]
    assert d["summary"] == "mallory read 120 rows of customers in 10m from 10.1.2.3"
    assert d["labels"] == {"team": "security", "tier": "1"}


def test_a_placeholder_with_nothing_to_fill_it_stays_visible() -> None:
    eng = engine(counting(annotations={"summary": "{actor.id} via {nope.missing}"}))
    (alert,) = run(eng, [ev(T0)])
    assert alert.summary == "a via {nope.missing}"


def test_disabled_rules_do_not_run() -> None:
    eng = engine(counting(enabled=False))
    assert run(eng, [ev(T0)]) == []
    assert eng.states == []


def test_an_alert_over_a_sum_beyond_64_bits_still_serialises() -> None:
    # Attacker-sized fields (each within what JSON decoding accepts) add up past 2**64.
    big = 2**64 - 1
    eng = engine(counting(window="1m", aggregate={"sum": "rows"}, threshold={"gt": 2e19}))
    (alert,) = run(eng, [ev(T0, rows=big), ev(T0 + 1, rows=big)])
    assert orjson.loads(alert.to_json())["value"] == float(2 * big)
