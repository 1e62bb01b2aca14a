"""Rule reload (README "Reloading rules"): which rules keep their state, and what a
reloaded engine then fires, compared with an engine that never reloaded."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from monitor.engine import Engine
from monitor.engine.reload import plan, shape
from monitor.rules.loader import RuleSet, load_texts
from tests.support.engine import MIN, T0, ev, fired, run

SEC = 1000
BASE: dict[str, Any] = {"group_by": ["actor.id"], "window": "10m", "threshold": {"gte": 5}}


def rules(*specs: dict[str, Any], lists: dict[str, Any] | None = None, name: str = "r.yaml") -> RuleSet:
    doc: dict[str, Any] = {"rules": [{"severity": "high", **s} for s in specs]}
    if lists:
        doc["lists"] = lists
    return load_texts([(name, orjson.dumps(doc))])


def one(**fields: Any) -> RuleSet:
    return rules({"id": "r", **BASE, **fields})


# ---------------------------------------------------------------- shape


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({"threshold": {"gte": 3}}, True),
        ({"match": {"action": "select"}}, True),
        ({"suppress": "1h", "resolve_after": "2h"}, True),
        ({"labels": {"team": "fraud"}}, True),
        ({"severity": "critical"}, True),
        ({"annotations": {"summary": "{actor.id} read"}}, True),
        ({"group_by": ["actor.ip"]}, False),
        ({"group_by": ["actor.id", "actor.ip"]}, False),
        ({"window": "15m"}, False),
        ({"resolution": "1m"}, False),
        ({"aggregate": {"sum": "rows"}}, False),
        ({"aggregate": {"distinct": "customer.id"}}, False),
        ({"window": None}, False),
    ],
)
def test_shape_is_aggregate_group_by_window_and_resolution(change: dict[str, Any], same: bool) -> None:
    before = one().rules[0].spec
    fields = {**BASE, **change}
    after = rules({"id": "r", **{k: v for k, v in fields.items() if v is not None}}).rules[0].spec
    assert (shape(before) == shape(after)) is same


def test_aggregate_field_is_part_of_the_shape() -> None:
    a = one(aggregate={"sum": "rows"}).rules[0].spec
    b = one(aggregate={"sum": "bytes"}).rules[0].spec
    assert shape(a) != shape(b)


# ---------------------------------------------------------------- the decision


def test_plan_names_files_and_rules_added_changed_removed() -> None:
    old = load_texts([("a.yaml", orjson.dumps({"rules": [{"id": "x", "severity": "low", **BASE},
                                                         {"id": "y", "severity": "low", **BASE}]})),
                      ("b.yaml", orjson.dumps({"rules": [{"id": "z", "severity": "low", **BASE}]}))])  # fmt: skip
    new = load_texts([("a.yaml", orjson.dumps({"rules": [{"id": "x", "severity": "high", **BASE},
                                                         {"id": "w", "severity": "low", **BASE}]})),
                      ("b.yaml", orjson.dumps({"rules": [{"id": "z", "severity": "low", **BASE}]}))])  # fmt: skip
    p = plan(old, new)
    assert p.files == ("a.yaml",)
    assert (p.added, p.changed, p.removed) == (("w",), ("x",), ("y",))
    assert p.keep == {"x", "z"} and p.drop == {"y"} and p.fresh == ()
    assert p.audit() == {"files_changed": ["a.yaml"], "added": ["w"], "changed": ["x"], "removed": ["y"], "fresh": []}


def test_a_rule_moved_to_another_file_or_line_is_unchanged() -> None:
    old = load_texts([("a.yaml", orjson.dumps({"rules": [{"id": "x", "severity": "low", **BASE}]}))])
    text = "# moved\n\nrules:\n  - " + orjson.dumps({"id": "x", "severity": "low", **BASE}).decode() + "\n"
    new = load_texts([("b.yaml", text.encode())])
    p = plan(old, new)
    assert p.files == ("a.yaml", "b.yaml") and p.changed == () and p.keep == {"x"}


def test_a_changed_list_changes_the_rules_that_use_it() -> None:
    spec = {"id": "x", **BASE, "match": {"resource.name": {"in": "$tables"}}}
    p = plan(rules(spec, lists={"tables": ["customers"]}), rules(spec, lists={"tables": ["customers", "cards"]}))
    assert p.changed == ("x",) and p.keep == {"x"}


def test_reshaped_disabled_and_reenabled_rules() -> None:
    old = rules({"id": "reshaped", **BASE}, {"id": "off", **BASE}, {"id": "on", **BASE, "enabled": False})
    new = rules({"id": "reshaped", **BASE, "window": "5m"}, {"id": "off", **BASE, "enabled": False},
                {"id": "on", **BASE})  # fmt: skip
    p = plan(old, new)
    assert p.changed == ("reshaped", "off", "on")
    assert p.keep == frozenset() and p.drop == {"reshaped", "off"}
    assert p.fresh == ("reshaped", "on")  # "off" runs no more


def test_an_unchanged_set_keeps_everything() -> None:
    rs = one()
    p = plan(rs, one())
    assert p.files == () and (p.added, p.changed, p.removed) == ((), (), ()) and p.keep == {"r"}


# ---------------------------------------------------------------- the engine across a reload


def reads(*offsets: float, actor: str = "a") -> list[tuple[dict[str, Any], int]]:
    return [ev(T0 + int(m * MIN), actor, action="select") for m in offsets]


def test_a_kept_rule_fires_as_if_never_reloaded() -> None:
    """Three events before the reload, two after: the window spans it and fires at the fifth."""
    events = reads(0, 1, 2, 3, 4)
    straight = Engine(one())
    expected = fired(run(straight, events))
    assert expected == [("r", 5, 4 * MIN)]

    eng = Engine(one())
    got = run(eng, events[:3])
    eng.reload(rules({"id": "r", **BASE}, {"id": "other", **BASE, "threshold": {"gte": 100}}))
    got += run(eng, events[3:])
    assert fired(got) == expected


def test_a_lowered_threshold_judges_the_kept_window_from_the_next_event() -> None:
    eng = Engine(one())
    assert run(eng, reads(0, 1, 2)) == []
    eng.reload(one(threshold={"gte": 4}))
    assert fired(run(eng, reads(3))) == [("r", 4, 3 * MIN)]


def test_changed_match_conditions_apply_to_the_next_event() -> None:
    eng = Engine(one())
    run(eng, reads(0, 1, 2, 3))
    eng.reload(one(match={"action": "export"}))
    assert run(eng, reads(4)) == []  # a select no longer matches
    assert fired(run(eng, [ev(T0 + 5 * MIN, "a", action="export")])) == [("r", 5, 5 * MIN)]


def test_a_reshaped_rule_starts_fresh_and_its_episode_ends() -> None:
    eng = Engine(one(resolve_after="30m"))
    (alert,) = run(eng, reads(0, 1, 2, 3, 4))
    eng.reload(one(window="5m", resolve_after="30m"))
    (res,) = eng.resolutions()
    # resolved at the engine's clock (the newest event, 4m), not 30m ahead of it
    assert (res.alert.id, res.resolved_at_ms - T0) == (alert.id, 4 * MIN)
    assert eng.open_episodes() == []
    assert run(eng, reads(5, 6, 7, 8)) == []  # four events in the fresh state: below 5
    assert fired(run(eng, reads(9))) == [("r", 5, 9 * MIN)]


def test_a_removed_rule_is_dropped_and_its_open_episodes_resolve() -> None:
    eng = Engine(rules({"id": "r", **BASE}, {"id": "s", **BASE}))
    run(eng, reads(0, 1, 2, 3, 4) + reads(0, 1, 2, 3, 4, actor="b"))
    assert {(ep.rule, ep.alert.group["actor.id"]) for ep in eng.open_episodes()} == {
        ("r", "a"), ("s", "a"), ("r", "b"), ("s", "b")}  # fmt: skip
    p = eng.reload(rules({"id": "r", **BASE}))
    assert p.removed == ("s",)
    assert sorted((r.rule, r.alert.group["actor.id"]) for r in eng.resolutions()) == [("s", "a"), ("s", "b")]
    assert [s.id for s in eng.states] == ["r"]
    assert {ep.rule for ep in eng.open_episodes()} == {"r"}


def test_open_episodes_keep_the_labels_they_opened_with() -> None:
    eng = Engine(one(labels={"team": "security"}, suppress="1m"))
    (first,) = run(eng, reads(0, 1, 2, 3, 4))
    eng.reload(one(labels={"team": "fraud"}, suppress="1m"))
    (again,) = run(eng, reads(5.5))  # a re-alert of the open episode carries the new labels
    assert again.labels == {"team": "fraud"} and again.episode_start_ms == first.fired_at_ms
    (ep,) = eng.open_episodes()
    assert ep.alert is first and ep.record()["labels"] == {"team": "security"}
    run(eng, reads(60))  # far past resolve_after: the episode ends, with its own labels
    (res,) = eng.resolutions()
    assert res.to_dict()["labels"] == {"team": "security"}
    (new,) = run(eng, reads(61, 62, 63, 64))
    assert new.labels == {"team": "fraud"} and new.episode_start_ms == new.fired_at_ms


def test_a_longer_suppression_applies_to_the_kept_fires() -> None:
    eng = Engine(one(suppress="2m", resolve_after="2m"))
    assert len(run(eng, reads(0, 1, 2, 3, 4))) == 1
    eng.reload(one(suppress="10m", resolve_after="10m"))
    assert run(eng, reads(6.5, 7)) == []  # 2.5m after the fire: the old 2m would have let it through


def test_type_mismatches_keep_counting_across_a_reload() -> None:
    eng = Engine(one(aggregate={"sum": "rows"}))
    run(eng, [ev(T0, "a", rows="many")])
    (state,) = eng.states
    assert state.mismatch.value == 1
    eng.reload(one(aggregate={"sum": "rows"}, threshold={"gte": 10}))
    (kept,) = eng.states
    assert kept is state
    run(eng, [ev(T0 + SEC, "a", rows="lots")])
    assert kept.mismatch.value == 2


@pytest.mark.parametrize("generated", [True, False])
def test_reload_keeps_the_newest_time_and_the_sweep(generated: bool) -> None:
    eng = Engine(one(), generated=generated)
    run(eng, reads(0, 1))
    eng.reload(one(threshold={"gte": 3}))
    assert eng.newest == T0 + MIN
    assert fired(run(eng, reads(2))) == [("r", 3, 2 * MIN)]
