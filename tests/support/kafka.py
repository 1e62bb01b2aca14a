"""A real Kafka broker for tests, started through ``scripts/kafka-local``.

Why: the daemon's Kafka behaviour (consumer groups, commits, a broker restart under a running
client) has to be tested against a current Kafka 4.x broker, and aiokafka's own CI does not
cover one. ``scripts/kafka-local`` runs a single-node KRaft broker from Maven jars with plain
``java``; this module drives it from pytest.

- ``KAFKA_BOOTSTRAP`` set: that broker is used as is (it cannot be restarted, so tests that need
  a restart skip).
- Otherwise a broker is started in a temporary directory. If this machine cannot run one (no
  Java 17, no Maven for the first fetch) the tests skip, except on CI (``CI=true``), where a
  missing broker is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kafka-local"
EXIT_CANNOT_RUN = 3  # scripts/kafka-local's "cannot run here" exit code
START_TIMEOUT_S = 180.0  # includes a first-time Maven fetch of the jars

T = TypeVar("T")


class KafkaUnavailable(RuntimeError):
    """This machine cannot run a local broker (no Java 17+, no Maven, ...)."""


class KafkaStartError(RuntimeError):
    """The local broker could be run here but did not start."""


@dataclass
class Broker:
    """A running broker. ``data_dir`` is None for an external one (``KAFKA_BOOTSTRAP``)."""

    bootstrap: str
    data_dir: Path | None = None
    _running: bool = field(default=True, repr=False)

    @property
    def can_restart(self) -> bool:
        return self.data_dir is not None

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop the broker (SIGTERM, clean shutdown). Idempotent."""
        if self.data_dir is None or not self._running:
            return
        _run_script("stop", "--dir", str(self.data_dir), timeout=60)
        self._running = False

    def start(self) -> None:
        """Start it again on the same port with the same data (topics, offsets survive)."""
        if self.data_dir is None:
            raise KafkaUnavailable("an external broker (KAFKA_BOOTSTRAP) cannot be restarted")
        if self._running:
            return
        bootstrap = _start(self.data_dir, "--keep-data", "--port", str(self.port))
        if bootstrap != self.bootstrap:  # cannot happen with --port, but clients rely on it
            raise KafkaStartError(f"restarted on {bootstrap}, expected {self.bootstrap}")
        self._running = True

    def restart(self) -> None:
        """Stop, then start on the same port and data dir."""
        self.stop()
        self.start()


def _script_env() -> dict[str, str]:
    # The readiness check in the script should use this interpreter (it has aiokafka).
    return {**os.environ, "EXFIL_KAFKA_PYTHON": sys.executable}


def _run_script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    if shutil.which("bash") is None:
        raise KafkaUnavailable("bash not found; scripts/kafka-local needs it")
    proc = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_script_env(),
        check=False,
    )
    if proc.returncode == EXIT_CANNOT_RUN:
        raise KafkaUnavailable(proc.stderr.strip() or "scripts/kafka-local: cannot run here")
    if proc.returncode != 0:
        raise KafkaStartError(
            f"scripts/kafka-local {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()}"
        )
    return proc


def _start(data_dir: Path, *extra: str) -> str:
    proc = _run_script("start", "--dir", str(data_dir), *extra, timeout=START_TIMEOUT_S)
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise KafkaStartError(f"scripts/kafka-local start printed no address:\n{proc.stderr}")
    return lines[-1].strip()


def start_local_broker(tmp_dir: Path | str) -> Broker:
    """Start a fresh broker whose run dir is ``tmp_dir`` (wiped first; must be empty or ours).

    Raises ``KafkaUnavailable`` if this machine cannot run one, ``KafkaStartError`` if it fails.
    """
    data_dir = Path(tmp_dir).resolve()
    return Broker(bootstrap=_start(data_dir), data_dir=data_dir)


def skip_or_fail(reason: str) -> None:
    """Skip the test, except on CI (``CI=true``), where a missing broker must fail the run."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: a Kafka broker is required)", pytrace=False)
    pytest.skip(reason)


def kafka_bootstrap_or_skip() -> str | None:
    """Decide where the broker comes from, before starting anything.

    Returns ``KAFKA_BOOTSTRAP`` if set (use that broker), or None when a local broker can be
    started here. Skips (fails on CI) when neither is possible.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    if external:
        return external
    missing = [tool for tool in ("java", "bash") if shutil.which(tool) is None]
    if shutil.which("mvn") is None and not _jars_cached():
        missing.append("mvn (needed once, to fetch the Kafka jars)")
    if missing:
        skip_or_fail(
            "no Kafka broker: set KAFKA_BOOTSTRAP, or install "
            + ", ".join(missing)
            + " so that scripts/kafka-local can start one"
        )
    return None


