"""``exfil-monitor replay --input-format``: real logs through rules over canonical fields."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RULES = Path(__file__).resolve().parent / "rules"
OTRF = (
    REPO
    / "tests"
    / "data"
    / "cloudtrail-otrf-s3-exfil"
    / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
)
ROLE = "arn:aws:iam::123456789123:role/MordorNginxStack-BankingWAFRole-9S3E0UAE1MM0"


def replay(path: Path, fmt: str) -> tuple[list[dict[str, Any]], dict[str, str], str]:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", "--rules", str(RULES), "--input-format", fmt, str(path)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary = dict(line.strip().partition(": ")[::2] for line in done.stderr.splitlines())
    return [json.loads(line) for line in done.stdout.splitlines()], summary, done.stderr


def test_real_postgres_log_through_the_rules(shop_log: bytes, tmp_path: Path) -> None:
    log = tmp_path / "postgresql.csv"
    log.write_bytes(shop_log)
    alerts, summary, _ = replay(log, "pgaudit")
    fired = {(a["rule"], a["group"]["actor.id"], a["value"]) for a in alerts}
    assert fired == {("bulk-table-read", "hvac_vendor", 500), ("denied-reads", "hvac_vendor", 3)}
    assert summary["invalid"] == "0"
    assert (
        "(not_data_access: " in summary["skipped (not data access)"]
    )  # checkpoints, connections received


def test_otrf_sweep_caught_by_a_rule_over_canonical_fields() -> None:
    alerts, summary, _ = replay(OTRF, "cloudtrail")
    assert [(a["rule"], a["group"]["actor.id"]) for a in alerts] == [("bucket-sweep", ROLE)]
    assert summary["events used"] == "103"


def test_delivery_files_and_malformed_records_are_counted(tmp_path: Path) -> None:
    records = [json.loads(line) for line in OTRF.read_bytes().splitlines()]
    delivery = tmp_path / "delivery.json"
    delivery.write_text(
        json.dumps({"Records": records[:50]})
        + "\nnot json\n"
        + json.dumps({"Records": records[50:]})
        + "\n"
    )
    alerts, summary, stderr = replay(delivery, "cloudtrail")
    assert summary["events read"].startswith("104 ") and summary["events used"] == "103"
    assert summary["invalid"] == "1 (invalid_json: 1)"
    assert f"{delivery}:2" in stderr  # where the bad record is
    assert [a["rule"] for a in alerts] == ["bucket-sweep"]


def test_an_unknown_format_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "replay", "--rules", str(RULES), "--input-format", "xml", str(OTRF)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "known: jsonl, pgaudit" in done.stderr
