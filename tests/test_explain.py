"""``exfil-monitor explain``: exactly the events the engine had in an alert's window.

Checked against the engine itself: for every alert of a replay, the listed events are as
many as the alert's ``event_count``, each lies in the window and matches the rule, and
the running aggregate ends at the alert's ``value``; for every window kind (count, sum,
distinct, max, one event), with events out of order, late drops, forgotten and evicted
groups, on the simulator's shop and on a real CloudTrail recording.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import bundled_rules, main
from monitor.decode import Decoder
from monitor.engine import Alert, Engine, EngineOptions
from monitor.explain import Explanation, explain, find, write_table
from monitor.inputs import get_format
from monitor.inputs.reader import MappedFileSource
from monitor.pipeline import Pipeline
from monitor.replay import run_replay
from monitor.rules.loader import RuleSet, load_rules, load_texts
from monitor.simulate import generate, write_jsonl
from monitor.sources.files import Batch, FileSource
from monitor.telemetry import quiet_telemetry

REPO = Path(__file__).resolve().parent.parent
OTRF = REPO / "tests" / "data" / "cloudtrail-otrf-s3-exfil" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
CANONICAL = REPO / "tests" / "inputs" / "rules" / "canonical.yaml"
T0 = 1_795_773_600_000  # 2026-11-27T10:00:00Z

Source = Callable[[], Iterable[Batch]]


def jsonl_source(path: Path) -> Source:
    return lambda: FileSource([str(path)]).batches()


def replay_all(ruleset: RuleSet, source: Source, options: EngineOptions) -> list[Alert]:
    alerts: list[Alert] = []
    pipeline = Pipeline(Decoder(max_future_skew_ms=0), Engine(ruleset, options), quiet_telemetry(), emit=alerts.append)
    for batch in source():
        pipeline.feed(batch)
    return alerts


def explain_each(ruleset: RuleSet, source: Source, options: EngineOptions) -> list[tuple[Alert, Explanation]]:
    """Every alert of a replay, found again by id and explained. An id fired twice (a
    group evicted past --max-groups forgets its suppression) is explained at its first."""

    def decoder() -> Decoder:
        return Decoder(max_future_skew_ms=0)

    out = []
    first: dict[str, Alert] = {}
    for a in replay_all(ruleset, source, options):
        first.setdefault(a.id, a)
    for alert in first.values():
        found = find(alert.id, ruleset, options, decoder, source)
        assert found is not None and found.to_dict() == alert.to_dict()
        out.append((alert, explain(found, ruleset, options, decoder, source)))
    return out


def holds(ruleset: RuleSet, alert: Alert, x: Explanation) -> None:
    """The explanation is exactly the alert's window."""
    rule = next(r for r in ruleset.rules if r.id == alert.rule)
    assert len(x.events) == alert.event_count, alert.to_dict()
    if not (alert.estimated or x.approximate):
        assert x.value() == alert.value
    for e, ts, _ in x.events:
        if alert.window is not None:
            assert alert.window_start_ms <= ts < alert.window_end_ms
        else:
            assert ts == alert.fired_at_ms
        idx = rule.index
        assert idx is None or (_get(e, idx.path) == idx.value if idx.op == "eq" else _get(e, idx.path) in idx.value)
        assert rule.test(e, ts)
        assert {k: _get(e, k) for k in alert.group} == alert.group


def _get(e: dict[str, Any], path: str) -> Any:
    v: Any = e
    for p in path.split("."):
        v = v.get(p) if isinstance(v, dict) else None
    return v


# -- the simulator's shop ------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shop") / "day.jsonl"
    with path.open("wb") as f:
        write_jsonl(generate(seed=11, start="2026-11-27T00:00:00Z", hours=24, events=30_000, incidents=True), f)
    return path


def test_every_alert_of_the_simulated_day_is_explained_exactly(shop: Path) -> None:
    ruleset = load_rules(bundled_rules())
    explained = explain_each(ruleset, jsonl_source(shop), EngineOptions())
    assert {a.rule for a, _ in explained} >= {"bulk-customer-read", "customer-enumeration", "sustained-customer-read"}
    for alert, x in explained:
        holds(ruleset, alert, x)


