"""Who is who (``actors:``) and custom mappings (``inputs:``) from the rule files, seen
the same way by every path: the pipeline the daemon uses, ``replay`` and ``test``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.decode import Decoder
from monitor.engine import Engine
from monitor.inputs.actors import ActorTable, BadPattern, glob_regex
from monitor.pipeline import Pipeline
from monitor.rules.loader import load_rules, load_texts
from monitor.ruletest import run_tests
from monitor.telemetry import quiet_telemetry
from tests.inputs.test_pgaudit import DENIED, README_SELECT

REPO = Path(__file__).resolve().parents[2]
OTRF = REPO / "tests" / "data" / "cloudtrail-otrf-s3-exfil" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
ROLE = "arn:aws:iam::123456789123:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"

TABLE = ActorTable({"vendor": ("*_vendor", "vendor-*"), "service": ("svc-[a-z]?", "[!x]ummy"), "employee": ("*",)})


@pytest.mark.parametrize(
    ("account", "kind"),
    [
        ("hvac_vendor", "vendor"), ("vendor-acme", "vendor"), ("svc-ab", "service"), ("dummy", "service"),
        ("xummy", "employee"), ("svc-a", "employee"), ("a\nb_vendor", "vendor"), ("", "employee"),
    ],
)  # fmt: skip
def test_first_type_in_table_order_whose_glob_matches_in_full(account: str, kind: str) -> None:
    assert TABLE.type_of(account) == kind


def test_no_match_is_unknown_and_patterns_are_case_sensitive() -> None:
    table = ActorTable({"vendor": ("*_vendor",)})
    assert table.type_of("HVAC_VENDOR") == "unknown"
    assert table.type_of("hvac_vendor.") == "unknown"  # in full, not a prefix


def test_fill_only_where_the_event_has_no_type_and_an_account() -> None:
    table = ActorTable({"vendor": ("*_vendor",)})
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"actor": {"id": "hvac_vendor", "kind": "AssumedRole"}}, {"actor": {"id": "hvac_vendor", "kind": "AssumedRole", "type": "vendor"}}),
        ({"actor": {"id": "ann", "type": "employee"}}, {"actor": {"id": "ann", "type": "employee"}}),
        ({"actor": {"id": "bob", "type": None}}, {"actor": {"id": "bob", "type": "unknown"}}),
        ({"actor": {"id": 7}}, {"actor": {"id": 7}}),
        ({"actor": "hvac_vendor"}, {"actor": "hvac_vendor"}),
        ({"user": "x"}, {"user": "x"}),
    ]  # fmt: skip
    for given_, want in cases:
        table.fill(given_)
        assert given_ == want


@given(st.text(alphabet="ab*?[]!-_.\\^$", max_size=12), st.text(alphabet="ab[]!-_.\\^$", max_size=12))
def test_globs_mean_what_fnmatch_means(pattern: str, name: str) -> None:
    import fnmatch

    try:
        glob_regex(pattern)
    except BadPattern:
        return
    assert ActorTable({"vendor": (pattern,)}).type_of(name) == ("vendor" if fnmatch.fnmatchcase(name, pattern) else "unknown")


def test_the_daemons_decode_path_fills_actor_type() -> None:
    """The daemon decodes through Pipeline.decode with the wall clock as reference."""
    rs = load_texts([("r.yaml", b'actors:\n  vendor: ["*_vendor"]\nrules: []\n')])
    pipeline = Pipeline(Decoder(), Engine(rs), quiet_telemetry())
    raws = [orjson.dumps({"ts": 1_700_000_000_000, "actor": {"id": "hvac_vendor"}}),
            orjson.dumps({"ts": 1_700_000_000_001, "actor": {"id": "ann", "type": "employee"}})]  # fmt: skip
    good, bad = pipeline.decode(raws, str, reference_ms=1_700_000_000_002)
    assert bad == []
    assert [e["actor"]["type"] for e, _ in good] == ["vendor", "employee"]


# -- a rule pack with both tables, through replay and its own tests ---------------------

PACK = """\
actors:
  vendor: ["*_vendor", "vendor-*"]
  service: ["arn:aws:iam::*:role/*"]
