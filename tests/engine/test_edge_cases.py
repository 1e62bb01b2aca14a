"""Edge cases found in review: each test pins one subtle point of the exact semantics
(issue #2, README "Semantics") that an earlier version of the engine got wrong."""

from __future__ import annotations

import hashlib

import orjson

from monitor.decode import Decoder
from monitor.timeparse import parse_ts
from tests.support.engine import MIN, T0, engine, ev, rule, run

SEC = 1000


def counting(**extra: object) -> str:
    return rule(group_by=["actor.id"], **extra)


# -- 1. float sums drift in the running total -----------------------------------------


def test_float_sum_window_value_is_the_sum_of_the_events_inside() -> None:
    # The window ending at 60s holds buckets 1..60: the 0.2 and the 0, i.e. exactly 0.2,
    # which is not > 0.2. The running total subtracts the 0.1 that left and keeps
    # 0.1 + 0.2 - 0.1 = 0.20000000000000004, so it fires.
    eng = engine(
        counting(window="1m", aggregate={"sum": "rows"}, threshold={"gt": 0.2}, suppress="0s")
    )
    alerts = run(eng, [ev(T0, rows=0.1), ev(T0 + 30 * SEC, rows=0.2), ev(T0 + 60 * SEC, rows=0)])
    assert [a.fired_at_ms - T0 for a in alerts] == [30 * SEC]


# -- 2. distinct conflates JSON values of different types ------------------------------


def test_distinct_counts_true_and_1_as_two_values() -> None:
    # JSON true and 1 are different values; a Python set holds them as one (True == 1).
    eng = engine(counting(window="1m", aggregate={"distinct": "x"}, threshold={"gte": 2}))
    alerts = run(eng, [ev(T0, x=1), ev(T0 + 1, x=True)])
    assert [a.value for a in alerts] == [2]


def test_distinct_sketch_counts_text_1_and_number_1_as_two_values() -> None:
    # Past the exact limit, hash64 hashes "1".encode() and orjson.dumps(1): both b"1".
    eng = engine(
        counting(window="1m", aggregate={"distinct": "x"}, threshold={"gte": 2}),
        distinct_exact_limit=1,
    )
    alerts = run(eng, [ev(T0, x="1"), ev(T0 + 1, x=1)])
    assert eng.states[0].approximations == 1
    assert [a.value for a in alerts] == [2]


# -- 3. distinct never returns to exact once its buckets have expired ------------------


def test_distinct_is_exact_again_once_the_approximated_buckets_have_expired() -> None:
    # 60 values in the first second switch the group to HyperLogLog (limit 50). Two minutes
    # later those buckets are pruned and the window holds 30 values, under the limit, so
    # the value must be exact again: 30 >= 30 fires. The sketch estimates 29.
    eng = engine(
        counting(window="1m", aggregate={"distinct": "customer_id"}, threshold={"gte": 30}),
        distinct_exact_limit=50,
    )
    burst = [ev(T0 + i, customer_id=f"p{i}") for i in range(60)]
    later = [ev(T0 + 2 * MIN + i, customer_id=f"c{i}") for i in range(1, 31)]
    alerts = run(eng, burst + later, batch=10)
    assert [(a.value, a.fired_at_ms - T0) for a in alerts] == [(30, 29), (30, 2 * MIN + 30)]


# -- 4. group keys conflate JSON values of different types -----------------------------


def test_groups_true_and_1_are_different_groups() -> None:
    eng = engine(counting(window="1m", threshold={"gte": 2}))
    assert run(eng, [ev(T0, 1), ev(T0 + 1, True)]) == []
    assert len(eng.states[0].groups) == 2


def test_alert_group_and_id_carry_an_object_group_value_as_json_not_as_text() -> None:
    # README: id over "each group value as JSON". An object/list value is keyed by its
    # canonical JSON *text*, which then appears in the alert as a string and is
    # JSON-encoded a second time for the id.
    eng = engine(rule(group_by=["tags"]))
    (alert,) = run(eng, [ev(T0, tags=["a", "b"])])
    assert alert.group == {"tags": ["a", "b"]}
    expected = hashlib.sha256(
        b"\x1f".join([b"r", orjson.dumps(["a", "b"]), str(T0).encode()])
    ).hexdigest()[:16]
    assert alert.id == expected


# -- 5. the group cap counts groups that Forgetting has already dropped ----------------


def test_the_group_cap_never_evicts_a_live_group_for_a_forgotten_one() -> None:
    # horizon = max(1m, 5m, resolve_after 5m) + 1m = 6m. b fires at 5m; a (new group, not late) fires at 0.
    # When c arrives at 6m+1ms, a is 6m+1ms behind the clock: forgotten by the spec, so
    # only b and c remain, within the cap of 2. The code evicts b (least recently touched)
    # and keeps the dead a, so b's next event at 9m is no longer suppressed by its 5m fire.
    eng = engine(
        counting(window="1m", suppress="5m", resolve_after="5m"), allowed_lateness_ms=MIN, max_groups_per_rule=2
    )
    events = [ev(T0 + 5 * MIN, "b"), ev(T0, "a"), ev(T0 + 6 * MIN + 1, "c"), ev(T0 + 9 * MIN, "b")]
    alerts = run(eng, events)
    assert [(a.group["actor.id"], a.fired_at_ms - T0) for a in alerts] == [
        ("b", 5 * MIN), ("a", 0), ("c", 6 * MIN + 1),
    ]  # fmt: skip
    assert eng.states[0].evictions == 0


