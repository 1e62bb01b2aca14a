"""The signed webhook: the signature verifies with the documented recipe; answers classified."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr, ValidationError

from monitor.outputs import webhook as wh
from monitor.outputs.base import Rejected, RetryLater
from monitor.telemetry import Telemetry
from tests.outputs.conftest import MakeAlert, MakeDelivery, attempt, sends, until
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


def output(url: str, *, clock: Callable[[], float] = time.time, **kw: Any) -> wh.WebhookOutput:
    return wh.WebhookOutput(config(url, **kw), clock=clock)


async def test_posts_the_record_signed(make_alert: MakeAlert) -> None:
    r = record(make_alert)
    async with Recorder(Reply(204)) as rec:
        got = await attempt(output(rec.url + "/hooks/exfil", headers={"X-Team": "security"},
                                   clock=lambda: 1_795_000_000.5), [r])  # fmt: skip
    assert got is None
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
    async with Recorder(Reply(200)) as rec:
        assert await attempt(output(rec.url), [record(make_alert)]) is None
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
    ("reply", "raised", "retry_after"),
    [
        (Reply(200), None, None),
        (Reply(202), None, None),
        (Reply(408), RetryLater, None),
        (Reply(429, headers={"Retry-After": "11"}), RetryLater, 11.0),
        (Reply(500), RetryLater, None),
        (Reply(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), RetryLater, 0.0),
        (Reply(400, "bad"), Rejected, None),
        (Reply(401), Rejected, None),
        (Reply(404), Rejected, None),
    ],
)
async def test_answers(make_alert: MakeAlert, reply: Reply, raised: type | None, retry_after: float | None) -> None:
    async with Recorder(reply) as rec:
        got = await attempt(output(rec.url), [record(make_alert)])
    assert type(got) is (raised or type(None))
    if isinstance(got, RetryLater | Rejected):
        assert got.reason == f"http_{reply.status}"
    if isinstance(got, RetryLater):
        assert got.delay == retry_after


async def test_retried_after_a_hang_and_a_500_each_attempt_signed_afresh_and_a_400_parks(
    make_alert: MakeAlert, make_delivery: MakeDelivery, telemetry: Telemetry
) -> None:
    times = itertools.count(1000.0, 1000.0)  # each reading of the clock is later
    async with Recorder(Reply(hang=True), Reply(500), Reply(200), Reply(400, "no such case")) as rec:
        d = make_delivery([output(rec.url, send_timeout="300ms", clock=lambda: next(times))])
        await d.start()
        d.submit([record(make_alert), make_alert(2).to_dict()])
        await until(lambda: not d.spools["webhook"].depth, "both handled")
    stamps = [r.headers["X-Exfil-Monitor-Timestamp"] for r in rec.requests]
    assert len(stamps) == 4 and [int(t) for t in stamps] == sorted({int(t) for t in stamps})  # each its own
    for r in rec.requests:
        assert wh.verify(SECRET, r.headers["X-Exfil-Monitor-Timestamp"], r.body,
                         r.headers["X-Exfil-Monitor-Signature"], now=float(r.headers["X-Exfil-Monitor-Timestamp"]))  # fmt: skip
    assert [r.json()["id"] for r in rec.requests] == [make_alert(1).id] * 3 + [make_alert(2).id]
    assert sends(telemetry, "webhook", "success") == 1 and d.spools["webhook"].parked == 1
