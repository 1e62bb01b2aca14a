"""Loggers: one per stream, nothing global configured, JSON rendered by orjson."""

from __future__ import annotations

import io
import json

import structlog
from prometheus_client import CollectorRegistry

from monitor.engine.partitioned import Partitioned
from monitor.telemetry import Metrics, Telemetry, configure_logging
from tests.support.engine import T0, ruleset


def test_two_loggers_write_to_their_own_streams_and_leave_structlog_alone() -> None:
    before = structlog.get_config()
    a, b = io.StringIO(), io.StringIO()
    log_a = configure_logging("json", "info", a)
    log_b = configure_logging("console", "error", b)
    log_a.info("from_a", n=1, nested={"k": [1, 2]}, big=2**70)
    log_b.info("below_level")
    log_b.error("from_b")
    log_a.debug("below_level")
    line = json.loads(a.getvalue())
    assert (line["event"], line["level"], line["n"], line["nested"], line["big"]) == ("from_a", "info", 1, {"k": [1, 2]}, 2**70)
    assert "from_b" in b.getvalue() and "below_level" not in a.getvalue() + b.getvalue()
    assert structlog.get_config() == before


def test_a_binary_stream_gets_bytes() -> None:
    out = io.BytesIO()
    configure_logging("json", "info", out).warning("bytes", value="é")
    assert json.loads(out.getvalue())["value"] == "é"


def test_the_groups_gauge_sums_a_rule_over_partitions_and_drops_those_given_away() -> None:
    rs = ruleset("rules:\n  - {id: r, severity: low, group_by: [actor.id], window: 1m, threshold: {gte: 99}}\n")
    engines = Partitioned(rs)
    for p, actors in ((0, "ab"), (1, "c")):
        engines.process({p: [({"ts": T0, "actor": {"id": a}}, T0) for a in actors]}, {p: 1})
    t = Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "error", io.StringIO()))

    def groups() -> float | None:
        return t.metrics.registry.get_sample_value("exfil_monitor_active_groups", {"rule": "r"})

    t.batch_done(engines, 0.01, T0, T0)
    assert groups() == 3, "both partitions' groups"
    engines.drop([0])  # a rebalance gave partition 0 to another instance
    t.rules_swapped(engines.states)
    assert groups() == 1


def test_type_mismatches_are_counted_once_however_many_partitions_share_the_rule() -> None:
    """Every partition's state of a rule shares its one tally: a mismatch in one partition
    is one mismatch, before and after a reload carries the count over."""
    text = "rules:\n  - {id: r, severity: low, group_by: [actor.id], window: 1m, aggregate: {sum: rows}, threshold: {gte: 99}}\n"
    engines = Partitioned(ruleset(text))
    t = Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "error", io.StringIO()))

    def mismatches() -> float | None:
        return t.metrics.registry.get_sample_value("exfil_monitor_rule_type_mismatches_total", {"rule": "r"})

    def bad(p: int, ts: int) -> None:
        engines.process({p: [({"ts": ts, "actor": {"id": "a"}, "rows": "many"}, ts)]}, {p: 1})
        t.batch_done(engines, 0.01, ts, ts)

    for p in range(3):
        engines.process({p: [({"ts": T0, "actor": {"id": "a"}, "rows": 1}, T0)]}, {p: 1})
    bad(0, T0 + 1)
    assert mismatches() == 1
    bad(1, T0 + 2)
    assert mismatches() == 2
    engines.reload(ruleset(text.replace("gte: 99", "gte: 98")))
    t.rules_swapped(engines.states)
    t.batch_done(engines, 0.01, T0, T0)
    assert mismatches() == 2, "the carried count is not counted again"
    bad(2, T0 + 3)
    assert mismatches() == 3
