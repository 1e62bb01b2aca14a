"""``replay --warmup``: warm files train every rule's state and print nothing; the files
after them are replayed as the continuation of one timeline."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from monitor.cli import main
from monitor.simulate import generate

RULES = Path(__file__).resolve().parent.parent / "rules"


def write(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[set[str], str]:
    assert main(["replay", "--rules", str(RULES), *args]) == 0
    out, err = capsys.readouterr()
    return {orjson.loads(line)["id"] for line in out.splitlines()}, err


def test_warm_files_train_the_state_and_only_the_rest_alerts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Warm-up on the first half of a simulated day, then the second half: exactly the
    alerts a replay of the whole day raises on the second half, windows spanning the
    boundary included (the first half alone does not raise them)."""
    events = list(generate(seed=19, start="2026-11-27T00:00:00Z", hours=24, events=20_000))
    half = len(events) // 2
    first, second = write(tmp_path / "a.jsonl", events[:half]), write(tmp_path / "b.jsonl", events[half:])
    whole, _ = replay(capsys, str(first), str(second))
    before, _ = replay(capsys, str(first))
    cold, _ = replay(capsys, str(second))
    warm, summary = replay(capsys, "--warmup", str(first), str(second))
    assert warm == whole - before
    assert warm != cold, "the boundary should split some window: warm state matters"
    assert f"warm-up: {half} events read, {half} used, 0 invalid, {len(before)} alerts held back" in summary
    assert f"events read: {len(events) - half} " in summary


def test_a_warm_file_that_cannot_be_read_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rest = write(tmp_path / "b.jsonl", [])
    assert main(["replay", "--rules", str(RULES), "--warmup", str(tmp_path / "missing.jsonl"), str(rest)]) == 1
    assert "missing.jsonl" in capsys.readouterr().err
