"""A real PostgreSQL with pgaudit for the input tests, in a temporary directory on loopback.

Debian packages the tests need (scripts/test installs them):
    postgresql-15 postgresql-15-pgaudit        (or any postgresql-NN with its -pgaudit)
    mariadb-server                             (tests/support/mariadb.py)

PostgreSQL refuses to run as root and CI runs as root, so the server and its clients run as
the ``postgres`` system user through ``runuser``. The log is ``csvlog`` in ``UTC`` with
English messages, exactly the settings docs/inputs.md tells a shop to turn on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{dir}'
shared_preload_libraries = 'pgaudit'
logging_collector = on
log_destination = 'csvlog'
log_directory = '{dir}/log'
log_filename = 'postgresql.log'
log_file_mode = 0640
log_connections = on
log_timezone = 'UTC'
lc_messages = 'C'
pgaudit.log = 'read, write, ddl'
pgaudit.log_relation = on
pgaudit.log_rows = on
fsync = off
"""


class Unavailable(Exception):
    """PostgreSQL with pgaudit cannot be started here; the message says why."""


def find_bindir() -> Path:
    """The newest installed PostgreSQL whose library directory holds pgaudit."""
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    for v in reversed(versions):
        if (v / "lib" / "pgaudit.so").exists() and (v / "bin" / "initdb").exists():
            return v / "bin"
    raise Unavailable(
        "no PostgreSQL with pgaudit under /usr/lib/postgresql "
        "(apt-get install postgresql-15 postgresql-15-pgaudit)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(user: str, *cmd: str | Path) -> list[str]:
    if shutil.which("runuser") is None:
        raise Unavailable("runuser is missing (util-linux)")
    return ["runuser", "-u", user, "--", *map(str, cmd)]


@dataclass
class Postgres:
    bindir: Path
    dir: Path
    port: int
    running: bool = field(default=False)

    @property
    def log_dir(self) -> Path:
        return self.dir / "log"

    def start(self) -> None:
        data = self.dir / "data"
        run = _run
        run(_as_user("postgres", self.bindir / "initdb", "-D", data, "-U", "postgres",
                     "--auth=trust", "-E", "UTF8", "--locale=C"), "initdb")  # fmt: skip
        with open(data / "postgresql.conf", "a") as f:
            f.write(SETTINGS.format(port=self.port, dir=self.dir))
        run(_as_user("postgres", self.bindir / "pg_ctl", "-D", data, "-l", self.dir / "server.log",
                     "-w", "-t", "60", "start"), "pg_ctl start")  # fmt: skip
        self.running = True

    def stop(self) -> None:
        """Stops the server (idempotent); the log collector has written everything after."""
        if self.running:
            self.running = False
            subprocess.run(
                _as_user("postgres", self.bindir / "pg_ctl", "-D", self.dir / "data", "-w", "-m", "fast", "stop"),
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip

    def psql(
        self, sql: str, *, user: str = "postgres", db: str = "shop"
    ) -> subprocess.CompletedProcess[str]:
        """Runs ``sql`` as ``user`` over TCP (so the log has a client address); errors are
        returned, not raised: the malicious queries are meant to fail."""
        return subprocess.run(
            _as_user("postgres", self.bindir / "psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(self.port),
                     "-U", user, "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql),
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "PGAPPNAME": f"test-{user}"},
        )  # fmt: skip

    def log_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in sorted(self.log_dir.glob("*.csv")))


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what}: {exc}") from None
    if done.returncode != 0:
        raise Unavailable(f"{what} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def start_postgres() -> Postgres:
    """A started server in a fresh directory the ``postgres`` user owns."""
    bindir = find_bindir()
    d = Path(tempfile.mkdtemp(prefix="exfil-pg-"))
    shutil.chown(d, "postgres", "postgres")
    pg = Postgres(bindir, d, free_port())
    try:
        pg.start()
    except Unavailable:
        cleanup(pg)
        raise
    return pg


def cleanup(pg: Postgres) -> None:
    pg.stop()
    shutil.rmtree(pg.dir, ignore_errors=True)
