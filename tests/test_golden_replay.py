"""Replay of a simulated week, byte for byte against a golden file.

The golden file was written before the pipeline, operators and event model were
restructured (issue 7); a restructuring that changes one byte of what replay prints has
changed behaviour, not only shape. Regenerate it only for a deliberate change of the
alert format, with the command in :data:`REGENERATE`, and say so in the CHANGELOG.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "golden" / "week-seed11.alerts.jsonl"
SIMULATE = ["simulate", "--seed", "11", "--hours", "168", "--events", "100000"]
REGENERATE = "exfil-monitor simulate --seed 11 --hours 168 --events 100000 | exfil-monitor replay - > " + str(
    GOLDEN.relative_to(REPO)
)


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args], input=stdin, capture_output=True, check=True, timeout=300
    )


@pytest.mark.slow
def test_replay_of_a_simulated_week_is_byte_identical_to_the_golden_file() -> None:
    events = _cli(*SIMULATE).stdout
    alerts = _cli("replay", "--rules", str(REPO / "rules"), "-", stdin=events).stdout
    assert alerts == GOLDEN.read_bytes(), f"replay's output changed; if deliberate: {REGENERATE}"
