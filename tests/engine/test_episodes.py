"""Episodes (README "Semantics", Episodes): open, extend, resolve, finality, idle resolution."""

from __future__ import annotations

from typing import Any

from monitor.engine import Engine, Resolution
from tests.support.engine import MIN, T0, engine, ev, rule, run

SEC = 1000


def every_event(**extra: Any) -> str:
    """Every event holds (count >= 1 over 1m); suppress and resolve_after as given."""
    return rule(group_by=["actor.id"], window="1m", **extra)


def starts(alerts: list[Any]) -> list[tuple[int, int]]:
    """(fired_at, episode_start) offsets from T0."""
    return [(a.fired_at_ms - T0, a.episode_start_ms - T0) for a in alerts]


def ended(resolutions: list[Resolution]) -> list[tuple[str, int, int]]:
    """(actor, episode start, resolved_at) offsets from T0."""
    return [(r.alert.group["actor.id"], r.start_ms - T0, r.resolved_at_ms - T0) for r in resolutions]


def feed(eng: Engine, *events: tuple[dict[str, Any], int]) -> tuple[list[Any], list[Resolution]]:
    """Events one by one; the alerts, and the resolutions final after them."""
    alerts = run(eng, events)
    return alerts, eng.resolutions()


def test_an_alert_opens_an_episode_and_re_alerts_join_it() -> None:
    eng = engine(every_event(suppress="1m", resolve_after="5m"))
    alerts, res = feed(eng, ev(T0), ev(T0 + 30 * SEC), ev(T0 + 2 * MIN), ev(T0 + 4 * MIN))
    # fires at 0, 2m, 4m (suppress 1m); each within 5m of the last hold: one episode
    assert starts(alerts) == [(0, 0), (2 * MIN, 0), (4 * MIN, 0)]
    assert res == []
    (ep,) = eng.open_episodes()
    assert (ep.rule, ep.start_ms - T0, ep.last_hold_ms - T0, ep.resolved_at_ms - T0) == ("r", 0, 4 * MIN, 9 * MIN)
    assert ep.alert is alerts[0] and ep.record() == alerts[0].to_dict()


def test_suppressed_holds_extend_the_episode() -> None:
    # suppress = resolve_after = 10m: the fire at 0 suppresses 5m and 9m, which still
    # hold; they carry the episode to 19m, so the fire at 18m is a re-alert, not a new one
    eng = engine(every_event(suppress="10m", resolve_after="10m"))
    alerts, _ = feed(eng, ev(T0), ev(T0 + 5 * MIN), ev(T0 + 9 * MIN), ev(T0 + 18 * MIN))
    assert starts(alerts) == [(0, 0), (18 * MIN, 0)]
    (ep,) = eng.open_episodes()
    assert ep.resolved_at_ms == T0 + 28 * MIN


def test_without_the_suppressed_holds_the_same_fire_opens_a_new_episode() -> None:
    eng = engine(every_event(suppress="10m", resolve_after="10m"))
    alerts, res = feed(eng, ev(T0), ev(T0 + 18 * MIN))
    assert starts(alerts) == [(0, 0), (18 * MIN, 18 * MIN)]
    # the hold at 18m is beyond the first episode's reach (10m): it is over, final at once
    assert ended(res) == [("a", 0, 10 * MIN)]


def test_an_episode_resolves_when_the_clock_passes_resolved_at_plus_the_lateness() -> None:
    eng = engine(every_event(suppress="1m", resolve_after="5m"), allowed_lateness_ms=MIN)
    feed(eng, ev(T0, "a"))
    # resolved_at = 5m, final once the clock (another actor's events) passes 6m
    assert feed(eng, ev(T0 + 6 * MIN, "b"))[1] == []
    _, res = feed(eng, ev(T0 + 6 * MIN + 1, "b"))
    assert ended(res) == [("a", 0, 5 * MIN)]
    assert eng.resolutions() == []  # drained
    assert [ep.alert.group for ep in eng.open_episodes()] == [{"actor.id": "b"}]


