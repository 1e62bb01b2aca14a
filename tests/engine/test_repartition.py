"""Repartitioning: which rules move, what is forwarded, and that counting after it (with
events forwarded again after a crash) gives the alerts of one engine over every event."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from aiokafka.structs import TopicPartition
from hypothesis import given
from hypothesis import strategies as st

from monitor.engine import Engine, EngineOptions
from monitor.engine.partitioned import Partitioned
from monitor.engine.repartition import ROUTE_FIELD, Router, Split, repartitioned
from monitor.event import PROVENANCE
from monitor.sources.repartition import chunks, count, stamp
from tests.engine.test_properties import SEC, SETTINGS, streams
from tests.support.engine import T0, ruleset, run

INTERNAL = "g.repartition"
RULES = """
rules:
  - {id: by-actor, severity: high, group_by: [actor.id], window: 60s, threshold: {gte: 3}}
  - id: by-customer
    severity: high
    match: {action: select}
    group_by: [cust]
    window: 60s
    aggregate: {distinct: actor.id}
    threshold: {gte: 2}
    annotations: {summary: "{cust} read by {value} accounts, last {app}"}
  - {id: shop-wide, severity: high, window: 120s, aggregate: {sum: rows}, threshold: {gt: 120}}
  - {id: each-select, severity: low, match: {action: select}}
  - {id: customer-once, severity: low, match: {action: select}, group_by: [cust], suppress: 1h}
  - {id: each-customer, severity: low, match: {action: select}, group_by: [cust]}
"""


def test_rules_grouped_otherwise_or_windowed_without_groups_move() -> None:
    rs = ruleset(RULES)
    moved = {r.id for r in rs.enabled if repartitioned(r.spec, "actor.id")}
    assert moved == {"by-customer", "shop-wide", "customer-once"}
    assert {r.id for r in rs.enabled if repartitioned(r.spec, "cust")} == {"by-actor", "shop-wide"}
    unkeyed = {r.id for r in rs.enabled if repartitioned(r.spec, "actor.id", keyed=False)}
    assert unkeyed == {"by-actor", "by-customer", "shop-wide", "customer-once"}, "all that remember a group"


def test_the_split_runs_each_rule_on_one_side_and_forwards_once_per_group_by() -> None:
    split = Split.of(ruleset(RULES), "actor.id")
    assert [r.id for r in split.local.enabled] == ["by-actor", "each-select", "each-customer"]
    assert [r.id for r in split.internal.enabled] == ["by-customer", "shop-wide", "customer-once"]
    assert [(r.name, [x.id for x in r.rules]) for r in split.routes] == [
        ('["cust"]', ["by-customer", "customer-once"]),
        ("[]", ["shop-wide"]),
    ]
    e = {"ts": T0, "id": "e1", "actor": {"id": "a", "ip": "10.0.0.1"}, "action": "select", "cust": 7, "rows": 3,
         "app": "crm", "bytes": 10, PROVENANCE: "t/0@5"}  # fmt: skip
    [(key1, by_cust), (key2, shop)] = split.forward(e, T0)
    assert orjson.loads(key1) == ['["cust"]', 7] and orjson.loads(key2) == ["[]"]
    assert split.routes[0].key({**e, "cust": 7.0}) == key1, "one group, one partition"
    assert by_cust == {"id": "e1", PROVENANCE: "t/0@5", "action": "select", "cust": 7, "actor": e["actor"],
                       "app": "crm", ROUTE_FIELD: '["cust"]'}, "what its rules read (templates too), nothing else"  # fmt: skip
    assert shop == {"id": "e1", PROVENANCE: "t/0@5", "rows": 3, ROUTE_FIELD: "[]"}
    assert [k for k, _ in split.forward({**e, "action": "insert"}, T0)] == [key2], "by-customer matches selects"


def test_routes_of_different_groupings_never_share_a_name() -> None:
    rs = ruleset("rules:\n"
                 '  - {id: one, severity: high, group_by: ["a,b"], window: 60s, threshold: {gte: 2}}\n'
                 "  - {id: two, severity: high, group_by: [a, b], window: 60s, threshold: {gte: 2}}\n")  # fmt: skip
    assert len({r.name for r in Split.of(rs, "actor.id").routes}) == 2


def test_a_rule_set_without_such_rules_forwards_nothing() -> None:
    split = Split.of(ruleset("rules:\n  - {id: r, severity: high, group_by: [actor.id], window: 60s, threshold: {gte: 2}}\n"),
                     "actor.id")  # fmt: skip
    assert split.routes == () and split.local.enabled == split.local.rules


def test_an_event_of_one_route_is_not_counted_by_another_routes_rules() -> None:
    """Both routes forward the event to whichever internal partition: each copy is counted
    by its own route's rules only (shop-wide would otherwise count its rows twice)."""
    split = Split.of(ruleset(RULES), "actor.id")
    engine = Engine(split.internal, EngineOptions())
    e = {"ts": T0, "id": "e1", "actor": {"id": "a"}, "action": "select", "cust": 7, "rows": 50}
    copies = [reduced for _, reduced in split.forward(e, T0)]
    assert len(copies) == 2
    alerts = engine.process([(dict(c, id="e2"), T0 + i) for i, c in enumerate(copies * 2)])
    assert {a.rule for a in alerts} == {"customer-once"}, "50 + 50 rows is not over 120, each counted once"
    [alert] = engine.process([(dict(copies[1], id="e3"), T0 + 5)])
    assert (alert.rule, alert.value) == ("shop-wide", 150)


