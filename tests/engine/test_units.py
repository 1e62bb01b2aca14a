"""The rule's unit: validated, defaulted from the aggregate, carried by the alert, said plainly."""

from __future__ import annotations

import pytest

from monitor.rules.errors import RuleLoadError
from tests.support.engine import MIN, T0, engine, ev, rule, ruleset, run


@pytest.mark.parametrize(
    ("fields", "unit"),
    [
        ({"window": "10m", "aggregate": {"sum": "bytes"}}, "bytes"),
        ({"window": "10m", "aggregate": {"sum": "rows"}}, "rows"),
        ({"window": "10m", "aggregate": {"distinct": "customer.id"}}, "customers"),
        ({"window": "10m"}, "events"),
        ({"window": "10m", "aggregate": {"sum": "bytes"}, "unit": "rows"}, "rows"),  # said beats inferred
        ({"unit": "customers"}, "customers"),
    ],
)
def test_the_unit_is_what_the_rule_says_else_what_its_aggregate_adds_up(fields: dict[str, object], unit: str) -> None:
    (r,) = ruleset(rule(**fields)).enabled
    assert r.spec.unit == unit


@pytest.mark.parametrize("bad", ["gigabytes", 5, ["rows"], None])
def test_an_unknown_unit_is_a_problem_with_its_code(bad: object) -> None:
    with pytest.raises(RuleLoadError) as info:
        ruleset(rule(unit=bad))
    (p,) = info.value.problems
    assert p.code == "E-BAD-UNIT" and "unit must be one of rows, bytes, customers, events" in p.message
    assert p.rule == "r" and p.line == 2


def test_a_typo_gets_a_suggestion() -> None:
    with pytest.raises(RuleLoadError) as info:
        ruleset(rule(unit="byte"))
    assert "did you mean 'bytes'?" in info.value.problems[0].message


def test_the_alert_carries_the_unit_and_a_summary_that_says_over_the_limit() -> None:
    eng = engine(rule(group_by=["actor.id"], window="1h", aggregate={"sum": "bytes"}, threshold={"gt": 1_000_000_000}))
    (alert,) = run(eng, [ev(T0, "mallory", bytes=700_000_000), ev(T0 + MIN, "mallory", bytes=500_000_000)])
    d = alert.to_dict()
    assert d["unit"] == "bytes"
    assert d["summary"] == "r: mallory: 1.2 GB in 1h, over the limit of 1 GB"


def test_placeholders_give_the_value_and_the_limit_in_the_unit() -> None:
    eng = engine(rule(window="1h", aggregate={"distinct": "customer.id"}, threshold={"gte": 3}, unit="customers",
                      annotations={"summary": "{actor.id} looked up {value_text} ({value}): {limit_text}"}))  # fmt: skip
    (alert,) = run(eng, [ev(T0 + i, "eve", customer={"id": i}) for i in range(3)])
    assert alert.summary == "eve looked up 3 customers (3): 3 customers in 1h, at or over the limit of 3"


def test_a_rule_without_group_or_window_still_reads_plainly() -> None:
    (alert,) = run(engine(rule()), [ev(T0)])
    assert alert.summary == "r: 1 event, at or over the limit of 1"