inputs:
  shop-api:
    from: jsonl
    fields: {ts: time, actor.id: user.name, resource.name: path}
    constants: {resource.kind: api, action: select}
  trail:
    from: cloudtrail
    constants: {app: mordor}
rules:
  - id: vendor-reads
    severity: high
    match: {actor.type: vendor, action: select}
    group_by: [actor.id]
    window: 10m
    threshold: {gte: 2}
  - id: unknown-account
    severity: low
    match: {actor.type: unknown}
    group_by: [actor.id]
  - id: service-bucket-sweep
    severity: high
    match: {actor.type: service, resource.kind: bucket, app: mordor}
    group_by: [actor.id]
    window: 10m
    threshold: {gte: 5}
"""

TESTS = """\
cases:
  - name: a vendor through the custom API input
    rules: [vendor-reads, unknown-account]
    input_format: shop-api
    events:
      - {time: "2026-11-27T10:00:00Z", user: {name: acme_vendor}, path: /customers}
      - {time: "2026-11-27T10:01:00Z", user: {name: acme_vendor}, path: /customers}
      - {time: "2026-11-27T10:02:00Z", user: {name: ann}, path: /orders}
    expect:
      - {rule: vendor-reads, group: {actor.id: acme_vendor}, value: 2}
      - {rule: unknown-account, group: {actor.id: ann}}
  - name: pgaudit lines as PostgreSQL writes them
    rules: [unknown-account, vendor-reads]
    input_format: pgaudit
    events_file: fixtures/postgres.csv
    expect:
      - {rule: unknown-account, group: {actor.id: alice}}
  - name: an unreadable record is a problem of the case
    input_format: pgaudit
    events: ["not a csvlog line"]
    expect: []
  - name: an input that does not exist
    input_format: nope
    events: []
    expect: []
"""


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "rules.yaml").write_text(PACK)
    (tmp_path / "pack.test.yaml").write_text(TESTS)
    # alice is no one the table knows; hvac_vendor is a vendor, refused once (one read, not two)
    (tmp_path / "fixtures" / "postgres.csv").write_text(README_SELECT + "\n" + DENIED + "\n")
    return tmp_path


def test_rule_tests_see_custom_inputs_actor_types_and_input_format(pack: Path) -> None:
    results = run_tests(pack, load_rules(pack))
    by_name = {r.name: r for r in results}
    ok = by_name["a vendor through the custom API input"]
    assert ok.passed, ok.report()
    pg = by_name["pgaudit lines as PostgreSQL writes them"]
    assert pg.passed, pg.report()
    assert by_name["an unreadable record is a problem of the case"].problems == [
        "event 1 cannot be read as pgaudit: bad_record"
    ]
    (problem,) = by_name["an input that does not exist"].problems
    assert problem.startswith("input_format: unknown input format 'nope'; known: jsonl, pgaudit") and problem.endswith("shop-api, trail")


def test_replay_with_a_custom_input_named_on_the_command_line(pack: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", "--rules", str(pack), "--input-format", "trail", str(OTRF)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    sweeps = [a["group"] for a in alerts if a["rule"] == "service-bucket-sweep"]
    assert sweeps == [{"actor.id": ROLE}]  # the role is a service by the table; the constant app: mordor is set
    unknown = {a["group"]["actor.id"] for a in alerts if a["rule"] == "unknown-account"}
    assert "arn:aws:iam::123456789123:user/pedro" in unknown and ROLE not in unknown
    bad = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", "--rules", str(pack), "--input-format", "trial", str(OTRF)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--input-format: unknown input format 'trial'" in bad.stderr and "shop-api, trail" in bad.stderr