def test_the_partitioned_engines_run_their_views_and_reload_them() -> None:
    rs = ruleset(RULES)
    engines = Partitioned(rs, EngineOptions(), Router("actor.id", True, INTERNAL))
    src, internal = TopicPartition("events", 0), TopicPartition(INTERNAL, 3)
    assert [r.id for r in engines.fresh(src).ruleset.enabled] == ["by-actor", "each-select", "each-customer"]
    assert [r.id for r in engines.fresh(internal).ruleset.enabled] == ["by-customer", "shop-wide", "customer-once"]
    engines.slot(src), engines.slot(internal)
    engines.reload(ruleset(RULES.replace("gte: 3", "gte: 4")))
    assert engines.slots[internal].engine.ruleset.enabled[0].id == "by-customer"
    assert engines.slots[src].engine.ruleset.enabled[0].spec.threshold == 4


SOURCES, INTERNALS = 3, 2


@SETTINGS
@given(events=streams(), placement=st.randoms(use_true_random=False), crash=st.integers(0, 80),
       group_by=st.sampled_from([["cust"], []]))  # fmt: skip
def test_counted_after_repartitioning_with_events_forwarded_twice_gives_one_engines_alerts(
    events: list[tuple[dict[str, Any], int]], placement: Any, crash: int, group_by: list[str]
) -> None:
    """Events land on source partitions however a producer placed them; each partition's
    matches are forwarded (stamped) to the internal partition of their group, and a crash
    forwards each source partition's tail again, after everything. Each internal
    partition's engine counts every event once: the alerts are one engine's over all."""
    rule = {"id": "r", "severity": "high", "group_by": group_by, "window": "60s",
            "aggregate": {"sum": "rows"}, "threshold": {"gt": 60}}  # fmt: skip
    rs = ruleset("rules:\n  - " + orjson.dumps(rule).decode() + "\n")
    options = EngineOptions(allowed_lateness_ms=120 * SEC)
    expected = sorted(a.id for a in run(Engine(rs, options), events, batch=len(events) or 1))

    router = Router("actor.id", False, INTERNAL)
    split = router.split(rs)
    forwarded: list[tuple[int, tuple[int, int], Any]] = []  # (internal partition, arrival, forwarded event)
    by_source: dict[int, list[tuple[int, dict[str, Any], int]]] = {}
    for i, (e, ts) in enumerate(events):
        by_source.setdefault(placement.randrange(SOURCES), []).append((i, e, ts))
    for p, evs in by_source.items():
        sent = []
        for offset, (i, e, ts) in enumerate(evs):  # an event per record, stamped as the daemon stamps it
            where = f"events/{p}@{offset}"
            stamped = stamp(split, f"events/{p}", {where: offset}, [({**e, PROVENANCE: where}, ts)],
                            lambda key: zlib.crc32(key) % INTERNALS)  # fmt: skip
            sent += [(q, i, f) for _, q, f in stamped]
        forwarded += [(q, (i, 0), rec) for q, i, rec in sent]
        # read again from a checkpoint before the crash: forwarded again, after everything
        forwarded += [(q, (len(events) + i, 1), rec) for q, i, rec in sent[crash % (len(sent) + 1) :]]
    engines = Partitioned(rs, options, router)
    got = []
    marks: dict[int, dict[str, Any]] = {}
    arrival = sorted(forwarded, key=lambda x: x[1])  # as produced: each source's order kept
    for q, record, _ in chunks([(q, f) for q, _, f in arrival], INTERNALS):
        counted, _, misplaced = count(record, marks.setdefault(q, {}), INTERNALS)
        assert not misplaced
        for e, ts in counted:
            got += engines.process({TopicPartition(INTERNAL, q): [(e, ts)]}, {})
    assert sorted(a.id for a in got) == expected
