"""http.auth_token: every endpoint but the probes needs the bearer token; /metrics may stay open."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from monitor.config import HttpConfig, load_config
from monitor.http import HttpServer
from monitor.httpauth import TokenAuth
from monitor.telemetry import Metrics, Telemetry, configure_logging
from tests.test_http import FakeStatus

TOKEN = "t0ken-9f8e7d6c5b4a"
GUARDED = ("/alerts", "/rules", "/metrics", "/no-such-path")

Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[HttpServer] = []

    async def start(*, open_metrics: bool = False) -> tuple[str, Telemetry, io.StringIO]:
        log = io.StringIO()
        telemetry = Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "info", log))
        status = FakeStatus(is_ready=True, reason="", loaded={"digest": "d", "rules": []},
                            alerts=[{"id": "1", "rule": "r"}])  # fmt: skip
        auth = TokenAuth(TOKEN, open_metrics, telemetry.http_unauthorized)
        server = HttpServer("127.0.0.1", 0, telemetry.metrics.registry, status, auth=auth)
        servers.append(server)
        return f"http://127.0.0.1:{await server.start()}", telemetry, log

    yield start
    for s in servers:
        await s.stop()


async def fetch(url: str, authorization: str | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.text()


@pytest.mark.parametrize("path", GUARDED)
@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}",
                                           f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"])  # fmt: skip
async def test_without_the_token_every_endpoint_refuses(serve: Serve, path: str, authorization: str | None) -> None:
    base, telemetry, log = await serve()
    code, headers, body = await fetch(base + path, authorization)
    assert code == 401 and headers["WWW-Authenticate"] == 'Bearer realm="exfil-monitor"'
    assert "alerts" not in orjson.loads(body) and "rules" not in orjson.loads(body)
    assert telemetry.metrics.registry.get_sample_value("exfil_monitor_http_unauthorized_total") == 1
    (line,) = [orjson.loads(x) for x in log.getvalue().splitlines()]
    assert line["event"] == "http_unauthorized" and line["path"] == path
    assert TOKEN[:8] not in log.getvalue()


@pytest.mark.parametrize("path", ["/alerts", "/rules", "/metrics"])
async def test_with_the_token_they_answer(serve: Serve, path: str) -> None:
    base, _, log = await serve()
    code, _, body = await fetch(base + path, f"Bearer {TOKEN}")
    assert code == 200 and TOKEN not in body
    assert (await fetch(base + path, f"bearer   {TOKEN} "))[0] == 200  # the scheme is case-insensitive
    assert log.getvalue() == ""


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_the_probes_answer_without_it(serve: Serve, path: str) -> None:
    base, _, _ = await serve()
    assert (await fetch(base + path))[0] == 200
    assert (await fetch(base + path, "Bearer wrong"))[0] == 200


async def test_open_metrics_leaves_only_metrics_open(serve: Serve) -> None:
    base, _, _ = await serve(open_metrics=True)
    code, _, body = await fetch(base + "/metrics")
    assert code == 200 and "exfil_monitor_build_info" in body
    assert (await fetch(base + "/alerts"))[0] == 401
    assert (await fetch(base + "/rules"))[0] == 401


def test_an_empty_token_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="empty"):
        TokenAuth("")
    assert TOKEN not in repr(TokenAuth(TOKEN))


# ----------------------------------------------------------------------------- config


def config_file(tmp_path: Path, http: dict[str, Any]) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_bytes(orjson.dumps({"kafka": {"bootstrap_servers": "localhost:9092", "group_id": "g", "topics": ["t"]},
                                   "rules": {"path": "rules"}, "http": http}))  # fmt: skip
    return path


def test_the_token_from_the_file_from_a_file_and_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    for http, env in [
        ({"auth_token": TOKEN}, {}),
        ({"auth_token_file": "token"}, {}),  # relative to the config file's folder
        ({"auth_token_file": "/absent"}, {"EXFIL_MONITOR_HTTP__AUTH_TOKEN": TOKEN}),  # the override wins
        ({}, {"EXFIL_MONITOR_HTTP__AUTH_TOKEN": TOKEN}),
    ]:
        c = load_config(config_file(tmp_path, http), env).http
        assert c.auth_token is not None and c.auth_token.get_secret_value() == TOKEN, http
        assert TOKEN not in repr(c) and TOKEN not in str(c.model_dump()) and TOKEN not in c.model_dump_json()
    assert HttpConfig().auth_token is None and HttpConfig().open_metrics is False


def test_an_unreadable_or_empty_token_file_is_a_config_error(tmp_path: Path) -> None:
    from monitor.config import ConfigError

    (tmp_path / "empty").write_text("\n")
    for name, fragment in [("missing", "cannot read"), ("empty", "is empty")]:
        with pytest.raises(ConfigError) as info:
            load_config(config_file(tmp_path, {"auth_token_file": name}), {})
        (p,) = info.value.problems
        assert fragment in p.message and "http" in p.message


async def post(url: str, authorization: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers) as resp:
        return resp.status, await resp.json() if resp.content_type == "application/json" else await resp.text()


@pytest.mark.parametrize("outcome", ["success", "rejected"])
async def test_post_reload_is_served_behind_the_token(outcome: str) -> None:
    calls: list[int] = []

    async def reload() -> dict[str, Any]:
        calls.append(1)
        return {"outcome": outcome, "digest": "d"}

    telemetry = Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "info", io.StringIO()))
    status = FakeStatus(is_ready=True, reason="", loaded=None, alerts=[])
    server = HttpServer("127.0.0.1", 0, telemetry.metrics.registry, status, reload=reload,
                        auth=TokenAuth(TOKEN, False, telemetry.http_unauthorized))  # fmt: skip
    base = f"http://127.0.0.1:{await server.start()}"
    try:
        assert (await post(base + "/-/reload"))[0] == 401 and calls == []
        code, body = await post(base + "/-/reload", f"Bearer {TOKEN}")
        assert (code, body, calls) == (200 if outcome == "success" else 422, {"outcome": outcome, "digest": "d"}, [1])
        assert (await fetch(base + "/-/reload", f"Bearer {TOKEN}"))[0] == 405  # a GET reloads nothing
    finally:
        await server.stop()


async def test_without_a_token_there_is_no_reload_endpoint() -> None:
    async def reload() -> dict[str, Any]:
        raise AssertionError("reloaded without a token")

    status = FakeStatus(is_ready=True, reason="", loaded=None, alerts=[])
    server = HttpServer("127.0.0.1", 0, CollectorRegistry(), status, reload=reload)
    base = f"http://127.0.0.1:{await server.start()}"
    try:
        assert (await post(base + "/-/reload"))[0] == 404
    finally:
        await server.stop()
