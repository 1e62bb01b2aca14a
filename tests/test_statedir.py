"""state.dir: created when missing, locked by one daemon at a time, released however it ends."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import EXIT_FAILED, Daemon
from monitor.config import ConfigError, load_config
from monitor.statedir import LOCK_NAME, StateDir, StateDirError, StateDirLocked

REPO = Path(__file__).resolve().parent.parent

HOLDER = """
import sys
from pathlib import Path
from monitor.statedir import StateDir
s = StateDir(Path(sys.argv[1]))
s.acquire()
print("held", flush=True)
sys.stdin.read()
s.release()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """Another process holding the lock on tmp_path/state until its stdin closes."""
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(state)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    with proc:  # closes the pipes
        yield state, proc
        if proc.poll() is None:
            proc.kill()


def test_a_second_holder_in_another_process_is_refused_and_told_who(holder: tuple[Path, subprocess.Popen[str]]) -> None:
    state, proc = holder
    assert (state / LOCK_NAME).read_text() == f"{proc.pid}\n"
    with pytest.raises(StateDirLocked) as info:
        StateDir(state).acquire()
    assert info.value.pid == proc.pid
    assert str(state) in str(info.value) and f"process {proc.pid}" in str(info.value)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(10) == 0
    mine = StateDir(state)
    mine.acquire()  # released at stop: free again
    assert mine.held
    mine.release()


def test_a_killed_holder_leaves_no_stale_lock(holder: tuple[Path, subprocess.Popen[str]]) -> None:
    state, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert (state / LOCK_NAME).read_text().strip() == str(proc.pid)  # the pid stays, the lock does not
    s = StateDir(state)
    s.acquire()
    s.release()


def test_lock_within_one_process_is_exclusive_too_and_release_is_idempotent(tmp_path: Path) -> None:
    """flock is per open file: two daemons in one process (as tests build them) exclude each other."""
    path = tmp_path / "a" / "b"
    first, second = StateDir(path), StateDir(path)
    first.acquire()
    assert path.is_dir()
    with pytest.raises(StateDirLocked):
        second.acquire()
    with pytest.raises(RuntimeError, match="already held"):
        first.acquire()
    first.release()
    first.release()
    assert (path / LOCK_NAME).read_text() == ""
    second.acquire()
    second.release()


def test_an_uncreatable_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirError, match=r"state directory .*/file/state: cannot create"):
        StateDir(tmp_path / "file" / "state").acquire()


# ---------------------------------------------------------------------------- config


def write_config(tmp_path: Path, **extra: object) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text("rules:\n  - id: r\n    severity: low\n    match: {action: select}\n")
    config = {"kafka": {"bootstrap_servers": ["127.0.0.1:1"], "topics": ["t"], "retry_backoff": "100ms"},
              "rules": {"path": "rules"}, "http": {"listen": "127.0.0.1:0"}, **extra}  # fmt: skip
    path = tmp_path / "monitor.yaml"
    path.write_bytes(orjson.dumps(config))
    return path


def test_state_dir_default_and_relative_to_the_config_file(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path), {}).state.dir == Path(".exfil-monitor")
    config = load_config(write_config(tmp_path, state={"dir": "var/state"}), {})
    assert config.state.dir == tmp_path / "var" / "state"
    env = load_config(write_config(tmp_path), {"EXFIL_MONITOR_STATE__DIR": "/var/lib/exfil-monitor"})
    assert env.state.dir == Path("/var/lib/exfil-monitor")
    with pytest.raises(ConfigError, match=r"state: unknown key 'dirr' \(did you mean 'dir'\?\)"):
        load_config(write_config(tmp_path, state={"dirr": "x"}), {})


# ---------------------------------------------------------------------------- daemon


async def test_a_daemon_on_a_locked_directory_refuses_to_start(
    tmp_path: Path, holder: tuple[Path, subprocess.Popen[str]]
) -> None:
    state, proc = holder
    err = io.StringIO()
    config = load_config(write_config(tmp_path, state={"dir": str(state)}), {})
    daemon = Daemon(config, registry=CollectorRegistry(), stderr=err)
    assert await asyncio.wait_for(daemon.run(), 10) == EXIT_FAILED
    (line,) = [orjson.loads(x) for x in err.getvalue().splitlines() if "state_dir_unavailable" in x]
    assert line["level"] == "error" and str(state) in line["error"] and f"process {proc.pid}" in line["error"]
    assert "rules_loaded" not in err.getvalue()  # refused before anything else


async def test_a_daemon_creates_its_directory_holds_the_lock_while_running_and_releases_it(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    config = load_config(write_config(tmp_path, state={"dir": str(state)}), {})
    err = io.StringIO()
    daemon = Daemon(config, registry=CollectorRegistry(), stderr=err, stdout=io.BytesIO())
    task = asyncio.ensure_future(daemon.run())
    for _ in range(200):
        if "http_listening" in err.getvalue():
            break
        await asyncio.sleep(0.02)
    assert (state / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    with pytest.raises(StateDirLocked):
        StateDir(state).acquire()
    daemon.request_stop()
    assert await asyncio.wait_for(task, 20) == 0
    after = StateDir(state)
    after.acquire()  # released at stop
    after.release()


def test_a_second_daemon_process_exits_1_naming_the_directory_and_the_pid(
    tmp_path: Path, holder: tuple[Path, subprocess.Popen[str]]
) -> None:
    """The real command: `exfil-monitor run` on a directory another process holds."""
    state, proc = holder
    config = write_config(tmp_path, state={"dir": str(state)})
    done = subprocess.run([sys.executable, "-m", "monitor", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"state directory {state} is in use by process {proc.pid}" in done.stderr
