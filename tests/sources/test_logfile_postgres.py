"""The daemon following a real PostgreSQL's pgaudit csvlog: alerts with their file and line,
a restart that resumes where it stopped, and a log rotated under it.

A real server (tests/support/postgres.py: pgaudit, csvlog, ``log_file_mode = 0640``), an
in-process :class:`~monitor.app.Daemon` whose only source is ``{type: file, format:
pgaudit}`` over the server's log folder, and a file output.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.inputs import get_format
from monitor.sources.follow import Follower
from monitor.sources.logfile import FileSourceConfig
from tests.inputs.conftest import create_shop
from tests.sources.conftest import alerts, file_config
from tests.support.postgres import Postgres
from tests.test_daemon_robustness import _Running, _until


def _bulk(tmp_path: Path, actor: str) -> list[dict[str, object]]:
    return [a for a in alerts(tmp_path) if a["rule"] == "bulk-table-read" and a["group"] == {"actor.id": actor}]


def _line(path: Path, number: int) -> str:
    return path.read_text().splitlines()[number - 1]


async def test_alerts_name_the_log_line_a_restart_resumes_and_a_rotation_is_followed(
    pg: Postgres, tmp_path: Path
) -> None:
    create_shop(pg, "acme_vendor")
    log = pg.log_dir / "postgresql.csv"
    config = file_config(tmp_path, {"path": str(pg.log_dir / "*.csv"), "format": "pgaudit"})
    assert isinstance(FileSourceConfig.model_validate({"type": "file", "path": "/x/*.csv"}), FileSourceConfig)

    run = _Running(config)
    try:
        # the malicious bulk read by a vendor account: 500 customer rows
        assert pg.psql("SELECT * FROM shop.customers", user="hvac_vendor").returncode == 0
        await _until(lambda: bool(_bulk(tmp_path, "hvac_vendor")), 60, "the vendor's bulk-read alert")
    finally:
        assert await run.stop_within(30)
    (alert,) = _bulk(tmp_path, "hvac_vendor")
    assert alert["value"] == 500
    (where,) = alert["sample_provenance"]
    name, _, number = where.rpartition(":")
    assert name == str(log)
    line = _line(log, int(number))  # the very record: the vendor's audited read
    assert '"hvac_vendor"' in line and "AUDIT: SESSION" in line and "shop.customers" in line
    state = tmp_path / "state" / "follow-file.json"
    assert state.exists()
    first_events = run.daemon.events_total
    assert first_events > 0

    # While the daemon is down: three denied reads of the card table.
    for _ in range(3):
        assert "permission denied" in pg.psql("SELECT pan FROM shop.cards", user="hvac_vendor").stderr
    run = _Running(config)
    try:
        await _until(lambda: any(a["rule"] == "denied-reads" for a in alerts(tmp_path)), 60, "the denied-reads alert")
        # No second bulk-read alert: the restart did not read the log from its start.
        assert len(_bulk(tmp_path, "hvac_vendor")) == 1
        assert run.daemon.events_total < first_events + 10  # only what came after the saved position
        (denied,) = [a for a in alerts(tmp_path) if a["rule"] == "denied-reads"]
        assert denied["group"] == {"actor.id": "hvac_vendor"}
        assert all(w.startswith(f"{log}:") for w in denied["sample_provenance"])

        # logrotate's way: the log renamed out of the glob, then PostgreSQL told to reopen it
        os.rename(log, pg.log_dir / "postgresql.csv.1")
        assert pg.psql("SELECT pg_rotate_logfile()", db="postgres").returncode == 0
        await _until(log.exists, 30, "PostgreSQL's new log file")
        assert pg.psql("SELECT * FROM shop.customers", user="acme_vendor").returncode == 0
        await _until(lambda: bool(_bulk(tmp_path, "acme_vendor")), 60, "the second vendor's bulk-read alert")
        metrics = run.daemon.metrics.registry
        await _until(lambda: (metrics.get_sample_value("exfil_monitor_file_rotations_total",
                                                       {"source": "file", "kind": "rotated"}) or 0) >= 1,
                     30, "the rotation counted")  # fmt: skip
        assert (metrics.get_sample_value("exfil_monitor_file_bytes_read_total", {"source": "file"}) or 0) > 0
    finally:
        assert await run.stop_within(30)
    (second,) = _bulk(tmp_path, "acme_vendor")
    (where,) = second["sample_provenance"]
    name, _, number = where.rpartition(":")
    assert name == str(log)  # the new file under the old name
    assert '"acme_vendor"' in _line(log, int(number))
    assert len(_bulk(tmp_path, "hvac_vendor")) == 1
    assert run.log("input_format_unknown") == [] and run.log("crashed") == []


def _as_user(groups: list[int], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``work()`` in a forked child running as ``nobody`` with these supplementary groups:
    the daemon's user as the README sets it up, without a second interpreter (everything
    the work needs is imported before the fork)."""
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            os.setgroups(groups)
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write, orjson.dumps(work()))
        except BaseException as exc:
            os.write(write, orjson.dumps({"error": repr(exc)}))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    return orjson.loads(data)  # type: ignore[no-any-return]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_the_documented_permissions_let_the_daemons_user_read_the_log_and_nothing_less(pg: Postgres) -> None:
    """README "Permissions": log_file_mode = 0640 (tests/support/postgres.py sets it), the
    log folder and its parent 0750, the daemon's user in the postgres group."""
    probe = pg.psql("CREATE TABLE IF NOT EXISTS perm_probe (x int); SELECT * FROM perm_probe", db="postgres")
    assert probe.returncode == 0, probe.stderr  # audited lines, whichever test ran before
    os.chmod(pg.dir, 0o750)
    os.chmod(pg.log_dir, 0o750)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in pg.log_dir.glob("*.csv"))
    state = Path(tempfile.mkdtemp(prefix="exfil-state-"))  # tmp_path's parents are root's alone
    os.chown(state, pwd.getpwnam("nobody").pw_uid, -1)
    pattern = str(pg.log_dir / "*.csv")

    def follow() -> dict[str, Any]:
        f = Follower(pattern, pgaudit, state)
        records = [r for chunk in f.poll() for r in chunk.records]
        out = {"records": len(records), "audit": sum(b"AUDIT:" in r for r in records), "followed": f.followed}
        f.close()
        return out

    pgaudit = get_format("pgaudit")
    try:
        in_group = _as_user([grp.getgrnam("postgres").gr_gid], follow)
        outside = _as_user([], follow)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    assert in_group.get("error") is None and in_group["audit"] > 0 and in_group["followed"]
    assert outside == {"records": 0, "audit": 0, "followed": []}  # the folder cannot even be listed
