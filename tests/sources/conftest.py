"""The file source's test helpers: a config that follows files, real database servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.inputs.conftest import unavailable
from tests.support.mariadb import Mariadb, start_mariadb
from tests.support.mariadb import cleanup as cleanup_mariadb
from tests.support.postgres import Postgres, Unavailable, cleanup, start_postgres

RULES = Path(__file__).resolve().parents[1] / "inputs" / "rules"  # rules over canonical fields


def file_config(tmp_path: Path, source: dict[str, Any], *, rules: Path = RULES, **extra: Any) -> Path:
    """A daemon config with one file source and a file output (``tmp_path/alerts.jsonl``)."""
    config = {
        "sources": [{"type": "file", "poll_interval": "50ms", **source}], "checkpoint": {"interval": "100ms"},
        "rules": {"path": str(rules)}, "state": {"dir": str(tmp_path / "state")},
        "outputs": [{"type": "file", "path": str(tmp_path / "alerts.jsonl")}],
        "http": {"listen": "127.0.0.1:0"}, **extra,
    }  # fmt: skip
    path = tmp_path / "monitor.yaml"
    path.write_bytes(orjson.dumps(config))  # JSON is YAML
    return path


def alerts(tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "alerts.jsonl"
    return [orjson.loads(x) for x in out.read_bytes().splitlines()] if out.exists() else []


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A PostgreSQL of this module's own (the input tests' server is stopped by its scenario)."""
    try:
        server = start_postgres()
    except Unavailable as exc:
        unavailable(f"PostgreSQL with pgaudit cannot be started: {exc}")
        raise AssertionError("unreachable") from None
    try:
        yield server
    finally:
        cleanup(server)


@pytest.fixture(scope="module")
def maria() -> Iterator[Mariadb]:
    try:
        db = start_mariadb()
    except Unavailable as exc:
        unavailable(f"MariaDB with server_audit cannot be started: {exc}")
        raise AssertionError("unreachable") from None
    try:
        yield db
    finally:
        cleanup_mariadb(db)
