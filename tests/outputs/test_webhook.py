"""The signed webhook: the signature verifies with the documented recipe; answers classified."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr, ValidationError

from monitor.outputs import webhook as wh
from tests.outputs.conftest import MakeAlert
from tests.support.recorder import Recorder, Reply

SECRET = "whsec-test-1"


def config(url: str = "https://soar.example/hooks/exfil", **kw: Any) -> wh.WebhookConfig:
    return wh.WebhookConfig(type="webhook", url=url, secret=SecretStr(SECRET), **kw)


def record(make_alert: MakeAlert) -> dict[str, Any]:
    return make_alert(1).to_dict() | {"type": "alert"}


def docs_receiver() -> Callable[[bytes, Mapping[str, str], bytes], bool]:
    """The receiver example of docs/paging.md, run as written there."""
    text = (Path(__file__).parents[2] / "docs" / "paging.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None, "docs/paging.md has no python receiver example"
    assert len(code.group(1).strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    verified: Callable[[bytes, Mapping[str, str], bytes], bool] = namespace["verified"]
    return verified


async def test_posts_the_record_signed(make_alert: MakeAlert) -> None:
    r = record(make_alert)
    async with Recorder(Reply(204)) as rec, aiohttp.ClientSession() as s:
        c = config(rec.url + "/hooks/exfil", headers={"X-Team": "security"})
        got = await wh.send(s, c, r, clock=lambda: 1_795_000_000.5)
    assert got.verdict == "done"
    [req] = rec.requests
    assert req.method == "POST" and req.path == "/hooks/exfil"
    assert req.json() == r
    h = req.headers
    assert h["Content-Type"] == "application/json" and h["X-Team"] == "security"
    assert h["X-Exfil-Monitor-Timestamp"] == "1795000000"
    assert h["X-Exfil-Monitor-Signature"] == "sha256=" + hmac.new(
        SECRET.encode(), b"1795000000." + req.body, hashlib.sha256
    ).hexdigest()
    assert wh.verify(SECRET, h["X-Exfil-Monitor-Timestamp"], req.body, h["X-Exfil-Monitor-Signature"], now=1_795_000_100)


def test_verify_refuses_tampering_replays_and_other_keys() -> None:
    body = orjson.dumps({"type": "resolved", "id": "1"})
    ts = str(int(time.time()))
    sig = wh.sign(SECRET, ts, body)
    now = float(ts)
    assert wh.verify(SECRET, ts, body, sig, now)
    assert not wh.verify(SECRET, ts, body + b" ", sig, now)
    assert not wh.verify("other", ts, body, sig, now)
    assert not wh.verify(SECRET, ts, body, sig, now + 301)  # five minutes old: a replay
    assert wh.verify(SECRET, ts, body, sig, now + 300)
    assert not wh.verify(SECRET, str(int(ts) + 1), body, sig, now)
    assert not wh.verify(SECRET, "-1", body, sig, now)
    verified = docs_receiver()
    headers = {"X-Exfil-Monitor-Timestamp": ts, "X-Exfil-Monitor-Signature": sig}
    assert verified(SECRET.encode(), headers, body)
    assert not verified(SECRET.encode(), headers, body + b" ")
    old = str(int(time.time()) - 301)
    assert not verified(SECRET.encode(), {"X-Exfil-Monitor-Timestamp": old,
                                          "X-Exfil-Monitor-Signature": wh.sign(SECRET, old, body)}, body)  # fmt: skip


async def test_the_documented_receiver_accepts_what_the_output_sends(make_alert: MakeAlert) -> None:
    async with Recorder(Reply(200)) as rec, aiohttp.ClientSession() as s:
        assert (await wh.send(s, config(rec.url), record(make_alert))).verdict == "done"
    [req] = rec.requests
    assert docs_receiver()(SECRET.encode(), req.headers, req.body)


def test_without_a_secret_nothing_is_signed(make_alert: MakeAlert) -> None:
    c = wh.WebhookConfig(type="webhook", url="https://soar.example/x")
    _body, headers = wh.request(record(make_alert), c, now=1.0)
    assert headers == {"Content-Type": "application/json"}


def test_config(tmp_path: Path) -> None:
    f = tmp_path / "hmac"
    f.write_text(SECRET + "\n")
    c = wh.WebhookConfig(type="webhook", url="https://soar.example/x", secret_file=f)
    assert c.secret is not None and c.secret.get_secret_value() == SECRET
    assert SECRET not in repr(c)
    with pytest.raises(ValidationError, match="sets these headers itself"):
        config(headers={"X-Exfil-Monitor-Signature": "forged"})
    with pytest.raises(ValidationError, match="http:// or https://"):
        wh.WebhookConfig(type="webhook", url="soar.example/x")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValidationError, match=r"secret_file: .* is empty"):
        wh.WebhookConfig(type="webhook", url="https://x.example", secret_file=tmp_path / "empty")


@pytest.mark.parametrize(
    ("reply", "verdict", "retry_after"),
    [
        (Reply(200), "done", None),
        (Reply(202), "done", None),
        (Reply(408), "retry", None),
        (Reply(429, headers={"Retry-After": "11"}), "retry", 11.0),
        (Reply(500), "retry", None),
        (Reply(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), "retry", 0.0),
        (Reply(400, "bad"), "reject", None),
        (Reply(401), "reject", None),
        (Reply(404), "reject", None),
    ],
)
async def test_answers(make_alert: MakeAlert, reply: Reply, verdict: str, retry_after: float | None) -> None:
    async with Recorder(reply) as rec, aiohttp.ClientSession() as s:
        got = await wh.send(s, config(rec.url), record(make_alert))
    assert (got.verdict, got.retry_after) == (verdict, retry_after)
    assert got.reason == ("success" if verdict == "done" else f"http_{reply.status}")


async def test_a_hanging_receiver_is_retried(make_alert: MakeAlert) -> None:
    async with Recorder(Reply(hang=True)) as rec, aiohttp.ClientSession() as s:
        got = await wh.send(s, config(rec.url, send_timeout="200ms"), record(make_alert))
    assert (got.verdict, got.reason) == ("retry", "timeout")


async def test_each_attempt_is_signed_afresh(make_alert: MakeAlert) -> None:
    times = iter([1000.0, 1000.0, 5000.0, 5000.0])
    async with Recorder(Reply(500), Reply(200)) as rec, aiohttp.ClientSession() as s:
        c = config(rec.url)
        assert (await wh.send(s, c, record(make_alert), clock=lambda: next(times))).verdict == "retry"
        assert (await wh.send(s, c, record(make_alert), clock=lambda: next(times))).verdict == "done"
    first, second = rec.requests
    assert first.headers["X-Exfil-Monitor-Timestamp"] == "1000"
    assert second.headers["X-Exfil-Monitor-Timestamp"] == "5000"
    assert wh.verify(SECRET, "5000", second.body, second.headers["X-Exfil-Monitor-Signature"], now=5100)
