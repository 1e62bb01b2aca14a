"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on loopback, in a temp dir.

Clustering is off (``--cluster.listen-address=`` empty), so instances started here are
independent, as two replicas are while their gossip is partitioned, and nothing listens
beyond loopback. The configuration routes everything to a receiver that notifies
nobody: the tests read what Alertmanager holds through its API v2.

When the binary is missing or will not start, tests skip with the reason, except under
``CI=true``, where that fails the run.

The ``alertmanagers`` fixture (loaded from tests/conftest.py's ``pytest_plugins``) is the
one way tests start them: ``make(port=None) -> Alertmanager``, each in a folder of its
own under the test's tmp_path, every one killed when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

BINARIES = ("prometheus-alertmanager", "alertmanager")
CONFIG = """\
route:
  receiver: nobody
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nobody
"""


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: the tests need it)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def binary() -> str | None:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Alertmanager:
    """One instance. ``restart_fresh`` kills it and starts a new one with empty storage on
    the same port, as a replaced pod comes back with nothing it knew."""

    def __init__(self, workdir: Path, port: int | None = None, config: str = CONFIG) -> None:
        exe = binary()
        if exe is None:
            raise RuntimeError(
                "no Alertmanager binary on PATH (apt-get install prometheus-alertmanager)"
            )
        self.exe = exe
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "alertmanager.yml"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.generation = 0

    def start(self, timeout: float = 20.0) -> None:
        if self.proc is not None:
            raise RuntimeError("Alertmanager is already running")
        self.generation += 1
        storage = self.workdir / f"data-{self.generation}"
        storage.mkdir()
        self.log_path = self.workdir / f"alertmanager-{self.generation}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [self.exe, f"--config.file={self.config_path}", f"--storage.path={storage}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                 "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r,
            ):
                if r.status == 200:
                    return
            time.sleep(0.1)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.kill()
        raise RuntimeError(f"Alertmanager did not become ready on {self.url}:\n{tail}")

    def kill(self) -> None:
        """SIGKILL: it loses whatever it held in memory."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart_fresh(self) -> None:
        self.kill()
        self.start()

    def alerts(self) -> list[dict[str, Any]]:
        """What it holds now, as ``GET /api/v2/alerts`` gives it (active ones)."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as r:
            data: list[dict[str, Any]] = orjson.loads(r.read())
            return data


def start_alertmanager(workdir: Path, port: int | None = None) -> Alertmanager:
    """A started instance, or a skip (a failure under CI=true) saying why not."""
    try:
        am = Alertmanager(workdir, port)
        am.start()
    except (RuntimeError, OSError) as exc:
        skip_or_fail(f"cannot start Alertmanager: {exc}")
        raise  # unreachable: skip_or_fail raises
    return am


AlertmanagerFactory = Callable[..., Alertmanager]


@pytest.fixture
def alertmanagers(tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """``make(port=None)``: a started Alertmanager (on ``port``, e.g. one a test kept free
    so a receiver can come back there), killed at the end of the test."""
    started: list[Alertmanager] = []

    def make(port: int | None = None) -> Alertmanager:
        am = start_alertmanager(tmp_path / f"alertmanager-{len(started)}", port)
        started.append(am)
        return am

    yield make
    for am in started:
        am.kill()
