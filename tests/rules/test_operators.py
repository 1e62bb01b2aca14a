"""Every match operator, through the engine: what matches, what does not, and what counts
as a type mismatch on the rule's counter.

Rules here have no window, so each event that passes every condition fires one alert.
A rule whose condition the engine indexes (an ``eq``/``in`` on text) is tested both ways:
alone (the engine's index lookup decides, and counts mismatches) and behind an indexed
``anchor`` condition (the operator's own closure decides). Both the generated dispatch
loop and the reference loop run every case.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from monitor.engine import Engine
from monitor.rules.loader import CompiledRule, load_texts
from monitor.rules.operators import REGEX_MAX_INPUT

T0 = 1_795_773_600_000  # 2026-11-27T10:00:00Z
LISTS = {
    "tables": ["customers", "payment_cards"],
    "numbers": [1, 2, 3],
    "nets": ["10.0.0.0/8", "2001:db8::/32"],
}
MISSING = object()


@dataclass
class Probe:
    """An engine with one rule, and what one event does to it."""

    engine: Engine
    rule: CompiledRule

    def fires(self, event: dict[str, Any]) -> bool:
        return len(self.engine.process([({"ts": T0, **event}, T0)])) == 1

    @property
    def mismatches(self) -> int:
        return self.rule.mismatch.value


ProbeFactory = Callable[..., Probe]


@pytest.fixture(params=["generated", "reference"])
def make_probe(request: pytest.FixtureRequest) -> ProbeFactory:
    """``make_probe(match, anchored=False)``: a one-rule engine; anchored rules also need
    ``anchor: "yes"`` in the event and are indexed on it, never on the field under test."""

    def make(match: dict[str, Any], *, anchored: bool = False) -> Probe:
        if anchored:
            match = {"anchor": "yes", **match}
        doc = {"lists": LISTS, "rules": [{"id": "r", "severity": "low", "match": match}]}
        ruleset = load_texts([("r.yaml", json.dumps(doc).encode())])
        rule = ruleset.rules[0]
        if anchored:
            assert rule.index is not None and rule.index.path == "anchor"
        return Probe(Engine(ruleset, generated=request.param == "generated"), rule)

    return make


def event(value: Any, anchored: bool, path: str = "f") -> dict[str, Any]:
    e: dict[str, Any] = {"anchor": "yes"} if anchored else {}
    if value is not MISSING:
        node = e
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return e


@dataclass(frozen=True)
class Case:
    name: str
    cond: Any  # the value of `f:` in match
    match: Any  # an event value that passes
    miss: Any  # a value of the right type that fails
    mistyped: Any  # a value of the wrong type: fails and counts
    indexed: bool = False  # the engine indexes the rule on `f` when alone

    def __str__(self) -> str:
        return self.name


CASES = [
    Case("eq-text", {"eq": "select"}, "select", "insert", 1, indexed=True),
    Case("bare-value-means-eq", "select", "select", "SELECT", ["select"], indexed=True),
    Case("eq-text-vs-bool", {"eq": "true"}, "true", "false", True, indexed=True),
    Case("eq-number", {"eq": 5}, 5, 6, "5"),
    Case("eq-number-int-equals-float", {"eq": 5}, 5.0, 5.5, [5]),
    Case("eq-float", {"eq": 0.5}, 0.5, 0.25, "0.5"),
    Case("eq-1-is-not-true", {"eq": 1}, 1, 2, True),
    Case("eq-0-is-not-false", {"eq": 0}, 0, 1, False),
    Case("eq-true-is-not-1", {"eq": True}, True, False, 1),
    Case("eq-false-is-not-0", {"eq": False}, False, True, 0),
    Case("ne-text", {"ne": "select"}, "insert", "select", 7),
    Case("ne-number", {"ne": 0}, 1, 0, False),
    Case("ne-bool", {"ne": True}, False, True, 1),
    Case("in-text", {"in": ["customers", "payment_cards"]}, "payment_cards", "orders", 1, indexed=True),
    Case("in-text-list-ref", {"in": "$tables"}, "customers", "orders", {"x": 1}, indexed=True),
    Case("in-numbers", {"in": [1, 2, 3]}, 2, 4, "2"),
    Case("in-number-list-ref", {"in": "$numbers"}, 3, 0, True),
    Case("in-1-is-not-true", {"in": [1, 0]}, 0, 2, True),
    Case("in-mixed-text", {"in": [1, "a"]}, "a", "b", False),
    Case("in-mixed-number", {"in": [1, "a"]}, 1, 2, True),
    Case("in-bools", {"in": [True]}, True, False, 1),
    Case("not_in-text", {"not_in": ["analytics-etl"]}, "analyst-09", "analytics-etl", 9),
    Case("not_in-list-ref", {"not_in": "$tables"}, "orders", "customers", ["orders"]),
    Case("not_in-numbers", {"not_in": [1]}, 2, 1, True),
    Case("contains-text", {"contains": "cust"}, "customer_addresses", "orders", 5),
    Case("contains-text-in-list", {"contains": "admin"}, ["ops", "admin"], ["administrators"], 5),
    Case("contains-text-not-in-dict", {"contains": "admin"}, "sysadmin", "root", {"admin": 1}),
    Case("contains-number-in-list", {"contains": 5}, [1, 5], [1, "5"], "5"),
    Case("contains-1-not-true-in-list", {"contains": 1}, [1], [True, "1"], "1"),
    Case("contains-bool-in-list", {"contains": True}, [False, True], [1, 0], "true"),
    Case("startswith", {"startswith": "cust"}, "customers", "my_customers", ["customers"]),
    Case("endswith", {"endswith": "_cards"}, "payment_cards", "cards_x", 5),
    Case("regex-anchored", {"regex": "^cust(omer)?s?$"}, "custs", "xcusts", 1),
    Case("regex-searches-anywhere", {"regex": "DROP\\s+TABLE"}, "x; DROP  TABLE y", "drop table", True),
    Case("regex-case-flag", {"regex": "(?i)drop table"}, "xDROP TABLEx", "drop_table", ["drop table"]),
    Case("cidr-v4", {"cidr": "10.0.0.0/8"}, "10.200.3.4", "11.0.0.1", 167772161),
    Case("cidr-v4-host", {"cidr": "192.0.2.10/32"}, "192.0.2.10", "192.0.2.11", True),
    Case("cidr-v4-non-strict", {"cidr": "192.168.1.7/24"}, "192.168.1.200", "192.168.2.1", 3.5),
    Case("cidr-v6", {"cidr": "2001:db8::/32"}, "2001:db8:ffff::1", "2001:db9::1", ["2001:db8::1"]),
    Case("cidr-several", {"cidr": ["10.0.0.0/8", "192.168.0.0/16"]}, "192.168.9.9", "172.16.0.1", "not-an-ip"),
    Case("cidr-list-ref-v6", {"cidr": "$nets"}, "2001:db8::7", "fe80::1", "10.0.0.300"),
    Case("cidr-list-ref-v4", {"cidr": "$nets"}, "10.9.8.7", "8.8.8.8", "10.0.0.1/8"),
    Case("cidr-v4-address-vs-v6-network", {"cidr": "2001:db8::/32"}, "2001:db8::2", "10.0.0.1", ""),
    Case("gt-number", {"gt": 100}, 101, 100, "101"),
    Case("gt-float", {"gt": 0.5}, 0.51, 0.5, True),
    Case("gte-number", {"gte": 100}, 100, 99.99, True),
    Case("lt-number", {"lt": 0}, -1, 0, "-1"),
    Case("lte-number", {"lte": -1}, -1, 0, False),
    Case("gt-1-is-not-true", {"gt": 0}, 1, 0, True),
    Case("gt-text", {"gt": "2026-11-27"}, "2026-11-28", "2026-11-27", 20261128),
    Case("gte-text", {"gte": "b"}, "b", "a", 2),
    Case("lt-text", {"lt": "b"}, "a", "b", ["a"]),
    Case("lte-text", {"lte": "b"}, "b", "ba", 0),
]


SITUATIONS = ("match", "miss", "missing", "null", "mistyped")


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("anchored", [False, True], ids=["alone", "anchored"])
def test_operator(make_probe: ProbeFactory, case: Case, anchored: bool) -> None:
    """(fires, mismatches counted) for a matching, a non-matching, an absent, a null and
    a mistyped value, each on a fresh rule."""
    values = {
        "match": case.match,
        "miss": case.miss,
        "missing": MISSING,
        "null": None,
        "mistyped": case.mistyped,
    }
    outcome = {}
    for situation in SITUATIONS:
        probe = make_probe({"f": case.cond}, anchored=anchored)
        if not anchored:
            assert (probe.rule.index is not None) is case.indexed
        fired = probe.fires(event(values[situation], anchored))
        outcome[situation] = (fired, probe.mismatches)
    assert outcome == {
        "match": (True, 0),
        "miss": (False, 0),
        "missing": (False, 0),
        "null": (False, 0),
        "mistyped": (False, 1),
    }


@pytest.mark.parametrize("anchored", [False, True], ids=["alone", "anchored"])
@pytest.mark.parametrize(
    ("present", "value", "fires"),
    [
        (True, "x", True),
        (True, 0, True),
        (True, False, True),  # false is a value, not an absence
        (True, "", True),
        (True, [], True),
        (True, None, False),  # null is absent
        (False, None, True),
        (False, "x", False),
        (False, 0, False),
        (False, False, False),
    ],
)
def test_exists(
    make_probe: ProbeFactory, anchored: bool, present: bool, value: Any, fires: bool
) -> None:
    probe = make_probe({"f": {"exists": present}}, anchored=anchored)
    assert probe.fires(event(value, anchored)) is fires
    assert probe.mismatches == 0


@pytest.mark.parametrize("anchored", [False, True], ids=["alone", "anchored"])
@pytest.mark.parametrize("present", [True, False])
def test_exists_on_a_missing_field(make_probe: ProbeFactory, anchored: bool, present: bool) -> None:
    probe = make_probe({"f": {"exists": present}}, anchored=anchored)
    assert probe.fires(event(MISSING, anchored)) is not present
    assert probe.mismatches == 0


# -- several operators, lists, paths ---------------------------------------------------


@pytest.mark.parametrize(
    ("cond", "value", "fires"),
    [
        ({"gte": 10, "lt": 100}, 10, True),
        ({"gte": 10, "lt": 100}, 99.5, True),
        ({"gte": 10, "lt": 100}, 100, False),
        ({"gte": 10, "lt": 100}, 9, False),
        ({"startswith": "cust", "ne": "customers"}, "customer_addresses", True),
        ({"startswith": "cust", "ne": "customers"}, "customers", False),
        ({"in": "$tables", "endswith": "_cards"}, "payment_cards", True),
        ({"in": "$tables", "endswith": "_cards"}, "customers", False),
        ({"in": "$tables", "endswith": "_cards"}, "gift_cards", False),
        ({"cidr": "10.0.0.0/8", "not_in": ["10.0.0.1"]}, "10.0.0.2", True),
        ({"cidr": "10.0.0.0/8", "not_in": ["10.0.0.1"]}, "10.0.0.1", False),
        ({"exists": True, "regex": "^[a-z]+$"}, "abc", True),
        ({"exists": True, "regex": "^[a-z]+$"}, "ab1", False),
    ],
)
def test_several_operators_on_one_field_must_all_hold(
    make_probe: ProbeFactory, cond: dict[str, Any], value: Any, fires: bool
) -> None:
    probe = make_probe({"f": cond})
    assert probe.fires({"f": value}) is fires
    assert probe.mismatches == 0


@pytest.mark.parametrize(
    ("value", "mismatches"),
    [("50", 1), (True, 1), (None, 0)],
)
def test_several_operators_on_a_mistyped_field_fail_and_count(
    make_probe: ProbeFactory, value: Any, mismatches: int
) -> None:
    probe = make_probe({"f": {"gte": 10, "lt": 100}})
    assert not probe.fires({"f": value})
    # the conditions are ANDed: the first failing one ends the test, and counts once
    assert probe.mismatches == mismatches


def test_mismatches_accumulate_per_rule(make_probe: ProbeFactory) -> None:
    probe = make_probe({"f": {"gt": 5}})
    for value in ["6", True, [6], {"v": 6}, 6, 4, None]:
        probe.fires({"f": value})
    assert probe.mismatches == 4


def test_mismatches_are_counted_on_the_rule_that_tested(make_probe: ProbeFactory) -> None:
    doc = {
        "rules": [
            {"id": "text", "severity": "low", "match": {"f": {"eq": "1"}}},
            {"id": "number", "severity": "low", "match": {"f": {"eq": 1}}},
        ]
    }
    ruleset = load_texts([("r.yaml", json.dumps(doc).encode())])
    engine = Engine(ruleset)
    alerts = engine.process([({"f": 1}, T0), ({"f": "1"}, T0), ({"f": True}, T0)])
    assert [a.rule for a in alerts] == ["number", "text"]
    text, number = ruleset.rules
    assert (text.mismatch.value, number.mismatch.value) == (2, 2)


@pytest.mark.parametrize(
    ("event_", "fires"),
    [
        ({"a": {"b": {"c": "x"}}}, True),
        ({"a": {"b": {"c": "y"}}}, False),
        ({"a": {"b": {"c": None}}}, False),
        ({"a": {"b": {}}}, False),
        ({"a": {"b": "x"}}, False),  # a.b is text, not an object
        ({"a": {"b": ["x"]}}, False),
        ({"a": [{"b": {"c": "x"}}]}, False),  # lists are not traversed
        ({"a": None}, False),
        ({"a.b.c": "x"}, False),  # a dotted key is not a path
        ({}, False),
    ],
)
@pytest.mark.parametrize("anchored", [False, True], ids=["alone", "anchored"])
def test_nested_paths(
    make_probe: ProbeFactory, event_: dict[str, Any], fires: bool, anchored: bool
) -> None:
    probe = make_probe({"a.b.c": "x"}, anchored=anchored)
    if anchored:
        event_ = {"anchor": "yes", **event_}
    assert probe.fires(event_) is fires
    assert probe.mismatches == 0  # an absent value is absent, not mistyped


@pytest.mark.parametrize("path", ["actor.id", "a.b.c.d"])
def test_nested_paths_with_every_kind_of_operator(make_probe: ProbeFactory, path: str) -> None:
    probe = make_probe({path: {"startswith": "hvac", "cidr": "$nets"}})
    assert not probe.fires(event("hvac-vendor", False, path))  # not an address: a mismatch
    assert probe.mismatches == 1
    probe = make_probe({path: {"in": "$tables"}, "rows": {"gt": 0}})
    assert probe.fires({**event("customers", False, path), "rows": 1})
    assert not probe.fires({**event("customers", False, path), "rows": 0})


def test_a_condition_on_text_keeps_index_and_closure_paths_equal(make_probe: ProbeFactory) -> None:
    alone = make_probe({"f": {"in": "$tables"}})
    anchored = make_probe({"f": {"in": "$tables"}}, anchored=True)
    for value in ["customers", "orders", 1, None, True, ["customers"], MISSING]:
        assert alone.fires(event(value, False)) is anchored.fires(event(value, True))
    assert alone.mismatches == anchored.mismatches == 3


# -- regex: re2, bounded input --------------------------------------------------------


def test_regex_input_is_bounded(make_probe: ProbeFactory) -> None:
    probe = make_probe({"f": {"regex": "needle"}})
    assert probe.fires({"f": "x" * (REGEX_MAX_INPUT - 6) + "needle"})
    assert not probe.fires({"f": "x" * REGEX_MAX_INPUT + "needle"})


def test_regex_is_linear_time_on_hostile_input(make_probe: ProbeFactory) -> None:
    # (a+)+$ takes exponential time in a backtracking engine on "aaaa...b"
    probe = make_probe({"f": {"regex": "(a+)+$"}, "g": {"regex": "^(a|aa)+$"}})
    hostile = "a" * 50_000 + "b"
    start = time.perf_counter()
    for _ in range(20):
        assert not probe.fires({"f": hostile, "g": hostile})
    assert time.perf_counter() - start < 5  # about 10 ms here; backtracking would not finish


def test_regex_on_unicode_text(make_probe: ProbeFactory) -> None:
    probe = make_probe({"f": {"regex": "^kund.n$"}})
    assert probe.fires({"f": "kundén"})
    assert not probe.fires({"f": "kundéén"})


# -- cidr details ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fires", "mismatches"),
    [
        ("10.0.0.1", True, 0),
        ("11.0.0.1", False, 0),
        ("host.example", False, 1),  # a cached non-address still counts each time
        ("10.0.0.1 ", False, 1),
        ("010.0.0.1", False, 1),  # leading zeros are ambiguous, not an address
    ],
)
def test_cidr_answers_are_stable(make_probe: ProbeFactory, value: str, fires: bool, mismatches: int) -> None:
    probe = make_probe({"f": {"cidr": "10.0.0.0/8"}})
    for _ in range(2):
        assert probe.fires({"f": value}) is fires
    assert probe.mismatches == 2 * mismatches
