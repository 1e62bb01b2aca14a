"""``kafka.format``: a topic of pgaudit csvlog records, mapped by the daemon like a file's."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from tests.sources.conftest import RULES, alerts
from tests.test_daemon_robustness import _produce, _Running, _until, write_config

pytestmark = pytest.mark.kafka


def pgaudit_line(user: str, rows: int) -> bytes:
    now = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    return (
        f'{now},"{user}","shop",1,"10.0.0.5:5",s,1,"SELECT",x,3/1,0,LOG,00000,'
        f'"AUDIT: SESSION,1,1,READ,SELECT,TABLE,shop.customers,""select *\n  from shop.customers"",<not logged>,{rows}"'
        ',,,,,,,,,"psql","client backend",,0'
    ).encode()


async def test_a_topic_of_pgaudit_records_is_mapped_and_alerts_name_the_offset(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory(1)
    await _produce(kafka_bootstrap, topic, [b"not a csvlog record", pgaudit_line("hvac_vendor", 500)])
    out = tmp_path / "alerts.jsonl"
    config = write_config(tmp_path, {"bootstrap_servers": kafka_bootstrap, "topics": [topic], "format": "pgaudit"},
                          RULES, [{"type": "file", "path": str(out)}])  # fmt: skip
    run = _Running(config)
    try:
        await _until(lambda: bool(alerts(tmp_path)), 30, "the bulk-read alert")
    finally:
        assert await run.stop_within(30)
    (alert,) = alerts(tmp_path)
    assert alert["rule"] == "bulk-table-read" and alert["value"] == 500
    assert alert["sample_provenance"] == [f"{topic}/0@1"]
    (invalid,) = run.log("invalid_event")
    assert invalid["where"] == f"{topic}/0@0"
    assert orjson.loads(out.read_bytes())["group"] == {"actor.id": "hvac_vendor"}
