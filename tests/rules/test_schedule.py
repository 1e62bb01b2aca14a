"""Schedules: local business hours across daylight-saving changes, holidays, range edges,
and ``when: {inside|outside: NAME}`` as a match condition in the engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.engine import Engine
from monitor.rules.loader import load_rules, load_texts
from monitor.rules.schedule import Schedule
from monitor.timeparse import parse_ts

EXAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "rules" / "example.yaml"
BUSINESS_HOURS = {
    "timezone": "America/Chicago",
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "hours": ["08:00-18:00"],
    "holidays": ["2026-11-26"],
}


def ms(text: str) -> int:
    value = parse_ts(text)
    assert value is not None, text
    return value


ScheduleFactory = Callable[..., Schedule]


@pytest.fixture
def make_schedule() -> ScheduleFactory:
    """``make_schedule(**fields)``: the schedule a rule file defines with those fields."""

    def make(**fields: Any) -> Schedule:
        doc = {"schedules": {"s": fields}}
        return load_texts([("s.yaml", json.dumps(doc).encode())]).schedules["s"]

    return make


@pytest.fixture
def business_hours(make_schedule: ScheduleFactory) -> Schedule:
    return make_schedule(**BUSINESS_HOURS)


# -- America/Chicago across the daylight-saving changes ---------------------------------


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        # Friday 2026-03-06, CST (UTC-6): 08:00-18:00 local is 14:00Z-24:00Z
        ("2026-03-06T13:59:59.999Z", False),
        ("2026-03-06T14:00:00Z", True),
        ("2026-03-06T08:00:00-06:00", True),
        ("2026-03-06T23:59:59.999Z", True),
        ("2026-03-07T00:00:00Z", False),
        # Saturday and Sunday 2026-03-07/08 (clocks go forward on Sunday at 02:00 local)
        ("2026-03-07T15:00:00Z", False),
        ("2026-03-08T15:00:00Z", False),
        # Monday 2026-03-09, CDT (UTC-5): 08:00-18:00 local is 13:00Z-23:00Z
        ("2026-03-09T12:59:59.999Z", False),
        ("2026-03-09T13:00:00Z", True),
        ("2026-03-09T08:00:00-05:00", True),
        ("2026-03-09T14:00:00Z", True),
        ("2026-03-09T22:59:59.999Z", True),
        ("2026-03-09T23:00:00Z", False),
        # Friday 2026-10-30, CDT: 13:00Z-23:00Z
        ("2026-10-30T12:59:59.999Z", False),
        ("2026-10-30T13:00:00Z", True),
        ("2026-10-30T22:59:59.999Z", True),
        ("2026-10-30T23:00:00Z", False),
        # Sunday 2026-11-01 (clocks go back at 02:00 local)
        ("2026-11-01T15:00:00Z", False),
        # Monday 2026-11-02, CST again: 14:00Z-24:00Z
        ("2026-11-02T13:00:00Z", False),
        ("2026-11-02T13:59:59.999Z", False),
        ("2026-11-02T14:00:00Z", True),
        ("2026-11-02T23:30:00Z", True),
        ("2026-11-03T00:00:00Z", False),
    ],
)
def test_business_hours_follow_local_time_across_dst(
    business_hours: Schedule, instant: str, inside: bool
) -> None:
    assert business_hours.contains(ms(instant)) is inside


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        ("2026-11-25T15:00:00Z", True),  # Wednesday before
        ("2026-11-26T14:00:00Z", False),  # Thursday, 08:00 local: a holiday
        ("2026-11-26T18:00:00Z", False),
        ("2026-11-26T23:59:59.999Z", False),
        ("2026-11-27T14:00:00Z", True),  # Friday after
    ],
)
def test_holidays_are_outside_all_day(business_hours: Schedule, instant: str, inside: bool) -> None:
    assert business_hours.contains(ms(instant)) is inside


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        ("2026-11-25T14:59:59.999Z", True),  # 2026-11-25 23:59:59 in Tokyo
        ("2026-11-25T15:00:00Z", False),  # 2026-11-26 00:00 in Tokyo: the holiday
        ("2026-11-26T03:00:00Z", False),
        ("2026-11-26T14:59:59.999Z", False),
        ("2026-11-26T15:00:00Z", True),  # 2026-11-27 00:00 in Tokyo
    ],
)
def test_holidays_are_local_dates_not_utc_dates(
    make_schedule: ScheduleFactory, instant: str, inside: bool
) -> None:
    tokyo = make_schedule(
        timezone="Asia/Tokyo", days=["mon", "tue", "wed", "thu", "fri"], holidays=["2026-11-26"]
    )
    assert tokyo.contains(ms(instant)) is inside


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        ("2026-03-08T07:59:59Z", False),  # 01:59:59 CST
        ("2026-03-08T08:00:00Z", False),  # 03:00 CDT: 02:00-03:00 never happened
        ("2026-11-01T05:59:59Z", False),  # 00:59:59 CDT
        ("2026-11-01T06:00:00Z", True),  # 01:00 CDT
        ("2026-11-01T06:59:59Z", True),
        ("2026-11-01T07:00:00Z", True),  # 01:00 CST, the second time round
        ("2026-11-01T07:59:59Z", True),
        ("2026-11-01T08:00:00Z", False),  # 02:00 CST
    ],
)
def test_the_skipped_and_the_repeated_local_hour(
    make_schedule: ScheduleFactory, instant: str, inside: bool
) -> None:
    night = make_schedule(
        timezone="America/Chicago",
        days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        hours=["01:00-02:00"] if instant.startswith("2026-11") else ["02:00-03:00"],
    )
    assert night.contains(ms(instant)) is inside


# -- ranges and days ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        ("2026-11-27T07:59:59.999Z", False),
        ("2026-11-27T08:00:00Z", True),  # start inclusive
        ("2026-11-27T11:59:59.999Z", True),
        ("2026-11-27T12:00:00Z", False),  # end exclusive
        ("2026-11-27T12:30:00Z", False),
        ("2026-11-27T13:00:00Z", True),
        ("2026-11-27T17:29:59.999Z", True),
        ("2026-11-27T17:30:00Z", False),
    ],
)
def test_ranges_start_inclusive_end_exclusive(
    make_schedule: ScheduleFactory, instant: str, inside: bool
) -> None:
    s = make_schedule(timezone="UTC", hours=["08:00-12:00", "13:00-17:30"])
    assert s.contains(ms(instant)) is inside


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        ("2026-11-27T21:59:59.999Z", False),  # Friday
        ("2026-11-27T22:00:00Z", True),
        ("2026-11-27T23:59:59.999Z", True),  # "24:00" takes the day's last millisecond
        ("2026-11-28T00:00:00Z", False),  # Saturday is not a listed day
        ("2026-11-30T00:00:00Z", True),  # Monday, the early range
        ("2026-11-30T05:59:59.999Z", True),
        ("2026-11-30T06:00:00Z", False),
    ],
)
def test_a_range_can_end_at_24_00(make_schedule: ScheduleFactory, instant: str, inside: bool) -> None:
    s = make_schedule(timezone="UTC", hours=["22:00-24:00", "00:00-06:00"])
    assert s.contains(ms(instant)) is inside


@pytest.mark.parametrize(
    ("days", "instant", "inside"),
    [
        (["sat", "sun"], "2026-11-27T23:59:59.999Z", False),  # Friday
        (["sat", "sun"], "2026-11-28T00:00:00Z", True),
        (["sat", "sun"], "2026-11-29T23:59:59.999Z", True),
        (["sat", "sun"], "2026-11-30T00:00:00Z", False),  # Monday
        (["Saturday", "SUN"], "2026-11-28T12:00:00Z", True),
        (["wed"], "2026-11-25T12:00:00Z", True),
        (["wed"], "2026-11-26T12:00:00Z", False),
        ([], "2026-11-25T12:00:00Z", False),  # no days: never inside
    ],
)
def test_day_lists(make_schedule: ScheduleFactory, days: list[str], instant: str, inside: bool) -> None:
    assert make_schedule(timezone="UTC", days=days).contains(ms(instant)) is inside


def test_defaults_are_weekdays_all_day_in_utc(make_schedule: ScheduleFactory) -> None:
    s = make_schedule()
    assert s.timezone == "UTC"
    assert s.describe() == {
        "timezone": "UTC",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "hours": ["00:00-24:00"],
        "holidays": [],
    }
    assert s.contains(ms("2026-11-27T00:00:00Z"))  # Friday
    assert not s.contains(ms("2026-11-28T12:00:00Z"))  # Saturday


def test_answers_do_not_depend_on_what_was_asked_before(business_hours: Schedule) -> None:
    instants = [ms("2026-03-06T14:00:00Z") + k * 37_000 for k in range(-200, 200)]
    first = [business_hours.contains(t) for t in instants]
    again = [business_hours.contains(t) for t in reversed(instants)][::-1]
    assert first == again
    assert first.count(True) and first.count(False)


def test_the_example_schedule(business_hours: Schedule) -> None:
    example = load_rules(EXAMPLE).schedules["business_hours"]
    assert example.describe() == business_hours.describe() == {
        "timezone": "America/Chicago",
        "days": ["mon", "tue", "wed", "thu", "fri"],
        "hours": ["08:00-18:00"],
        "holidays": ["2026-11-26"],
    }


# -- through the engine ---------------------------------------------------------------

EngineFactory = Callable[..., Engine]


@pytest.fixture
def make_engine() -> EngineFactory:
    """``make_engine(when, **rule)``: one rule on action=select with that ``when``."""

    def make(when: dict[str, str], **rule: Any) -> Engine:
        doc = {
            "schedules": {"business_hours": BUSINESS_HOURS},
            "rules": [{"id": "r", "severity": "low", "match": {"action": "select"}, "when": when, **rule}],
        }
        return Engine(load_texts([("r.yaml", json.dumps(doc).encode())]))

    return make


def select(instant: str, **fields: Any) -> tuple[dict[str, Any], int]:
    return ({"ts": instant, "action": "select", **fields}, ms(instant))


@pytest.mark.parametrize(
    ("instant", "in_hours"),
    [
        ("2026-03-06T14:00:00Z", True),
        ("2026-03-09T13:00:00Z", True),
        ("2026-03-09T12:59:59Z", False),
        ("2026-11-02T13:30:00Z", False),
        ("2026-11-02T14:30:00Z", True),
        ("2026-11-26T16:00:00Z", False),  # Thanksgiving
        ("2026-11-28T16:00:00Z", False),  # Saturday
    ],
)
@pytest.mark.parametrize("kind", ["inside", "outside"])
def test_when_through_the_engine(
    make_engine: EngineFactory, kind: str, instant: str, in_hours: bool
) -> None:
    engine = make_engine({kind: "business_hours"})
    alerts = engine.process([select(instant)])
    assert len(alerts) == (1 if in_hours == (kind == "inside") else 0)


def test_events_failing_when_do_not_count_in_the_window(make_engine: EngineFactory) -> None:
    engine = make_engine(
        {"outside": "business_hours"}, window="1h", threshold={"gte": 3}, group_by=["actor"]
    )
    events = [
        select("2026-11-27T13:50:00Z", actor="a"),  # 07:50 local: outside, counts
        select("2026-11-27T14:00:00Z", actor="a"),  # 08:00: inside, ignored
        select("2026-11-27T14:10:00Z", actor="a"),  # inside, ignored
        select("2026-11-27T14:20:00Z", actor="b"),  # another actor
    ]
    assert engine.process(events) == []
    more = [
        select("2026-11-27T13:55:00Z", actor="a"),  # outside, counts: 2
        select("2026-11-27T13:59:59Z", actor="a"),  # outside, counts: 3
    ]
    alerts = engine.process(more)
    assert [(a.rule, a.group, a.value, a.event_count) for a in alerts] == [
        ("r", {"actor": "a"}, 3, 3)
    ]


def test_the_example_rule_fires_outside_business_hours_only() -> None:
    engine = Engine(load_rules(EXAMPLE))

    def read(instant: str, rows: int, actor: str = "analyst-09", **kw: Any) -> tuple[dict[str, Any], int]:
        e = {
            "ts": instant,
            "actor": {"id": actor},
            "action": "select",
            "resource": {"name": "customers"},
            "rows": rows,
            **kw,
        }
        return (e, ms(instant))

    # Monday 2026-11-02, 10:00 local: inside business hours, never counts
    assert engine.process([read("2026-11-02T16:00:00Z", 60_000)]) == []
    # Thanksgiving, 10:00 local: a holiday, so outside
    alerts = engine.process([read("2026-11-26T16:00:00Z", 30_000), read("2026-11-26T16:05:00Z", 20_001)])
    assert [(a.group, a.value) for a in alerts] == [({"actor.id": "analyst-09"}, 50_001)]
    # Sunday 2026-03-08, the day clocks go forward: outside, all day
    alerts = engine.process([read("2026-03-08T16:00:00Z", 50_001, actor="analyst-10")])
    assert [(a.group, a.value) for a in alerts] == [({"actor.id": "analyst-10"}, 50_001)]


@pytest.mark.parametrize("instant", [-62_135_596_800_000, -(10**16), 10**16])
def test_instants_datetime_cannot_hold_are_outside_and_do_not_raise(
    business_hours: Schedule, instant: int
) -> None:
    # Year 1 in UTC is year 0 in Chicago: astimezone raised OverflowError.
    assert business_hours.contains(instant) is False
