"""The daemon following a real MariaDB's server_audit log: denied reads by vendor accounts
raise alerts naming the audit log's line, a restart resumes, the plugin's own rotation
(``server_audit_file_rotate_now``) is followed.

The plugin logs no row counts, so the rule here is the canonical ``denied-reads``.
"""

from __future__ import annotations

from pathlib import Path

from tests.sources.conftest import alerts, file_config
from tests.support.mariadb import Mariadb
from tests.test_daemon_robustness import _Running, _until

VENDORS = ("hvac_vendor", "acme_vendor", "zeta_vendor")


def _denied(tmp_path: Path, actor: str) -> list[dict[str, object]]:
    return [a for a in alerts(tmp_path) if a["rule"] == "denied-reads" and a["group"] == {"actor.id": actor}]


def _refuse(db: Mariadb, vendor: str) -> None:
    for _ in range(3):
        assert "1142" in db.sql("SELECT pan FROM shop.cards", user=vendor, password="pw").stderr


def _line_of(alert: dict[str, object]) -> tuple[str, str]:
    (where, *_) = alert["sample_provenance"]  # type: ignore[misc]
    name, _, number = str(where).rpartition(":")
    return name, Path(name).read_text().splitlines()[int(number) - 1]


async def test_denied_reads_name_the_audit_line_across_a_restart_and_a_rotation(maria: Mariadb, tmp_path: Path) -> None:
    setup = "CREATE DATABASE shop; CREATE TABLE shop.cards (id int, pan text);" + "".join(
        f"CREATE USER {v}@'%' IDENTIFIED BY 'pw';" for v in VENDORS
    )
    assert maria.sql(setup, root=True).returncode == 0
    log = maria.audit_log
    config = file_config(tmp_path, {"path": str(log), "format": "mariadb-audit", "timezone": "UTC"})

    run = _Running(config)
    try:
        _refuse(maria, "hvac_vendor")
        await _until(lambda: bool(_denied(tmp_path, "hvac_vendor")), 60, "hvac_vendor's denied-reads alert")
    finally:
        assert await run.stop_within(30)
    name, line = _line_of(_denied(tmp_path, "hvac_vendor")[0])
    assert name == str(log) and "hvac_vendor" in line and line.endswith(",1142")

    _refuse(maria, "acme_vendor")  # while the daemon is down
    run = _Running(config)
    try:
        await _until(lambda: bool(_denied(tmp_path, "acme_vendor")), 60, "acme_vendor's alert after the restart")
        assert len(_denied(tmp_path, "hvac_vendor")) == 1  # not read again from the start
        assert maria.sql("SET GLOBAL server_audit_file_rotate_now = ON", root=True).returncode == 0
        await _until(lambda: Path(f"{log}.1").exists(), 30, "the plugin's rotation")
        _refuse(maria, "zeta_vendor")
        await _until(lambda: bool(_denied(tmp_path, "zeta_vendor")), 60, "zeta_vendor's alert from the new file")
    finally:
        assert await run.stop_within(30)
    name, line = _line_of(_denied(tmp_path, "zeta_vendor")[0])
    assert name == str(log) and "zeta_vendor" in line  # the new file under the old name
    assert [len(_denied(tmp_path, v)) for v in VENDORS] == [1, 1, 1]
