"""The traffic simulator: reproducible, well-formed, realistic enough, and with its incidents."""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from monitor.simulate import (
    ATTACKER_IP,
    CUSTOMER_TABLES,
    US_HOLIDAYS,
    Incident,
    generate,
    incidents_for,
    parse_start,
    write_jsonl,
)

START = "2026-11-27T00:00:00Z"
START_MS = parse_start(START)
RULES = Path(__file__).resolve().parent.parent / "rules"
CHICAGO = ZoneInfo("America/Chicago")
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")
ACTOR_TYPES = {"employee", "service", "vendor", "customer"}
ACTIONS = {"select", "insert", "update", "delete", "export", "download", "login"}
KINDS = {"table", "bucket", "api", "report"}
OUTCOMES = {"success", "denied", "error"}
KEYS = {"ts", "id", "actor", "action", "resource", "rows", "bytes", "outcome", "app"}


class _Hasher(io.RawIOBase):
    """A binary sink that only hashes what it is given."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.h.update(b)
        return len(b)


def _digest(**kwargs: Any) -> tuple[str, int]:
    sink = _Hasher()
    n = write_jsonl(generate(**kwargs), sink)  # type: ignore[arg-type]
    return sink.h.hexdigest(), n


def _ms(ts: str) -> int:
    return parse_start(ts)


def _business_hours(ms: int) -> bool:
    local = datetime.fromtimestamp(ms / 1000, UTC).astimezone(CHICAGO)
    return (
        local.weekday() < 5 and local.date().isoformat() not in US_HOLIDAYS and 8 <= local.hour < 18
    )


@pytest.fixture(scope="module")
def day() -> list[dict[str, Any]]:
    """A whole day at a quarter of the default rate: every incident, less memory."""
    return list(generate(seed=11, events=50_000))


# -- reproducibility -------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes() -> None:
    a = _digest(seed=5, events=30_000)
    b = _digest(seed=5, events=30_000)
    assert a == b


def test_a_different_seed_gives_different_bytes() -> None:
    assert _digest(seed=5, events=30_000)[0] != _digest(seed=6, events=30_000)[0]


def test_other_arguments_change_the_output() -> None:
    base = _digest(seed=5, hours=13)[0]
    assert base != _digest(seed=5, hours=13, incidents=False)[0]
    assert base != _digest(seed=5, hours=13, start="2026-11-30T00:00:00Z")[0]


# -- shape -----------------------------------------------------------------------------


def test_every_event_follows_the_default_schema(day: list[dict[str, Any]]) -> None:
    ids = set()
    for ev in day:
        assert set(ev) in (KEYS, KEYS | {"customer_id"}), ev
        assert isinstance(ev["ts"], str) and TS.match(ev["ts"]), ev
        assert isinstance(ev["id"], str) and ev["id"]
        ids.add(ev["id"])
        actor = ev["actor"]
        assert set(actor) == {"id", "type", "ip"}
        assert isinstance(actor["id"], str) and actor["id"]
        assert actor["type"] in ACTOR_TYPES
        assert isinstance(actor["ip"], str) and actor["ip"].count(".") == 3
        assert ev["action"] in ACTIONS
        res = ev["resource"]
        assert set(res) == {"kind", "db", "name"}
        assert res["kind"] in KINDS and isinstance(res["db"], str) and isinstance(res["name"], str)
        assert isinstance(ev["rows"], int) and ev["rows"] >= 0
        assert isinstance(ev["bytes"], int) and ev["bytes"] >= 0
        assert ev["outcome"] in OUTCOMES
        assert isinstance(ev["app"], str) and ev["app"]
        if "customer_id" in ev:
            assert isinstance(ev["customer_id"], str) and ev["customer_id"].startswith("cust-")
    assert len(ids) == len(day), "ids must be unique"


def test_timestamps_never_go_backwards(day: list[dict[str, Any]]) -> None:
    stamps = [_ms(ev["ts"]) for ev in day]
    assert all(a <= b for a, b in itertools.pairwise(stamps))
    assert stamps[0] >= START_MS and stamps[-1] < START_MS + 86_400_000


def test_write_jsonl_writes_one_object_a_line() -> None:
    events = list(generate(seed=2, hours=1, events=500))
    out = io.BytesIO()
    assert write_jsonl(events, out) == len(events)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(events)
    assert [orjson.loads(line) for line in lines] == events


def test_parse_start_accepts_offsets() -> None:
    assert parse_start("2026-11-27T00:00:00Z") == 1_795_737_600_000
    assert parse_start("2026-11-26T18:00:00-06:00") == 1_795_737_600_000
    assert parse_start("2026-11-27T00:00:00.250Z") == 1_795_737_600_250


# -- realism ---------------------------------------------------------------------------


def test_default_day_size_and_customer_table_share() -> None:
    n = customer = 0
    for ev in generate():
        n += 1
        customer += ev["resource"]["name"] in CUSTOMER_TABLES
    assert 190_000 <= n <= 210_000
    assert customer / n >= 0.30


@pytest.mark.parametrize(
    ("events", "hours"), [(2_000, 24.0), (20_000, 24.0), (100_000, 24.0), (10_000, 2.0)]
)
def test_events_gives_roughly_that_many_background_events(events: int, hours: float) -> None:
    n = sum(1 for _ in generate(seed=3, hours=hours, events=events, incidents=False))
    assert abs(n - events) <= 0.05 * events + 20


def test_load_follows_the_day_in_chicago(day: list[dict[str, Any]]) -> None:
    per_hour = Counter(int(ev["ts"][11:13]) for ev in day)
    night = per_hour[9]  # 03:00 in Chicago
    evening = per_hour[1]  # 19:00 in Chicago
    assert evening > 3 * night


def test_people_read_customer_data_only_in_business_hours(day: list[dict[str, Any]]) -> None:
    """Background only: the incidents include an employee at night on purpose."""
    for ev in generate(seed=11, events=50_000, incidents=False):
        if ev["actor"]["type"] == "employee" and ev["resource"]["name"] in CUSTOMER_TABLES:
            assert _business_hours(_ms(ev["ts"])), ev


def test_only_the_payment_service_touches_cards_and_vendors_stay_in_their_lane() -> None:
    for ev in generate(seed=11, events=50_000, incidents=False):
        if ev["resource"]["name"] == "payment_cards":
            assert ev["actor"]["id"] == "payment-service", ev
        if ev["actor"]["type"] == "vendor":
            assert ev["resource"]["name"] not in CUSTOMER_TABLES, ev
            assert ev["actor"]["ip"] != ATTACKER_IP


def test_cast_is_all_there(day: list[dict[str, Any]]) -> None:
    actors = {ev["actor"]["id"] for ev in day}
    for who in (
        "checkout-api", "order-service", "payment-service", "search", "recommendation",
        "analytics-etl", "inventory-sync", "shipping-partner", "hvac-vendor",
    ):  # fmt: skip
        assert who in actors
    kinds = Counter(ev["actor"]["type"] for ev in day)
    assert set(kinds) == ACTOR_TYPES
    tables = {ev["resource"]["name"] for ev in day}
    assert {
        "customers",
        "customer_addresses",
        "payment_cards",
        "orders",
        "order_items",
        "products",
    } <= tables


# -- incidents -------------------------------------------------------------------------


def _incident(name: str) -> Incident:
    (inc,) = [i for i in incidents_for(START_MS, 24.0) if i.name == name]
    return inc


def _events_of(day: list[dict[str, Any]], inc: Incident) -> list[dict[str, Any]]:
    return [ev for ev in day if ev["actor"]["id"] == inc.actor and inc.start <= ev["ts"] <= inc.end]


def test_incidents_for_a_day() -> None:
    incs = incidents_for(START_MS, 24.0)
    assert [i.name for i in incs] == [
        "off-hours-enumeration", "vendor-breach", "denied-probe", "slow-drip", "insider-export",
    ]  # fmt: skip
    for inc in incs:
        assert TS.match(inc.start) and TS.match(inc.end) and inc.start < inc.end
        assert _ms(inc.start) >= START_MS and _ms(inc.end) < START_MS + 86_400_000
        assert inc.actor and inc.description and inc.rules


def test_incidents_for_short_spans_fit_inside() -> None:
    for hours in (0.5, 1.0, 3.0, 8.0):
        end = START_MS + int(hours * 3_600_000)
        for inc in incidents_for(START_MS, hours):
            assert START_MS <= _ms(inc.start) <= _ms(inc.end) < end
    assert [i.name for i in incidents_for(START_MS, 1.0)] == ["denied-probe"]
    assert list(generate(hours=0)) == []


def test_without_incidents_none_of_them_happens() -> None:
    for ev in generate(seed=11, events=50_000, incidents=False):
        who = ev["actor"]["id"]
        assert ev["actor"]["ip"] != ATTACKER_IP
        assert not (
            who == "inventory-sync"
            and ev["outcome"] == "denied"
            and ev["resource"]["name"] == "api_keys"
        )
        assert not (who == "agent-007" and not _business_hours(_ms(ev["ts"])))
        assert not (who == "admin-02" and ev["action"] in ("export", "download"))
        assert not (who == "analyst-04" and ev["app"] == "jupyter")


def test_vendor_breach(day: list[dict[str, Any]]) -> None:
    evs = _events_of(day, _incident("vendor-breach"))
    assert evs[0]["action"] == "login" and evs[0]["actor"]["ip"] == ATTACKER_IP
    assert evs[0]["actor"]["type"] == "vendor"
    rows: Counter[str] = Counter()
    for ev in evs:
        if ev["action"] == "select":
            rows[ev["resource"]["name"]] += ev["rows"]
    assert rows["customers"] >= 100_000 and rows["payment_cards"] >= 10_000
    exported = sum(ev["bytes"] for ev in evs if ev["action"] == "export")
    assert exported > 2**30
    assert max(ev["ts"] for ev in evs if ev["action"] == "select") < min(
        ev["ts"] for ev in evs if ev["action"] == "export"
    )
    assert _ms(evs[-1]["ts"]) - _ms(evs[0]["ts"]) >= 3_600_000


def test_off_hours_enumeration(day: list[dict[str, Any]]) -> None:
    inc = _incident("off-hours-enumeration")
    evs = _events_of(day, inc)
    assert all(ev["actor"]["type"] == "employee" for ev in evs)
    assert not any(_business_hours(_ms(ev["ts"])) for ev in evs)
    assert len({ev["customer_id"] for ev in evs}) >= 300
    assert _ms(inc.end) - _ms(inc.start) < 3_600_000


def test_insider_export(day: list[dict[str, Any]]) -> None:
    evs = _events_of(day, _incident("insider-export"))
    assert all(ev["actor"]["type"] == "employee" for ev in evs)
    moved = sum(ev["bytes"] for ev in evs if ev["action"] in ("export", "download"))
    assert moved > 3 * 2**30


def test_denied_probe(day: list[dict[str, Any]]) -> None:
    evs = _events_of(day, _incident("denied-probe"))
    denied = [ev for ev in evs if ev["outcome"] == "denied"]
    assert len(denied) >= 40
    assert len({ev["resource"]["name"] for ev in denied}) >= 8
    assert _ms(denied[-1]["ts"]) - _ms(denied[0]["ts"]) <= 5 * 60_000
    assert all(ev["actor"]["type"] == "service" for ev in evs)


def test_slow_drip_stays_under_the_bulk_threshold_but_adds_up(day: list[dict[str, Any]]) -> None:
    inc = _incident("slow-drip")
    evs = [
        ev for ev in _events_of(day, inc)
        if ev["resource"]["name"] in CUSTOMER_TABLES and ev["action"] == "select"
    ]  # fmt: skip
    per_10min: defaultdict[int, int] = defaultdict(int)
    for ev in evs:
        per_10min[_ms(ev["ts"]) // 600_000] += ev["rows"]
    assert max(per_10min.values()) < 5_000
    assert sum(ev["rows"] for ev in evs) > 50_000
    assert _ms(inc.end) - _ms(inc.start) >= 3 * 3_600_000


# -- the bundled rules on a simulated day ----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("start", "seed"),
    [(START, 7), ("2026-03-08T05:00:00Z", 9)],  # Black Friday; a Sunday with the DST change
)
def test_bundled_rules_fire_on_every_incident_and_nothing_else(
    tmp_path: Path, start: str, seed: int
) -> None:
    day_file = tmp_path / "day.jsonl"
    with day_file.open("wb") as f:
        write_jsonl(generate(seed=seed, start=start), f)
    cmd = [sys.executable, "-m", "monitor", "replay", "--rules", str(RULES), str(day_file)]
    proc = subprocess.run([*cmd, "--format", "json"], capture_output=True, check=True)
    alerts = [orjson.loads(line) for line in proc.stdout.splitlines()]
    incidents = incidents_for(parse_start(start), 24.0)
    fired = {(a["rule"], a["group"]["actor.id"]) for a in alerts}
    expected = {(rule, inc.actor) for inc in incidents for rule in inc.rules}
    assert fired == expected
    for a in alerts:  # every alert belongs to its incident in time, too: no false positives
        inc = next(i for i in incidents if i.actor == a["group"]["actor.id"])
        assert _ms(inc.start) <= _ms(a["fired_at"]) <= _ms(inc.end)
