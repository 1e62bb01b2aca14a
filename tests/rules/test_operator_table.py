"""The operator table (``monitor/rules/operators.py``) is the one definition of every
match operator: the validator, the reference closures and the generated loop all derive
from it, and the two evaluation paths must agree on any value an event can carry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.engine import Engine
from monitor.rules.loader import load_texts
from monitor.rules.model import MATCH_OPS
from monitor.rules.operators import OPERATORS, BadOperand

T0 = 1_795_773_600_000
MISSING = object()

scalars = st.one_of(
    st.sampled_from(["", "a", "ab", "b", "customers", "10.1.2.3", "2001:db8::1", "x.y", "1"]),
    st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cn", "Co", "Cs")), max_size=4).filter(
        lambda t: not t.startswith("$")  # a list reference, not a value
    ),
    st.integers(-3, 3),
    st.floats(allow_nan=False, min_value=-3, max_value=3),
    st.booleans(),
)
# what an event's field can be: missing, null, any JSON type (mistyped for most operators)
values = st.one_of(
    st.just(MISSING),
    st.none(),
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b"]), scalars, max_size=2),
)
OPERANDS: dict[str, st.SearchStrategy[Any]] = {
    "regex": st.sampled_from(["^a", "b$", "[0-9]", ".", "^$", "(?i)CUST"]),
    "cidr": st.lists(st.sampled_from(["10.0.0.0/8", "10.1.2.3/32", "2001:db8::/32", "0.0.0.0/0"]), min_size=1, max_size=2),
    "exists": st.booleans(),
    "in": st.lists(scalars, max_size=3),
    "not_in": st.lists(scalars, max_size=3),
}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_operator_is_one_table_entry() -> None:
    assert tuple(OPERATORS) == MATCH_OPS
    assert set(MATCH_OPS) == {
        "eq", "ne", "in", "not_in", "contains", "startswith", "endswith",
        "regex", "cidr", "gt", "gte", "lt", "lte", "exists",
    }  # fmt: skip


def _engines(op: str, operand: Any, anchored: bool) -> tuple[list[Engine], Any]:
    match: dict[str, Any] = {"f": {op: operand}}
    if anchored:  # indexed on the anchor: the field under test is inlined or a closure
        match = {"anchor": "yes", **match}
    doc = {"rules": [{"id": "r-1.x", "severity": "low", "match": match}]}
    ruleset = load_texts([("r.yaml", json.dumps(doc, ensure_ascii=False).encode())])
    return [Engine(ruleset, generated=True), Engine(ruleset, generated=False)], ruleset.rules[0]


@pytest.mark.parametrize("op", MATCH_OPS)
@pytest.mark.parametrize("anchored", [False, True], ids=["alone", "anchored"])
@SETTINGS
@given(data=st.data())
def test_generated_loop_and_reference_closures_agree(op: str, anchored: bool, data: st.DataObject) -> None:
    operand = data.draw(OPERANDS.get(op, scalars), label="operand")
    try:
        OPERATORS[op].check(operand, op)
    except BadOperand:
        return  # not a rule the validator lets through
    events = data.draw(st.lists(values, min_size=1, max_size=6), label="values")
    engines, rule = _engines(op, operand, anchored)
    per_engine = []
    for engine in engines:
        seen = []
        for v in events:
            e: dict[str, Any] = {"ts": T0, "anchor": "yes"} if anchored else {"ts": T0}
            if v is not MISSING:
                e["f"] = v
            fired = len(engine.process([(e, T0)]))
            seen.append((fired, rule.mismatch.value))
        rule.mismatch.value = 0  # both engines share the rule's counter: count each run alone
        per_engine.append(seen)
    generated, reference = per_engine
    assert generated == reference


def test_a_regex_is_compiled_once_when_the_rule_is_validated() -> None:
    ruleset = load_texts([("r.yaml", b"rules:\n  - {id: r, severity: low, match: {f: {regex: '^a'}}}\n")])
    (cond,) = ruleset.rules[0].spec.conditions
    assert cond.value == "^a"  # as written, for /rules and messages
    assert cond.arg.search("abc") is not None  # the compiled pattern every path uses
