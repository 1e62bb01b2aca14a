"""The daemon following a real PostgreSQL's pgaudit csvlog: alerts with their file and line,
a restart that resumes where it stopped, and a log rotated under it.

A real server (tests/support/postgres.py: pgaudit, csvlog, ``log_file_mode = 0640``), an
in-process :class:`~monitor.app.Daemon` whose only source is ``{type: file, format:
pgaudit}`` over the server's log folder, and a file output.
"""

from __future__ import annotations

import os
from pathlib import Path

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