def test_the_command_prints_a_table_and_json(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ruleset = load_rules(bundled_rules())
    counting = {r.id for r in ruleset.rules if r.spec.aggregate == "count" and r.spec.window_ms}
    alert = next(a for a in replay_all(ruleset, jsonl_source(shop), EngineOptions()) if a.rule in counting)
    assert alert.value > 1
    assert main(["explain", alert.id, str(shop)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"alert {alert.id}: rule {alert.rule} (")
    rows = [line for line in out if line[:5].strip().isdigit()]
    assert len(rows) == alert.event_count
    assert rows[-1].split()[-1] == f"{alert.value:,}"  # the running count ends at the alert's value
    assert out[-1] == f"{alert.event_count} event(s) in the window; count = {alert.value:,}"
    assert main(["explain", alert.id, "--format", "json", str(shop)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["alert"]["id"] == alert.id and doc["aggregate"] == {"kind": "count", "field": None, "value": alert.value}
    assert [e["running"] for e in doc["events"]] == list(range(1, alert.value + 1))
    assert all(e["event"]["actor"]["id"] == alert.group["actor.id"] for e in doc["events"])


def test_an_alert_the_input_does_not_fire_and_standard_input_are_refused(
    shop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "0000000000000000", str(shop)]) == 1
    assert "does not fire from this input" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["explain", "0000000000000000", "-"])
    assert info.value.code == 2
    assert "reads its input twice" in capsys.readouterr().err


# -- a real CloudTrail recording -------------------------------------------------------


def test_the_otrf_bucket_sweep_through_cloudtrail(capsys: pytest.CaptureFixture[str]) -> None:
    ruleset = load_rules(CANONICAL)
    fmt = get_format("cloudtrail")
    source: Source = lambda: MappedFileSource([str(OTRF)], fmt).batches()  # noqa: E731
    ((alert, x),) = explain_each(ruleset, source, EngineOptions())
    assert alert.rule == "bucket-sweep"
    holds(ruleset, alert, x)
    assert {e["resource"]["kind"] for e, _, _ in x.events} == {"bucket"}
    assert main(["explain", alert.id, "--rules", str(CANONICAL), "--input-format", "cloudtrail", str(OTRF)]) == 0
    out = capsys.readouterr().out
    assert f"{alert.event_count} event(s) in the window; count = {alert.value}" in out
    assert "ListBuckets" in out or "GetObject" in out or "ListObjects" in out


# -- every window kind, events out of order ---------------------------------------------

KINDS = """\
rules:
  - id: n
    severity: low
    match: {action: select}
    group_by: [actor]
    window: 10s
    resolution: 2s
    threshold: {gte: 3}
    suppress: 4s
  - id: s
    severity: low
    match: {action: {in: [select, export]}}
    group_by: [actor]
    window: 10s
    aggregate: {sum: rows}
    threshold: {gte: 12}
  - id: d
    severity: low
    match: {action: select}
    group_by: [actor]
    window: 6s
    aggregate: {distinct: table}
    threshold: {gte: 2}
  - id: m
    severity: low
    match: {rows: {gte: 0}}
    group_by: [actor, action]
    window: 4s
    aggregate: {max: rows}
    threshold: {gte: 8}
  - id: one
    severity: low
    match: {action: export}
    group_by: [actor]
    threshold: {gte: 1}
    suppress: 3s
"""

event = st.fixed_dictionaries({
    "t": st.integers(0, 12_000),
    "actor": st.sampled_from(["a", "b"]),
    "action": st.sampled_from(["select", "select", "select", "export", "login"]),
    "rows": st.one_of(st.integers(0, 10), st.just("many")),
    "table": st.sampled_from(["customers", "cards", "orders"]),
})  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, min_size=1, max_size=40), lateness=st.sampled_from([0, 3000, 60_000]),
       max_groups=st.sampled_from([1, 2, 100]), exact=st.sampled_from([1, 4096]))  # fmt: skip
def test_every_window_kind_is_explained_exactly(
    tmp_path: Path, events: list[dict[str, Any]], lateness: int, max_groups: int, exact: int
) -> None:
    ruleset = load_texts([("kinds.yaml", KINDS.encode())])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(
        orjson.dumps({"ts": T0 + e["t"], "id": f"e{i}", **{k: v for k, v in e.items() if k != "t"}}) + b"\n"
        for i, e in enumerate(events)
    ))  # fmt: skip
    options = EngineOptions(allowed_lateness_ms=lateness, max_groups_per_rule=max_groups, distinct_exact_limit=exact)
    for alert, x in explain_each(ruleset, jsonl_source(path), options):
        holds(ruleset, alert, x)


def test_the_table_says_when_the_alert_value_is_an_estimate(tmp_path: Path) -> None:
    rules = load_texts([("r.yaml", b"rules:\n  - {id: r, severity: low, group_by: [actor], window: 1m, threshold: {gte: 3}}\n")])
    lines = [{"ts": T0, "actor": "a"}, {"ts": T0 + 1, "actor": "a"}, {"ts": T0 + 2, "actor": "b"},
             {"ts": T0 + 3, "actor": "a"}]  # fmt: skip
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in lines))
    options = EngineOptions(max_groups_per_rule=1)
    ((alert, x),) = explain_each(rules, jsonl_source(path), options)
    assert alert.estimated and alert.value == 3 and len(x.events) == 1
    out = io.StringIO()
    write_table(x, out)
    assert "(the alert says 3)" in out.getvalue() and "estimate of evicted groups" in out.getvalue()


def test_replay_and_explain_agree_on_ids(shop: Path) -> None:
    ruleset = load_rules(bundled_rules())
    printed: list[Alert] = []
    run_replay(FileSource([str(shop)]), Decoder(), Engine(ruleset), printed.append, quiet_telemetry())
    assert printed
    for alert in printed[:3]:
        assert find(alert.id, ruleset, EngineOptions(), Decoder, jsonl_source(shop)) is not None