def _jars_cached() -> bool:
    cache_root = Path(os.environ.get("EXFIL_KAFKA_CACHE") or REPO / ".cache" / "kafka")
    return any(cache_root.glob("*/libs.complete"))


def obtain_broker(tmp_dir: Path | str) -> Broker:
    """The broker for a test session: external, or a local one started in ``tmp_dir``."""
    external = kafka_bootstrap_or_skip()
    if external is not None:
        return Broker(bootstrap=external)
    try:
        return start_local_broker(tmp_dir)
    except KafkaUnavailable as exc:
        skip_or_fail(str(exc))
        raise  # unreachable: skip_or_fail raises


# ---------------------------------------------------------------- topics


async def acreate_topic(
    bootstrap: str, name: str, partitions: int = 1, *, timeout_s: float = 30.0, configs: dict[str, str] | None = None
) -> None:
    """Create a topic (with ``configs``) and wait until every partition has a leader the broker reports."""
    from monitor.produce import create_topic

    await create_topic(bootstrap, name, partitions, timeout_s=timeout_s, configs=configs)


async def adelete_topic(bootstrap: str, name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even while an event loop is running.

    It runs in its own thread with its own loop, so it never touches the caller's loop (pytest-
    asyncio's, or one running a test).
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="kafka-support", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Sync wrapper around ``acreate_topic``."""
    run_sync(acreate_topic(bootstrap, name, partitions))


def delete_topic(bootstrap: str, name: str) -> None:
    """Sync wrapper around ``adelete_topic``."""
    run_sync(adelete_topic(bootstrap, name))


# ---------------------------------------------------------------- SASL_SSL


@dataclass
class SaslSslBroker(Broker):
    """A local broker started with ``--sasl-ssl``: ``bootstrap`` is its PLAINTEXT listener
    (for the test's own producers and readers), ``sasl_ssl_bootstrap`` the SASL_SSL one, whose
    certificate ``cafile`` verifies and which knows ``username`` for both SCRAM mechanisms."""

    sasl_ssl_bootstrap: str = ""
    cafile: Path = Path()
    username: str = ""
    password: str = field(default="", repr=False)

    def start(self) -> None:
        """Start it again with the same data, ports, users and certificates."""
        if self._running or self.data_dir is None:
            return
        _start(self.data_dir, "--keep-data", "--sasl-ssl", "--port", str(self.port))
        self._running = True

    def client_security(self, mechanism: str = "SCRAM-SHA-512") -> dict[str, Any]:
        """The daemon's ``kafka`` config keys for connecting over SASL_SSL as the user."""
        return {
            "bootstrap_servers": [self.sasl_ssl_bootstrap],
            "security_protocol": "SASL_SSL",
            "ssl": {"cafile": str(self.cafile)},
            "sasl": {"mechanism": mechanism, "username": self.username, "password": self.password},
        }


def start_local_sasl_ssl_broker(tmp_dir: Path | str) -> SaslSslBroker:
    """Like ``start_local_broker``, with ``scripts/kafka-local start --sasl-ssl``."""
    data_dir = Path(tmp_dir).resolve()
    bootstrap = _start(data_dir, "--sasl-ssl")
    username, password = (data_dir / "scram_users").read_text().splitlines()[0].split()
    return SaslSslBroker(
        bootstrap=bootstrap, data_dir=data_dir,
        sasl_ssl_bootstrap=(data_dir / "sasl_ssl_bootstrap").read_text().strip(),
        cafile=data_dir / "tls" / "ca.pem", username=username, password=password,
    )  # fmt: skip


def obtain_sasl_ssl_broker(tmp_dir: Path | str) -> SaslSslBroker:
    """A local ``--sasl-ssl`` broker for a test session (``KAFKA_BOOTSTRAP`` has no SASL_SSL
    listener we know the users of, so one is started even then). Skips, or fails on CI, when
    this machine cannot run it."""
    missing = [tool for tool in ("java", "bash", "openssl") if shutil.which(tool) is None]
    if shutil.which("mvn") is None and not _jars_cached():
        missing.append("mvn (needed once, to fetch the Kafka jars)")
    if missing:
        skip_or_fail("no SASL_SSL Kafka broker: install " + ", ".join(missing)
                     + " so that scripts/kafka-local start --sasl-ssl can run")  # fmt: skip
    try:
        return start_local_sasl_ssl_broker(tmp_dir)
    except KafkaUnavailable as exc:
        skip_or_fail(str(exc))
        raise  # unreachable: skip_or_fail raises
