"""The wheel carries the bundled rule pack: installed in a fresh virtualenv, `demo` and
`replay` (no --rules) work from any directory, with nothing of the checkout in reach."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(argv: list[str | Path], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv}: exit {done.returncode}\n{done.stderr[-3000:]}"
    return done


def test_wheel_in_a_fresh_venv_runs_demo_and_replay_with_the_bundled_pack(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXFIL_MONITOR_", "PYTHON", "VIRTUAL_ENV"))}
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, REPO], tmp_path, env)
    (wheel,) = dist.glob("exfil_monitor-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-deps", wheel],
        tmp_path, env)  # fmt: skip
    # The dependencies come from this interpreter's site-packages, added as a plain path:
    # its .pth files (this checkout's editable install among them) are not processed.
    (purelib,) = [p for p in site.getsitepackages() if p.endswith("site-packages")]
    fresh_site = next((venv / "lib").glob("python3.*/site-packages"))
    (fresh_site / "deps.pth").write_text(purelib + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([venv / "bin" / "python", "-c", "import monitor, monitor.cli as c; print(monitor.__file__); print(c.bundled_rules())"],
                elsewhere, env).stdout.split()  # fmt: skip
    assert all(p.startswith(str(fresh_site)) for p in where), where
    assert (Path(where[1]) / "vendors.yaml").is_file() and (Path(where[1]) / "fixtures").is_dir()

    exe = venv / "bin" / "exfil-monitor"
    demo = run([exe, "demo"], elsewhere, env)
    assert "Target-style" in demo.stdout and "Alerts on ordinary traffic (false positives): 0" in demo.stdout
    run([exe, "simulate", "--hours", "3", "--start", "2026-11-27T07:00:00Z", "-o", "day.jsonl"], elsewhere, env)
    replay = run([exe, "replay", "--format", "table", "day.jsonl"], elsewhere, env)
    assert "events read: " in replay.stderr and "alerts: " in replay.stderr
    assert run([exe, "check", where[1]], elsewhere, env).stdout.startswith("ok: ")
    assert run([exe, "test", where[1]], elsewhere, env).stdout.splitlines()[-1].endswith(" 0 failed")
