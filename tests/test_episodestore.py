"""The open episodes under state.dir (monitor.episodestore): written atomically when they
changed, read back by the next run, and an unreadable file said and set aside, never a
crash. The last tests run the daemon itself (a file source, in-process) across a stop."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import orjson

from monitor.engine.codec import Schema, encode_episodes, seal
from monitor.episodestore import FILE, EpisodeStore
from monitor.health import DEGRADED, Health
from monitor.telemetry import Metrics, Telemetry, configure_logging
from tests.engine.test_codec import opened
from tests.sources.conftest import alerts, file_config
from tests.test_daemon_robustness import _Running, _until


def store(directory: Path) -> tuple[EpisodeStore, Telemetry, Health, io.StringIO]:
    log = io.StringIO()
    telemetry = Telemetry(Metrics(), configure_logging("json", "info", log))
    health = Health()
    return EpisodeStore(directory, telemetry, health), telemetry, health, log


def events(log: io.StringIO, name: str) -> list[dict[str, object]]:
    return [e for e in map(orjson.loads, log.getvalue().splitlines()) if e["event"] == name]


def test_no_file_is_no_episodes_and_nothing_said(tmp_path: Path) -> None:
    s, _, health, log = store(tmp_path)
    assert s.load() == []
    assert health.report().status == "ready" and log.getvalue() == ""


def test_a_saved_table_is_what_the_next_run_loads(tmp_path: Path) -> None:
    eng = opened()
    s, _, _, _ = store(tmp_path)
    s.save(eng.episodes)
    assert (tmp_path / FILE).stat().st_mode & 0o777 == 0o600  # group values as events carry them
    assert not list(tmp_path.glob("*.tmp"))
    again, _, health, log = store(tmp_path)
    assert again.load() == eng.open_episodes()
    assert events(log, "episodes_restored")[0]["episodes"] == 2
    assert health.report().status == "ready"


def test_a_table_is_written_only_when_it_changed(tmp_path: Path) -> None:
    eng = opened()
    s, _, _, _ = store(tmp_path)
    s.save(eng.episodes)
    path = tmp_path / FILE
    os.utime(path, (0, 0))
    s.save(eng.episodes)
    assert path.stat().st_mtime == 0  # unchanged: not written again
    eng.resolve_all()  # every episode ends
    s.save(eng.episodes)
    assert path.stat().st_mtime != 0
    assert store(tmp_path)[0].load() == []


def test_an_unreadable_file_is_said_set_aside_and_the_run_starts_without_it(tmp_path: Path) -> None:
    blob = encode_episodes(opened().open_episodes())
    path = tmp_path / FILE
    path.write_bytes(blob[:-5])  # torn
    s, telemetry, health, log = store(tmp_path)
    assert s.load() == []
    (line,) = events(log, "state_unreadable")
    kept = tmp_path / (FILE + ".unreadable")
    assert line["level"] == "error" and line["file"] == "episodes" and line["path"] == str(path)
    assert str(line["error"]).startswith("not whole") and line["kept"] == str(kept)
    assert kept.read_bytes() == blob[:-5] and not path.exists()
    assert telemetry.metrics.registry.get_sample_value("exfil_monitor_state_unreadable_total", {"file": "episodes"}) == 1
    report = health.report()
    assert report.status == DEGRADED and "open episodes of the last run were unreadable (not whole" in report.reasons[0]
    assert str(kept) in report.reasons[0]


def test_a_file_that_cannot_be_written_is_said_and_tried_again(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    s, telemetry, health, log = store(blocker)  # state.dir is a file: every write fails
    eng = opened()
    s.save(eng.episodes)
    (line,) = events(log, "state_write_failed")
    assert line["file"] == "episodes" and str(blocker) in str(line["path"])
    assert telemetry.metrics.registry.get_sample_value("exfil_monitor_state_write_failures_total", {"file": "episodes"}) == 1
    assert health.report().status == DEGRADED
    s.path = tmp_path / FILE  # the disk is back
    s.save(eng.episodes)  # same revision, but never written: written now
    assert health.report().status == "ready"
    assert store(tmp_path)[0].load() == eng.open_episodes()


# ------------------------------------------------------------------ in the daemon

RULE = """\
rules:
  - id: read
    description: A read.
    severity: high
    match: {action: select}
    group_by: [actor.id]
    window: 1m
    threshold: {gte: 1}
    suppress: 1s
    resolve_after: 2s
"""


def select(actor: str, ts_ms: int) -> bytes:
    return orjson.dumps({"ts": ts_ms, "action": "select", "actor": {"id": actor}}) + b"\n"


async def test_a_restarted_daemon_resolves_the_episode_the_last_run_left_open(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "read.yaml").write_text(RULE)
    log = tmp_path / "a.log"
    log.write_bytes(select("vendor-1", int(time.time() * 1000)))
    # Idle resolution an hour away in the first run: it stops with the episode open.
    first = _Running(file_config(tmp_path, {"path": str(log)}, rules=rules, engine={"idle_resolve_after": "1h"}))
    try:
        await _until(lambda: len(alerts(tmp_path)) == 1, 30, "the alert")
        await _until(lambda: (tmp_path / "state" / FILE).exists(), 30, "the episodes written before the commit")
    finally:
        assert await first.stop_within(30)
    (alert,) = alerts(tmp_path)
    second = _Running(file_config(tmp_path, {"path": str(log)}, rules=rules, engine={"idle_resolve_after": "100ms"}))
    try:
        await _until(lambda: bool(second.log("episodes_restored")), 30, "the episodes read back")
        await _until(lambda: len(alerts(tmp_path)) == 2, 30, "the resolution")
    finally:
        assert await second.stop_within(30)
    assert second.log("episodes_restored")[0]["episodes"] == 1
    resolved = alerts(tmp_path)[1]
    assert (resolved["type"], resolved["id"], resolved["episode_start"]) == ("resolved", alert["id"], alert["fired_at"])
    assert second.daemon.events_total == 0  # nothing read again: the table alone carried it
    reg = second.daemon.metrics.registry
    assert reg.get_sample_value("exfil_monitor_episodes_open") == 0
    assert reg.get_sample_value("exfil_monitor_alerts_resolved_total", {"rule": "read", "severity": "high"}) == 1
    # ...and the stop wrote the table without it: a third run has nothing to resolve
    assert EpisodeStore(tmp_path / "state", second.daemon.telemetry).load() == []


async def test_a_daemon_with_an_unreadable_episode_file_starts_degraded_without_it(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "read.yaml").write_text(RULE)
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE).write_bytes(seal(Schema("episodes", 9), []))  # from a newer monitor, rolled back
    log = tmp_path / "a.log"
    log.write_bytes(select("vendor-2", int(time.time() * 1000)))
    run = _Running(file_config(tmp_path, {"path": str(log)}, rules=rules))
    try:
        await _until(lambda: len(alerts(tmp_path)) == 1, 30, "detection going on regardless")
        report = run.daemon.health()
        assert report.status == DEGRADED and any("open episodes of the last run were unreadable" in r
                                                 for r in report.reasons)  # fmt: skip
        await _until(lambda: (state / FILE).exists(), 30, "a new table written")
    finally:
        assert await run.stop_within(30)
    (line,) = run.log("state_unreadable")
    assert line["file"] == "episodes" and str(line["error"]).startswith("version 9 was written by a newer monitor")
    assert (state / (FILE + ".unreadable")).exists()
    assert len(EpisodeStore(state, run.daemon.telemetry).load()) == 1
