"""``exceptions:`` with an end: what they let through, until when (event time), the
problems at their places, and the warning once one has expired."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.engine import Engine
from monitor.rules.errors import RuleLoadError
from monitor.rules.exceptions import parse_until
from monitor.rules.loader import RuleSet, load_texts
from monitor.timeparse import parse_ts

RULE = """
rules:
  - id: bulk
    severity: high
    match: {action: {eq: select}}
    group_by: [actor.id]
    window: 1h
    threshold: {gte: 2}
    exceptions:
      - match: {actor.id: {eq: etl}, resource.name: {in: [orders, customers]}}
        until: 2026-12-24
        reason: "migration of the order tables, CHG-1234"
"""
BEFORE = parse_ts("2026-12-01T00:00:00Z")


def ts(text: str) -> int:
    v = parse_ts(text)
    assert v is not None
    return v


def load(text: str = RULE, now: str = "2026-12-01T00:00:00Z") -> RuleSet:
    return load_texts([("r.yaml", text.encode())], now_ms=ts(now))


def fired(ruleset: RuleSet, events: list[tuple[dict[str, Any], str]], *, generated: bool) -> list[tuple[str, int]]:
    engine = Engine(ruleset, generated=generated)
    alerts = engine.process([(e, ts(t)) for e, t in events])
    return [(str(a.group["actor.id"]), a.value) for a in alerts]


def read(actor: str, table: str) -> dict[str, Any]:
    return {"action": "select", "actor": {"id": actor}, "resource": {"name": table}}


@pytest.mark.parametrize("generated", [True, False])
def test_an_exception_lets_its_matches_through_only_before_its_end(generated: bool) -> None:
    rs = load()
    during = [(read("etl", "orders"), "2026-12-24T22:00:00Z"), (read("etl", "orders"), "2026-12-24T22:30:00Z")]
    assert fired(rs, during, generated=generated) == []  # a date means through that day (UTC)
    after = [(read("etl", "orders"), "2026-12-25T00:00:00Z"), (read("etl", "orders"), "2026-12-25T00:10:00Z")]
    assert fired(rs, after, generated=generated) == [("etl", 2)]


@pytest.mark.parametrize("generated", [True, False])
def test_what_the_exception_does_not_match_is_counted(generated: bool) -> None:
    rs = load()
    events = [(read("etl", "cards"), "2026-12-02T10:00:00Z"), (read("etl", "cards"), "2026-12-02T10:01:00Z"),
              (read("eve", "orders"), "2026-12-02T10:00:00Z"), (read("eve", "orders"), "2026-12-02T10:01:00Z")]  # fmt: skip
    assert sorted(fired(rs, events, generated=generated)) == [("etl", 2), ("eve", 2)]


def test_until_takes_a_date_through_its_day_or_an_instant() -> None:
    assert parse_until("2026-12-24") == ts("2026-12-25T00:00:00Z")
    assert parse_until("2026-12-24T12:00:00+01:00") == ts("2026-12-24T11:00:00Z")
    assert parse_until("next week") is None
    assert parse_until(20261224) is None


def test_an_expired_exception_loads_with_a_warning_at_its_place() -> None:
    rs = load(now="2026-12-25T00:00:00Z")
    (w,) = rs.warnings
    assert (w.code, w.line, w.rule) == ("W-EXPIRED-EXCEPTION", RULE.splitlines().index("      - match: {actor.id: {eq: etl}, resource.name: {in: [orders, customers]}}") + 1, "bulk")
    assert "CHG-1234" in w.message and "2026-12-25T00:00:00" in w.message
    assert load(now="2026-12-24T23:59:59Z").warnings == ()


def test_exception_problems_are_reported_together_at_their_places() -> None:
    text = """
rules:
  - id: r
    severity: low
    match: {action: {eq: select}}
    exceptions:
      - {match: {}, until: 2026-12-24, reason: x}
      - {match: {actor.id: {eq: a}}, until: soon, reason: x}
      - {match: {actor.id: {eq: a}}, until: 2026-12-24}
      - {match: {actor.id: {bogus: a}}, until: 2026-12-24, reason: "  ", why: no}
      - not a mapping
"""
    with pytest.raises(RuleLoadError) as info:
        load(text)
    got = [(p.line, p.code) for p in info.value.problems]
    assert got == [
        (7, "E-BAD-EXCEPTION"),  # empty match
        (8, "E-BAD-EXCEPTION"),  # until
        (9, "E-BAD-EXCEPTION"),  # reason missing
        (10, "E-UNKNOWN-KEY"),  # why
        (11, "E-BAD-EXCEPTION"),  # not a mapping
    ]
    codes = [p.code for p in info.value.problems]
    assert codes.count("E-BAD-EXCEPTION") >= 4 and "E-UNKNOWN-KEY" in codes
    messages = " | ".join(p.message for p in info.value.problems)
    assert "empty match" in messages and "until must be a date" in messages and "reason is required" in messages


def test_exceptions_must_be_a_list() -> None:
    text = RULE.split("    exceptions:")[0] + "    exceptions: {match: {}}\n"
    with pytest.raises(RuleLoadError) as info:
        load(text)
    assert [p.code for p in info.value.problems] == ["E-BAD-EXCEPTION"]
