"""`exfil-monitor simulate`'s arguments: mistakes are usage errors (exit 2), never tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "yesterday"], "argument --start: expected an RFC 3339 time like 2026-11-27T00:00:00Z, got 'yesterday'"),
        (["--start", "2026-13-01T00:00:00Z"], "argument --start: expected an RFC 3339 time"),
        (["--hours", "-1"], "argument --hours: expected a number above zero, got '-1'"),
        (["--hours", "0"], "argument --hours: expected a number above zero"),
        (["--hours", "nan"], "argument --hours: expected a number above zero"),
        (["--hours", "inf"], "argument --hours: expected a number above zero"),
        (["--events", "0"], "argument --events: expected a whole number above zero, got '0'"),
        (["--events", "-5"], "argument --events: expected a whole number above zero"),
        (["--rate", "-3", "--to-kafka", "127.0.0.1:1"], "argument --rate: expected a number above zero"),
        (["-o", "/nonexistent-dir/day.jsonl"], "argument -o/--output: cannot write /nonexistent-dir/day.jsonl: No such file or directory"),
        (["-o", "/"], "argument -o/--output: cannot write /: Is a directory"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", "--hours", "0.01", *args])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: exfil-monitor simulate")
    assert message in err


def test_an_unwritable_output_from_the_real_command_has_no_traceback() -> None:
    done = subprocess.run([sys.executable, "-m", "monitor", "simulate", "--hours", "0.01", "-o", "/dev/full/x"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "error: argument -o/--output: cannot write /dev/full/x" in done.stderr


def test_good_arguments_still_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "day.jsonl"
    assert main(["simulate", "--hours", "0.05", "--start", "2026-11-27T00:00:00+01:00", "-o", str(out)]) == 0
    assert out.read_bytes().count(b"\n") > 0
    assert capsys.readouterr().err.startswith("wrote ")
