"""The file source in the daemon, with plain temporary files: config, life cycle,
provenance, at-least-once positions, input formats, health."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from monitor.config import ConfigError, FileSourceConfig, load_config
from monitor.health import DEGRADED, NOT_READY, Condition
from monitor.inputs import get_format
from monitor.sources.logfile import FileSource
from monitor.telemetry import quiet_telemetry
from tests.sources.conftest import alerts, file_config
from tests.test_daemon_robustness import _Running, _until

RULE = """\
rules:
  - id: vendor-read
    description: A vendor read something.
    severity: high
    match: {action: select, actor.type: vendor}
    group_by: [actor.id]
actors:
  vendor: ["*_vendor"]
inputs:
  shop-api:
    from: jsonl
    fields: {ts: time, actor.id: user}
    constants: {action: select}
"""


def rules(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "r.yaml").write_text(RULE)
    return d


def event(actor: str, **fields: object) -> bytes:
    now = int(time.time() * 1000)
    return orjson.dumps({"ts": now, "action": "select", "actor": {"id": actor}, **fields}) + b"\n"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "monitor.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    return [str(p).removeprefix(f"{path}:") for p in info.value.problems]


# ----------------------------------------------------------------------------- config


def test_sources_replace_kafka_and_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("sources: [{type: file, path: 'logs/*.csv', format: pgaudit}]\nrules: {path: rules}\n")
    config = load_config(path, {})
    assert config.kafka is None and config.sources is not None
    (source,) = config.sources
    assert isinstance(source, FileSourceConfig)
    assert source.path == tmp_path / "logs" / "*.csv" and source.format == "pgaudit"
    assert source.timezone == "UTC" and source.label == "file"


def test_source_config_errors_are_clear_and_positioned(tmp_path: Path) -> None:
    assert problems(tmp_path, "rules: {path: r}\n") == [
        "1:1: give the source of events: a kafka: section or a sources: list "
        "(e.g. [{type: file, path: /var/log/postgresql/*.csv, format: pgaudit}])"
    ]
    both = """\
        kafka: {bootstrap_servers: x:9092, topics: [t]}
        sources: [{type: file, path: /x}]
        rules: {path: r}
        """
    assert problems(tmp_path, both) == ["2:10: sources: give either kafka: or sources:, not both (one daemon, one source)"]
    assert problems(tmp_path, "sources: [{type: file, path: /a}, {type: file, path: /b}]\nrules: {path: r}\n") == [
        "1:10: sources: exactly one source is supported, got 2; run one daemon (with its own state.dir) per source"
    ]
    bad = """\
        sources:
          - type: tail
          - {type: file, path: /x, timezone: Mars/Olympus, pol_interval: 1s}
        rules: {path: r}
        """
    assert problems(tmp_path, bad) == [
        "2:5: sources.0: unknown source type 'tail' (known: 'file')",
        "3:38: sources.1.timezone: unknown time zone 'Mars/Olympus' (an IANA name such as UTC or Europe/Berlin)",
        "3:52: sources.1: unknown key 'pol_interval' (did you mean 'poll_interval'?)",
    ]
    kafka_out = """\
        sources: [{type: file, path: /x}]
        rules: {path: r}
        outputs: [{type: kafka, topic: alerts, bootstrap_servers: b:9092}]
        """
    assert problems(tmp_path, kafka_out) == [
        "3:11: outputs.0: a kafka output takes its brokers and security settings from the kafka: section, "
        "which a file source has not"
    ]


# ----------------------------------------------------------------------------- the source alone


async def test_positions_advance_only_for_processed_records_and_after_the_outputs_flush(tmp_path: Path) -> None:
    log, state = tmp_path / "a.log", tmp_path / "state"
    log.write_bytes(event("a") + event("b"))
    saved_when_flushed: list[bool] = []
    state_file = state / "follow-file.json"

    async def flush(positions: object) -> bool:  # the positions file must not yet hold what this flush covers
        saved_when_flushed.append(state_file.exists() and json.loads(state_file.read_text())["files"] != {})
        return True

    config = FileSourceConfig(type="file", path=tmp_path / "*.log")
    src = FileSource(config, quiet_telemetry(), state, before_commit=flush, commit_interval=0)
    assert src.condition() == Condition(NOT_READY, "not started")
    src.bind(get_format("jsonl"))
    stopping = asyncio.Event()
    assert await src.start(stopping)
    with pytest.raises(RuntimeError):
        await src.start(stopping)
    batch = await src.fetch()
    ((stream, recs),) = batch.items()
    assert [src.where(stream, r) for r in recs] == [f"{log}:1", f"{log}:2"]
    await src.maybe_commit()  # nothing processed: nothing saved, no flush
    assert saved_when_flushed == [] and not state_file.exists()
    src.processed(batch)
    await src.maybe_commit()
    assert saved_when_flushed == [False]
    assert src.condition() is None
    with log.open("ab") as w:
        w.write(event("c"))
    unprocessed = await src.fetch()  # handed out, never processed: read again after a restart
    assert [r.line for recs in unprocessed.values() for r in recs] == [3]
    await src.stop()
    await src.stop()

    again = FileSource(config, quiet_telemetry(), state)
    again.bind(get_format("jsonl"))
    assert await again.start(asyncio.Event())
    assert [r.line for recs in (await again.fetch()).values() for r in recs] == [3]
    await again.stop()


async def test_health_says_when_no_file_matches(tmp_path: Path) -> None:
    config = FileSourceConfig(type="file", path=tmp_path / "nothing-*.log", poll_interval="10ms")
    src = FileSource(config, quiet_telemetry(), tmp_path / "state")
    src.bind(get_format("jsonl"))
    await src.start(asyncio.Event())
    assert await src.fetch() == {}
    condition = src.condition()
    assert condition is not None and condition.level == DEGRADED
    assert condition.reason == f"no file matches {tmp_path}/nothing-*.log"
    await src.stop()
    assert src.condition() == Condition(NOT_READY, "stopped")


# ----------------------------------------------------------------------------- in the daemon


async def test_the_daemon_maps_records_through_a_custom_input_and_names_their_lines(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "api.log"
    log.parent.mkdir()
    now = int(time.time() * 1000)
    log.write_bytes(b"\n".join([
        orjson.dumps({"time": now, "user": "shop_app"}), b"not json at all",
        orjson.dumps({"time": now, "user": "hvac_vendor"}), b"",
    ]))  # fmt: skip
    config = file_config(tmp_path, {"path": str(log.parent / "*.log"), "format": "shop-api"}, rules=rules(tmp_path))
    run = _Running(config)
    try:
        await _until(lambda: bool(alerts(tmp_path)), 30, "the vendor's alert")
        await _until(lambda: bool(run.log("invalid_event")), 30, "the invalid line reported")
    finally:
        assert await run.stop_within(30)
    (alert,) = alerts(tmp_path)
    assert alert["group"] == {"actor.id": "hvac_vendor"} and alert["sample_provenance"] == [f"{log}:3"]
    (invalid,) = run.log("invalid_event")
    assert invalid["where"] == f"{log}:2" and invalid["reason"] == "invalid_json"
    (starting,) = run.log("starting")
    assert starting["source"] == "file" and starting["format"] == "shop-api"


async def test_an_unknown_format_stops_the_daemon_at_start(tmp_path: Path) -> None:
    config = file_config(tmp_path, {"path": str(tmp_path / "*.log"), "format": "no-such"}, rules=rules(tmp_path))
    run = _Running(config)
    assert await asyncio.wait_for(run.task, 30) == 1
    (line,) = run.log("input_format_unknown")
    assert line["format"] == "no-such" and "shop-api" in line["error"]


async def test_a_restart_resumes_after_the_last_processed_line(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(event("one_vendor"))
    config = file_config(tmp_path, {"path": str(tmp_path / "*.log")}, rules=rules(tmp_path))
    run = _Running(config)
    try:
        await _until(lambda: len(alerts(tmp_path)) == 1, 30, "the first alert")
    finally:
        assert await run.stop_within(30)
    with log.open("ab") as w:
        w.write(event("two_vendor"))
    (tmp_path / "b.log").write_bytes(event("three_vendor"))  # a new file matching the glob
    run = _Running(config)
    try:
        await _until(lambda: len(alerts(tmp_path)) == 3, 30, "the two new alerts")
    finally:
        assert await run.stop_within(30)
    assert alerts(tmp_path)[0]["group"] == {"actor.id": "one_vendor"}
    assert sorted(a["sample_provenance"][0] for a in alerts(tmp_path)[1:]) == [f"{log}:2", f"{tmp_path}/b.log:1"]
    assert run.daemon.events_total == 2
    metrics = run.daemon.metrics.registry
    assert metrics.get_sample_value("exfil_monitor_files_followed", {"source": "file"}) == 0  # closed at stop


WINDOWED = """\
rules:
  - id: two-reads
    description: Two reads by one account within an hour.
    severity: high
    match: {action: select}
    group_by: [actor.id]
    window: 1h
    aggregate: count
    threshold: {gte: 2}
