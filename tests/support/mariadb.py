"""A real MariaDB with the server_audit plugin, in a temporary directory on loopback.

Needs Debian's ``mariadb-server`` (see tests/support/postgres.py for the full package
list). mysqld runs as the ``mysql`` system user (``--user``); the audit log is
``server_audit_output_type=file`` with ``server_audit_events=CONNECT,QUERY,TABLE``, as
docs/inputs.md tells a shop to turn on.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.postgres import Unavailable, free_port


def _binary(*names: str) -> str:
    for n in names:
        path = shutil.which(n) or (f"/usr/sbin/{n}" if Path(f"/usr/sbin/{n}").exists() else None)
        if path:
            return path
    raise Unavailable(f"none of {', '.join(names)} is installed (apt-get install mariadb-server)")


@dataclass
class Mariadb:
    dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def audit_log(self) -> Path:
        return self.dir / "audit.log"

    @property
    def socket(self) -> Path:
        return self.dir / "mysqld.sock"

    def start(self) -> None:
        install = _binary("mariadb-install-db", "mysql_install_db")
        server = _binary("mariadbd", "mysqld")
        if not Path("/usr/lib/mysql/plugin/server_audit.so").exists():
            raise Unavailable(
                "the server_audit plugin is missing (/usr/lib/mysql/plugin/server_audit.so)"
            )
        data = self.dir / "data"
        done = subprocess.run(
            [install, "--no-defaults", "--user=mysql", f"--datadir={data}",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise Unavailable(f"mariadb-install-db failed: {done.stderr.strip()[-500:]}")
        self.process = subprocess.Popen(
            [server, "--no-defaults", "--user=mysql", f"--datadir={data}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.dir}/mysqld.pid",
             f"--log-error={self.dir}/error.log", "--skip-name-resolve",
             "--plugin-load-add=server_audit", "--server-audit-logging=ON",
             "--server-audit-events=CONNECT,QUERY,TABLE", "--server-audit-output-type=file",
             f"--server-audit-file-path={self.audit_log}", "--innodb-buffer-pool-size=16M"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.dir / "error.log").read_text(errors="replace")[-500:]
                raise Unavailable(f"mariadbd exited with {self.process.returncode}: {log}")
            if self.sql("SELECT 1", root=True).returncode == 0:
                return
            time.sleep(0.2)
        raise Unavailable("mariadbd did not accept connections within 60s")

    def sql(self, statement: str, *, user: str = "root", password: str = "", root: bool = False,
            db: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Root over the socket; other users over TCP on loopback (so the log has an address)."""
        client = _binary("mariadb", "mysql")
        where = [f"--socket={self.socket}", "-uroot"] if root else [
            "-h", "127.0.0.1", "-P", str(self.port), f"-u{user}", f"-p{password}"]  # fmt: skip
        return subprocess.run(
            [client, "--no-defaults", *where, *([db] if db else []), "-e", statement],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def stop(self) -> None:
        """Stops the server (idempotent); the audit log is complete afterwards."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_mariadb() -> Mariadb:
    d = Path(tempfile.mkdtemp(prefix="exfil-mariadb-"))
    shutil.chown(d, "mysql", "mysql")
    db = Mariadb(d, free_port())
    try:
        db.start()
    except Unavailable:
        cleanup(db)
        raise
    return db


def cleanup(db: Mariadb) -> None:
    db.stop()
    shutil.rmtree(db.dir, ignore_errors=True)