# -- 6. suppression for very late events of rules without a window ---------------------


def test_unwindowed_very_late_event_is_suppressed_by_an_earlier_fire_within_suppress() -> None:
    # Rules without a window still evaluate events older than the lateness. The group
    # fires at 0 and 16m (the 8m event, suppressed, keeps it from being forgotten); an
    # event at 5m, 11m late, is within suppress (10m) of the fire at 0 and stays quiet.
    eng = engine(counting(suppress="10m"), allowed_lateness_ms=MIN)
    alerts = run(eng, [ev(T0), ev(T0 + 8 * MIN), ev(T0 + 16 * MIN), ev(T0 + 5 * MIN)])
    assert [a.fired_at_ms - T0 for a in alerts] == [0, 16 * MIN]


def test_unwindowed_group_is_forgotten_after_the_horizon_like_any_other() -> None:
    # horizon = resolve_after 15m (its default) + lateness 1m: the fire at 0 is gone with
    # its group by 20m.
    eng = engine(counting(suppress="10m"), allowed_lateness_ms=MIN)
    alerts = run(eng, [ev(T0), ev(T0 + 20 * MIN), ev(T0 + 5 * MIN)])
    assert [a.fired_at_ms - T0 for a in alerts] == [0, 20 * MIN, 5 * MIN]


# -- 7. timestamps ---------------------------------------------------------------------


def test_year_0000_is_rejected_as_bad_time_by_the_decoder() -> None:
    # parse_ts rejects it (outside years 1-9999), but the decoder calls parse_str, whose
    # "Z" and fast paths skip the range check. The event then reaches the engine and
    # Alert.to_dict() raises in format_ts ("year 0 is out of range").
    good, bad = Decoder().decode(
        [b'{"ts": "0000-01-01T00:00:00Z"}', b'{"ts": "0000-01-01T00:00:00.000Z"}']
    )
    assert good == []
    assert bad == [(0, "bad_time"), (1, "bad_time")]


def test_an_alert_from_a_year_0000_event_never_raises() -> None:
    good, _ = Decoder().decode([b'{"ts": "0000-01-01T00:00:01Z", "actor": {"id": "a"}}'])
    eng = engine(counting())
    for alert in eng.process(good):
        alert.to_dict()  # today: ValueError, year 0 is out of range


def test_one_instant_as_text_and_as_epoch_seconds_is_the_same_millisecond() -> None:
    # Text fractions are truncated to ms; epoch seconds are rounded. At a bucket edge the
    # same instant lands in different buckets depending on how the producer wrote it.
    assert parse_ts(1_795_737_600.9996) == parse_ts("2026-11-27T00:00:00.9996Z")


# -- 8. generated dispatch against reference() ------------------------------------------


def test_generated_dispatch_emits_one_event_s_alerts_in_rule_order_like_reference() -> None:
    # r0 has no index (runs in the generated loop's "always" block, last); r1 is indexed
    # on action. reference() applies rules in rule order.
    text = (
        "rules:\n"
        '  - {"id": "r0", "severity": "low", "match": {"rows": {"gt": 0}}}\n'
        '  - {"id": "r1", "severity": "low", "match": {"action": "select"}}\n'
    )
    events = [ev(T0, action="select", rows=5)]
    fast = [a.rule for a in run(engine(text), events)]
    plain = [a.rule for a in run(engine(text, generated=False), events)]
    assert plain == ["r0", "r1"]
    assert fast == plain


# -- subtle behaviours worth keeping (these pass) --------------------------------------


def test_late_event_in_the_newest_bucket_fires_at_the_group_s_newest_time() -> None:
    # The window ending at a late event's own time includes later events of its bucket,
    # so fired_at is the newest arrived event inside it, not the late event's time.
    eng = engine(counting(window="1m", threshold={"gte": 2}))
    (alert,) = run(eng, [ev(T0 + 500), ev(T0 + 200)])
    assert alert.fired_at_ms == T0 + 500
    assert (alert.window_start_ms, alert.window_end_ms) == (T0 - 59 * SEC, T0 + SEC)


def test_late_event_is_judged_against_the_group_s_newest_with_lateness_inclusive() -> None:
    # Exactly allowed_lateness older is allowed; 1 ms more is late.
    eng = engine(counting(window="1h", threshold={"gte": 2}))
    assert len(run(eng, [ev(T0 + MIN), ev(T0)])) == 1
    eng = engine(counting(window="1h", threshold={"gte": 2}))
    assert run(eng, [ev(T0 + MIN + 1), ev(T0)]) == []
    assert eng.states[0].late == 1


def test_a_late_value_outside_the_running_window_does_not_leak_into_max() -> None:
    # 9 at 0s; 3 at 61s pushes bucket 0 out (window ending at 61s is buckets 2..61).
    # A late 9 at 1.5s (59.5s behind, allowed) lands in bucket 1, outside that window; its
    # own window (buckets -58..1) holds both 9s and fires at its newest, 1.5s. The running
    # max must stay 3: the event at 62s does not fire.
    eng = engine(
        counting(window="1m", aggregate={"max": "rows"}, threshold={"gte": 9}, suppress="0s")
    )
    events = [
        ev(T0, rows=9),
        ev(T0 + 61 * SEC, rows=3),
        ev(T0 + 1500, rows=9),
        ev(T0 + 62 * SEC, rows=3),
    ]
    assert [(a.value, a.fired_at_ms - T0) for a in run(eng, events)] == [(9, 0), (9, 1500)]