def test_a_late_hold_within_the_lateness_extends_the_episode() -> None:
    # b moves the clock to 5m30s: past a's resolved_at (5m), not past it plus the lateness
    # (2m). a's event at 4m, from a slower source, holds within reach: it extends to 9m.
    eng = engine(every_event(suppress="1m", resolve_after="5m"), allowed_lateness_ms=2 * MIN)
    feed(eng, ev(T0, "a"), ev(T0 + 5 * MIN + 30 * SEC, "b"))
    alerts, res = feed(eng, ev(T0 + 4 * MIN, "a"))
    assert res == [] and starts(alerts) == [(4 * MIN, 0)]
    (ep,) = [ep for ep in eng.open_episodes() if ep.alert.group == {"actor.id": "a"}]
    assert ep.resolved_at_ms == T0 + 9 * MIN


def test_a_final_episode_never_reopens() -> None:
    # a rule without a window evaluates any event, however old: after a's episode is
    # final (clock 8m > 5m + 1m), a's event at 3m (within its old reach) opens a new one
    eng = engine(rule(group_by=["actor.id"], suppress="2m", resolve_after="5m"), allowed_lateness_ms=MIN)
    feed(eng, ev(T0, "a"))
    _, res = feed(eng, ev(T0 + 8 * MIN, "b"))
    assert ended(res) == [("a", 0, 5 * MIN)]
    alerts, res = feed(eng, ev(T0 + 3 * MIN, "a"))
    assert starts(alerts) == [(3 * MIN, 3 * MIN)] and res == []


def test_a_suppressed_hold_after_finality_opens_nothing() -> None:
    # a's event at 4m (1 row) keeps its group (newest 4m) but does not hold; when b moves
    # the clock past 6m, a's episode (resolved at 5m) is final. a's late 20 rows at 3m30s
    # then hold, suppressed by the fire at 0: they neither reopen nor open an episode.
    text = rule(group_by=["actor.id"], window="1m", aggregate={"sum": "rows"}, threshold={"gt": 10},
                suppress="5m", resolve_after="5m")  # fmt: skip
    eng = engine(text, allowed_lateness_ms=MIN)
    alerts, _ = feed(eng, ev(T0, "a", rows=20), ev(T0 + 4 * MIN, "a", rows=1))
    assert starts(alerts) == [(0, 0)]
    _, res = feed(eng, ev(T0 + 6 * MIN + 1, "b", rows=1))
    assert ended(res) == [("a", 0, 5 * MIN)]
    alerts, res = feed(eng, ev(T0 + 3 * MIN + 30 * SEC, "a", rows=20))
    assert (alerts, res) == ([], [])
    assert eng.open_episodes() == [] and eng.resolve_all() == []


def test_a_new_episode_after_a_resolution_fires_and_names_its_own_start() -> None:
    eng = engine(every_event(suppress="1m", resolve_after="5m"), allowed_lateness_ms=MIN)
    alerts, res = feed(eng, ev(T0), ev(T0 + 30 * MIN))
    assert starts(alerts) == [(0, 0), (30 * MIN, 30 * MIN)]
    assert ended(res) == [("a", 0, 5 * MIN)]
    assert alerts[0].id != alerts[1].id


def test_resolve_idle_resolves_at_the_same_resolved_at_and_only_when_passed() -> None:
    eng = engine(every_event(suppress="1m", resolve_after="5m"))
    feed(eng, ev(T0, "a"), ev(T0 + 2 * MIN, "b"))
    assert eng.resolve_idle(T0 + 5 * MIN - 1) == []
    assert ended(eng.resolve_idle(T0 + 5 * MIN)) == [("a", 0, 5 * MIN)]
    assert ended(eng.resolve_idle(T0 + 60 * MIN)) == [("b", 2 * MIN, 7 * MIN)]
    assert eng.open_episodes() == []
    # the next hold opens a new episode, with an alert
    alerts, _ = feed(eng, ev(T0 + 7 * MIN + 1, "b"))
    assert starts(alerts) == [(7 * MIN + 1, 7 * MIN + 1)]


