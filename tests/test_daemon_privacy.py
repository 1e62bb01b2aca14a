"""Privacy of a running daemon: what leaves it (outputs, log lines, endpoints) is masked.

An in-process :class:`Daemon` against the real broker, with a stdout, a file and a Kafka
output and ``http.auth_token`` set: a card number and an e-mail address placed in event
fields appear in none of them, nor in the ``alert`` and ``invalid_event`` log lines, nor
in ``/alerts``; the card's last four digits are shown where the alert refers to it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.test_daemon_robustness import _produce, _Running, _until, rules_dir, write_config

pytestmark = pytest.mark.kafka

TopicFactory = Callable[..., str]
CARD, CARD_DIGITS = "4111 1111 1111 1111", "4111111111111111"
EMAIL = "jane.doe@shop.example"
TOKEN = "tok-4a7c1e9b2d"
HASH_KEY = "group-hash-key-5521"
LEAKS = (CARD, CARD_DIGITS, "4111-1111", EMAIL, "jane.doe", TOKEN, HASH_KEY)
RULE = """\
rules:
  - id: card-export
    description: An export that names a customer.
    severity: high
    match: {action: export}
    group_by: [actor.id]
    annotations:
      summary: "{actor.id} exported {customer.email}, card {payment.card}"
      note: "{note}"
"""


def leaks(text: str, *also: str) -> list[str]:
    return [s for s in (*LEAKS, *also) if s in text]


async def get(url: str, token: str | None = TOKEN) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def kafka_records(bootstrap: str, topic: str, n: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        return [(await asyncio.wait_for(consumer.getone(), 20)).value for _ in range(n)]
    finally:
        await consumer.stop()


async def run_daemon(tmp_path: Path, bootstrap: str, topics: TopicFactory, actor: str,
                     privacy: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """Produce one alerting event and one unreadable message; return what left the daemon."""
    topic, alerts_topic = topics(1), f"alerts-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    event = {"id": "e1", "ts": now, "action": "export", "actor": {"id": actor},
             "customer": {"email": EMAIL}, "payment": {"card": CARD}, "note": f"for {EMAIL} ({CARD_DIGITS})"}  # fmt: skip
    broken = f'{{"email": "{EMAIL}", "card": "{CARD}", oops'.encode()
    await _produce(bootstrap, topic, [orjson.dumps(event), broken])
    out_file = tmp_path / "alerts.jsonl"
    config = write_config(tmp_path, {"bootstrap_servers": bootstrap, "topics": [topic]}, rules_dir(tmp_path, RULE),
                          [{"type": "stdout"}, {"type": "file", "path": str(out_file)},
                           {"type": "kafka", "topic": alerts_topic}],
                          privacy=privacy or {})  # fmt: skip
    # the token and log level from the environment, as a deployment sets them
    text = orjson.loads(config.read_bytes())
    text["http"]["auth_token"] = TOKEN
    text["log"] = {"level": "debug"}
    config.write_bytes(orjson.dumps(text))
    run = _Running(config)
    try:
        await _until(lambda: out_file.exists() and out_file.read_bytes().count(b"\n") == 1, 30, "the alert in the file")
        await _until(lambda: bool(run.log("invalid_event")), 30, "the invalid_event line")
        port = run.daemon.http_port
        base = f"http://127.0.0.1:{port}"
        seen = {
            "kafka": (await kafka_records(bootstrap, alerts_topic, 1))[0].decode(),
            "alerts_without_token": await get(f"{base}/alerts", None),
            "alerts": await get(f"{base}/alerts"),
            "endpoints": [await get(f"{base}{p}") for p in ("/rules", "/readyz", "/healthz", "/metrics")],
        }
    finally:
        assert await run.stop_within(30)
    seen["file"] = out_file.read_text()
    seen["stdout"] = run.stdout.getvalue().decode()
    seen["log"] = run.stderr.getvalue()
    seen["run"] = run
    return seen


async def test_a_card_number_and_an_email_leave_the_daemon_masked(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    seen = await run_daemon(tmp_path, kafka_bootstrap, kafka_topic_factory, "mallory")
    (record,) = [orjson.loads(x) for x in seen["file"].splitlines()]
    assert record["summary"] == "mallory exported j***@shop.example, card [card ****1111]"
    assert record["annotations"]["note"] == "for j***@shop.example ([card ****1111])"
    assert record["group"] == {"actor.id": "mallory"}  # who did it: shown, on-call acts on it
    assert record["sample_event_ids"] == ["e1"]
    assert re.fullmatch(r"[\w.-]+/0@0", record["sample_provenance"][0])  # topic/partition@offset
    assert orjson.loads(seen["stdout"]) == record == orjson.loads(seen["kafka"])
    code, body = seen["alerts"]
    assert code == 200 and orjson.loads(body)["alerts"] == [record]
    assert seen["alerts_without_token"][0] == 401
    (fired,) = seen["run"].log("alert")
    assert fired["summary"] == record["summary"]
    (invalid,) = seen["run"].log("invalid_event")
    assert "[card ****1111]" in invalid["sample"] and "j***@shop.example" in invalid["sample"]
    for name in ("file", "stdout", "kafka", "log"):
        assert leaks(seen[name]) == [], name
    for code, body in [seen["alerts"], *seen["endpoints"]]:
        assert code == 200 and leaks(body) == [], body[:300]


async def test_hashed_group_values_name_no_one_anywhere(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: TopicFactory
) -> None:
    key = tmp_path / "hash-key"
    key.write_text(HASH_KEY)
    actor = "mallory.insider@corp.example"
    seen = await run_daemon(tmp_path, kafka_bootstrap, kafka_topic_factory, actor,
                            {"hash_group_values": True, "hash_key_file": str(key)})  # fmt: skip
    (record,) = [orjson.loads(x) for x in seen["file"].splitlines()]
    hashed = record["group"]["actor.id"]
    assert hashed.startswith("anon:") and record["summary"].startswith(f"{hashed} exported")
    assert orjson.loads(seen["kafka"]) == record
    for name in ("file", "stdout", "kafka", "log"):
        assert leaks(seen[name], actor, "mallory") == [], name
    for _, body in [seen["alerts"], *seen["endpoints"]]:
        assert leaks(body, actor, "mallory") == [], body[:300]