"""


async def test_a_window_spanning_a_restart_is_restored_from_the_checkpoint(tmp_path: Path) -> None:
    """The file source's state and positions are one checkpoint (under state.dir with no
    Kafka): a window open at the stop carries on, and where to read on comes from the
    checkpoint, even with the positions file gone."""
    d = tmp_path / "rules"
    d.mkdir()
    (d / "r.yaml").write_text(WINDOWED)
    log = tmp_path / "a.log"
    log.write_bytes(event("alice"))
    config = file_config(tmp_path, {"path": str(tmp_path / "*.log")}, rules=d)
    run = _Running(config)
    try:
        await _until(lambda: run.daemon.events_total == 1, 30, "the first read")
    finally:
        assert await run.stop_within(30)
    assert alerts(tmp_path) == [], "one read of two"
    assert list((tmp_path / "state" / "checkpoints").glob("file-file.ckpt"))
    (tmp_path / "state" / "follow-file.json").unlink()
    with log.open("ab") as w:
        w.write(event("alice"))
    run = _Running(config)
    try:
        await _until(lambda: len(alerts(tmp_path)) == 1, 30, "the alert on the second read")
    finally:
        assert await run.stop_within(30)
    [alert] = alerts(tmp_path)
    assert alert["rule"] == "two-reads" and alert["value"] == 2
    assert run.daemon.events_total == 1, "the first line was not read again"


async def test_an_unreadable_positions_file_stops_the_daemon_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(event("x_vendor"))
    state = tmp_path / "state"
    state.mkdir()
    (state / "follow-file.json").write_text("{half a json")
    run = _Running(file_config(tmp_path, {"path": str(tmp_path / "*.log")}, rules=rules(tmp_path)))
    assert await asyncio.wait_for(run.task, 30) == 1
    (line,) = run.log("source_unavailable")
    assert "follow-file.json: unreadable follow positions" in line["error"] and "move it away" in line["error"]
    assert alerts(tmp_path) == []
