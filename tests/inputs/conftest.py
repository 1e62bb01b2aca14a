"""Shared helpers for the input-format tests: decode whole streams the way a reader does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.inputs import Format, Skip
from tests.support.mariadb import Mariadb, start_mariadb
from tests.support.mariadb import cleanup as cleanup_mariadb
from tests.support.postgres import Postgres, Unavailable, cleanup, start_postgres


def decode_stream(fmt: Format, data: bytes) -> tuple[list[dict[str, Any]], list[Skip]]:
    """Frames ``data`` as one finished stream and decodes every record."""
    records, used = fmt.frame(data, True)
    assert used == len(data)
    events: list[dict[str, Any]] = []
    skips: list[Skip] = []
    for rec in records:
        for r in fmt.decode(rec):
            (skips if isinstance(r, Skip) else events).append(r)  # type: ignore[arg-type]
    return events, skips


def one(fmt: Format, line: bytes | str) -> dict[str, Any] | Skip:
    raw = line.encode() if isinstance(line, str) else line
    results = fmt.decode(raw)
    assert len(results) == 1, results
    return results[0]


def unavailable(reason: str) -> None:
    """Skip, except under CI=true, where a service the suite needs must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        pg = start_postgres()
    except Unavailable as exc:
        unavailable(f"PostgreSQL with pgaudit cannot be started: {exc}")
        raise AssertionError("unreachable") from None
    try:
        yield pg
    finally:
        cleanup(pg)


@pytest.fixture(scope="module")
def mariadb() -> Iterator[Mariadb]:
    try:
        db = start_mariadb()
    except Unavailable as exc:
        unavailable(f"MariaDB with server_audit cannot be started: {exc}")
        raise AssertionError("unreachable") from None
    try:
        yield db
    finally:
        cleanup_mariadb(db)


@pytest.fixture(scope="session")
def shop_log(postgres: Postgres) -> bytes:
    """The csvlog of a real PostgreSQL after the shop scenario (:func:`run_shop`)."""
    return run_shop(postgres)


MULTI = "SELECT id,\n       name\n  FROM shop.customers\n WHERE name = 'a, \"b'"


def create_shop(pg: Postgres, *vendors: str) -> None:
    """The shop database: customers (500 rows) readable by the app and the vendors
    (``hvac_vendor`` and any others named), cards readable by the app only."""
    assert pg.psql("CREATE DATABASE shop", db="postgres").returncode == 0
    roles = ", ".join(("hvac_vendor", *vendors))
    setup = f"""
        CREATE ROLE shop_app LOGIN; {" ".join(f"CREATE ROLE {v} LOGIN;" for v in ("hvac_vendor", *vendors))}
        CREATE SCHEMA shop;
        CREATE TABLE shop.customers (id int PRIMARY KEY, name text, email text);
        CREATE TABLE shop.cards (id int PRIMARY KEY, customer_id int, pan text);
        INSERT INTO shop.customers SELECT g, 'name ' || g, 'c' || g || '@example.com'
            FROM generate_series(1, 500) g;
        GRANT USAGE ON SCHEMA shop TO shop_app, {roles};
        GRANT SELECT ON shop.customers TO shop_app, {roles};
        GRANT SELECT ON shop.cards TO shop_app;
    """
    done = pg.psql(setup)
    assert done.returncode == 0, done.stderr


def run_shop(pg: Postgres) -> bytes:
    """Ordinary and malicious queries against a real server; its csvlog afterwards."""
    create_shop(pg)
    assert pg.psql("SELECT email FROM shop.customers WHERE id = 7", user="shop_app").returncode == 0
    assert pg.psql(MULTI, user="shop_app").returncode == 0
    assert pg.psql("SELECT * FROM shop.customers", user="hvac_vendor").returncode == 0
    for _ in range(3):
        denied = pg.psql("SELECT pan FROM shop.cards", user="hvac_vendor")
        assert "permission denied for table cards" in denied.stderr
    pg.stop()
    return pg.log_bytes()