def test_resolve_idle_also_returns_resolutions_not_yet_collected() -> None:
    eng = engine(every_event(suppress="1m", resolve_after="5m"))
    feed(eng, ev(T0, "a"))
    run(eng, [ev(T0 + 30 * MIN, "b")])  # a's episode is final; not collected
    assert ended(eng.resolve_idle(T0 + 30 * MIN)) == [("a", 0, 5 * MIN)]


def test_resolutions_of_one_call_are_in_resolved_at_order() -> None:
    eng = engine(every_event(suppress="1m", resolve_after="5m"))
    run(eng, [ev(T0 + 2 * MIN, "a"), ev(T0, "b"), ev(T0 + MIN, "c"), ev(T0 + 60 * MIN, "d")], batch=4)
    assert ended(eng.resolutions()) == [("b", 0, 5 * MIN), ("c", MIN, 6 * MIN), ("a", 2 * MIN, 7 * MIN)]


def test_an_evicted_group_keeps_its_episode() -> None:
    # the cap (1 group) evicts a for b and forgets a's fire; a's next hold fires again,
    # and that alert belongs to the episode still open
    eng = engine(every_event(suppress="1m", resolve_after="10m"), max_groups_per_rule=1)
    alerts, _ = feed(eng, ev(T0, "a"), ev(T0 + SEC, "b"), ev(T0 + 2 * SEC, "a"))
    assert [(a.group["actor.id"], a.episode_start_ms - T0) for a in alerts] == [("a", 0), ("b", SEC), ("a", 0)]


def test_resolution_record_is_the_opening_alert_with_type_and_resolved_at() -> None:
    eng = engine(every_event(suppress="1m", resolve_after="5m"))
    (alert,) = run(eng, [ev(T0, id="e1")])
    (r,) = eng.resolve_all()
    d = r.to_dict()
    a = alert.to_dict()
    assert d["type"] == "resolved" and a["type"] == "alert"
    assert d["resolved_at"] == "2026-11-27T00:05:00.000Z"
    assert {k: v for k, v in d.items() if k not in ("type", "resolved_at")} == {k: v for k, v in a.items() if k != "type"}
    assert list(d)[list(d).index("episode_start") + 1] == "resolved_at"
    assert d["schema_version"] == 1 and "detected_at" not in d
    assert r.to_dict(detected_at_ms=T0 + 6 * MIN)["detected_at"] == "2026-11-27T00:06:00.000Z"


def test_alert_record_has_schema_episode_start_and_detected_at_only_when_given() -> None:
    eng = engine(every_event(suppress="1m", resolve_after="5m"))
    _, again = run(eng, [ev(T0), ev(T0 + 90 * SEC)])
    d = again.to_dict()
    assert (d["schema_version"], d["type"]) == (1, "alert")
    assert (d["fired_at"], d["episode_start"]) == ("2026-11-27T00:01:30.000Z", "2026-11-27T00:00:00.000Z")
    assert "detected_at" not in d
    assert again.to_dict(detected_at_ms=T0 + 2 * MIN)["detected_at"] == "2026-11-27T00:02:00.000Z"


def test_the_daemon_clock_decides_finality_too() -> None:
    # the daemon passes its clock (the minimum over partitions): finality follows it
    eng = engine(every_event(suppress="1m", resolve_after="5m"), allowed_lateness_ms=MIN)
    eng.process([ev(T0, "a")], clock=T0)
    eng.process([ev(T0 + 20 * MIN, "b")], clock=T0 + 6 * MIN)
    assert eng.resolutions() == []
    eng.process([], clock=T0 + 6 * MIN + 1)
    assert ended(eng.resolutions()) == [("a", 0, 5 * MIN)]
