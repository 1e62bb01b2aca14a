"""The keeper: partitions' engines restored on assignment and checkpointed before commits.

Against the directory store (the Kafka store's own behaviour is in test_stores.py): what
a restore gives back, what a save writes or skips, and what a corrupt checkpoint does
under each ``on_corrupt``.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.checkpoints.base import Checkpoint, CheckpointError, Loaded
from monitor.checkpoints.directory import DirectoryStore
from monitor.checkpoints.keeper import Keeper
from monitor.engine import EngineOptions
from monitor.engine.partitioned import Partitioned
from monitor.health import DEGRADED, NOT_READY, Health
from monitor.retry import Backoff
from monitor.rules.loader import RuleSet, load_texts
from monitor.telemetry import Metrics, Telemetry, configure_logging
from tests.engine.test_properties import rule_yaml
from tests.support.engine import ruleset as ruleset_of

RULES = """\
rules:
  - id: three-reads
    description: Three reads by one actor within ten minutes.
    severity: high
    match: {action: select}
    group_by: [actor.id]
    window: 10m
    aggregate: count
    threshold: {gte: 3}
    suppress: 1h
"""
T0 = 1_796_000_000_000
DATA = Path(__file__).parent / "data"


def ruleset() -> RuleSet:
    return load_texts([("r.yaml", RULES.encode())])


def read(i: int, actor: str, ts: int) -> tuple[dict[str, object], int]:
    return {"id": f"e{i}", "ts": ts, "action": "select", "actor": {"id": actor}}, ts


class Harness:
    """A keeper over a folder, as one daemon process would have it."""

    def __init__(self, folder: Path, on_corrupt: str = "stop", store: DirectoryStore | None = None) -> None:
        self.log = io.StringIO()
        self.telemetry = Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "info", self.log))
        self.health = Health()
        self.engines = Partitioned(ruleset())
        self.store = store or DirectoryStore(folder)
        self.keeper = Keeper(self.store, self.engines, self.telemetry, self.health, key=lambda p: f"events.{p}",
                             on_corrupt=on_corrupt, wall_clock=lambda: T0 / 1000)  # fmt: skip

    def restores(self, outcome: str) -> float:
        value = self.telemetry.metrics.registry.get_sample_value(
            "exfil_monitor_checkpoint_restores_total", {"outcome": outcome})  # fmt: skip
        return value or 0.0

    def saves(self, outcome: str) -> float:
        value = self.telemetry.metrics.registry.get_sample_value(
            "exfil_monitor_checkpoints_total", {"outcome": outcome})  # fmt: skip
        return value or 0.0


@pytest.fixture
def harness(tmp_path: Path) -> Callable[..., Harness]:
    return lambda **kw: Harness(tmp_path / "checkpoints", **kw)


async def test_a_restored_partition_carries_on_its_window_as_if_never_stopped(harness: Callable[..., Harness]) -> None:
    first = harness()
    await first.keeper.start()
    assert {p: r.offset for p, r in (await first.keeper.restore({0, 1})).items()} == {0: None, 1: None}
    assert first.restores("none") == 2
    assert not first.engines.process({0: [read(1, "a", T0), read(2, "a", T0 + 1000)]}, {0: 2})
    assert await first.keeper.save()
    assert first.saves("saved") == 1

    second = harness()  # another process, or the instance the partition moved to
    await second.keeper.start()
    restored = await second.keeper.restore({0})
    assert restored[0].offset == 2, "read on from the checkpoint's offset"
    assert second.restores("restored") == 1
    [alert] = second.engines.process({0: [read(3, "a", T0 + 2000)]}, {0: 3})
    assert alert.rule == "three-reads" and alert.value == 3, "the two reads before the restart count"


async def test_an_unchanged_partition_is_not_written_again(harness: Callable[..., Harness], tmp_path: Path) -> None:
    h = harness()
    await h.keeper.start()
    await h.keeper.restore({0, 1})
    h.engines.process({0: [read(1, "a", T0)]}, {0: 1})
    assert await h.keeper.save()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["events.0.ckpt"], (
        "partition 1 read nothing: nothing to keep"
    )
    assert await h.keeper.save()
    assert h.saves("saved") == 1, "nothing moved since: no second write"
    h.engines.process({0: [read(2, "a", T0 + 1)]}, {0: 2})
    assert await h.keeper.save()
    assert h.saves("saved") == 2


class FailingStore(DirectoryStore):
    async def save(self, checkpoints: Mapping[str, Checkpoint]) -> int:
        raise OSError(28, "No space left on device")


async def test_a_failed_write_says_so_and_tells_the_caller_not_to_commit(tmp_path: Path) -> None:
    h = Harness(tmp_path, store=FailingStore(tmp_path))
    await h.keeper.start()
    await h.keeper.restore({0})
    h.engines.process({0: [read(1, "a", T0)]}, {0: 1})
    assert await h.keeper.save() is False
    assert h.saves("failed") == 1
    logged = h.log.getvalue()
    assert "checkpoint_failed" in logged and "No space left on device" in logged
    report = h.health.report()
    assert report.status == DEGRADED and any("checkpoints failing" in r for r in report.reasons)


async def test_a_partition_whose_state_was_dropped_commits_nothing(harness: Callable[..., Harness]) -> None:
    """A batch that failed half-way drops its partitions' engines (their state holds it):
    the caller must not commit their offsets without a checkpoint behind them."""
    h = harness()
    await h.keeper.start()
    await h.keeper.restore({0, 1})
    h.engines.process({0: [read(1, "a", T0)], 1: [read(2, "b", T0)]}, {0: 1, 1: 1})
    h.engines.drop([1])
    assert await h.keeper.save({0, 1}) is False
    assert h.saves("failed") == 1 and h.saves("saved") == 0
    assert await h.keeper.save({0}) is True


async def test_a_partition_handed_straight_back_keeps_its_engine_and_others_are_dropped(
    harness: Callable[..., Harness],
) -> None:
    h = harness()
    await h.keeper.start()
    await h.keeper.restore({0, 1})
    h.engines.process({0: [read(1, "a", T0)], 1: [read(2, "b", T0)]}, {0: 5, 1: 7})
    kept = h.engines.slots[0].engine
    restored = await h.keeper.restore({0, 2})  # an eager rebalance: 1 went elsewhere, 2 came
    assert h.engines.slots[0].engine is kept and restored[0].offset == 5
    assert 1 not in h.engines and 2 in h.engines


def corrupt(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))


async def two_checkpoints(h: Harness) -> None:
    await h.keeper.start()
    await h.keeper.restore({0})
    h.engines.process({0: [read(1, "a", T0)]}, {0: 1})
    await h.keeper.save()
    h.engines.process({0: [read(2, "a", T0 + 1)]}, {0: 2})
    await h.keeper.save()


async def with_newest_corrupt(harness: Callable[..., Harness], tmp_path: Path) -> tuple[Harness, dict[Any, Any]]:
    """Two checkpoints of partition 0, the newer one damaged at rest, restored by a new keeper."""
    await two_checkpoints(harness())
    corrupt(tmp_path / "checkpoints" / "events.0.ckpt")
    h = harness()
    await h.keeper.start()
    return h, await h.keeper.restore({0})


async def test_a_corrupt_checkpoint_falls_back_to_the_previous_one_loudly(
    harness: Callable[..., Harness], tmp_path: Path
) -> None:
    h, restored = await with_newest_corrupt(harness, tmp_path)
    assert restored[0].offset == 1, "the previous checkpoint, whose later events are read again"
    assert h.restores("fell_back") == 1
    report = h.health.report()
    assert report.status == DEGRADED and any("checksum" in r for r in report.reasons)
    assert h.keeper.fatal is None


async def test_no_readable_checkpoint_stops_the_daemon_by_default(
    harness: Callable[..., Harness], tmp_path: Path
) -> None:
    await two_checkpoints(harness())
    for name in ("events.0.ckpt", "events.0.prev.ckpt"):
        corrupt(tmp_path / "checkpoints" / name)
    h = harness()
    await h.keeper.start()
    restored = await h.keeper.restore({0, 1})
    assert set(restored) == {1}, "the corrupt partition is not read at all"
    assert h.keeper.fatal is not None and "start_empty" in h.keeper.fatal
    assert h.restores("corrupt") == 1
    assert h.health.report().status == NOT_READY


async def test_start_empty_goes_on_without_the_unreadable_state(harness: Callable[..., Harness], tmp_path: Path) -> None:
    await two_checkpoints(harness())
    (tmp_path / "checkpoints" / "events.0.ckpt").write_bytes(b"not a checkpoint")
    (tmp_path / "checkpoints" / "events.0.prev.ckpt").write_bytes(b"nor this")
    h = harness(on_corrupt="start_empty")
    await h.keeper.start()
    restored = await h.keeper.restore({0})
    assert restored[0].offset is None, "from the committed offset, empty"
    assert h.keeper.fatal is None and h.restores("corrupt") == 1
    report = h.health.report()
    assert report.status == DEGRADED and any("started empty" in r for r in report.reasons)


async def test_a_checkpoint_whose_state_is_not_a_snapshot_counts_as_corrupt(
    harness: Callable[..., Harness], tmp_path: Path
) -> None:
    """A checkpoint can be whole (its checksum good) and still hold a state this daemon
    cannot restore (written by a newer version, say): not silently started empty."""
    store = DirectoryStore(tmp_path / "checkpoints")
    await store.start()
    await store.save({"events.0": Checkpoint(9, b"\x00not a snapshot", T0)})
    h = harness()
    await h.keeper.start()
    assert 0 not in await h.keeper.restore({0})
    assert h.keeper.fatal is not None and "cannot be restored" in h.keeper.fatal


async def test_a_store_that_cannot_be_read_is_retried_and_never_taken_for_corrupt(tmp_path: Path) -> None:
    """The broker away in the middle of a rebalance: the partitions wait, /readyz says why,
    and once the store answers they are restored as if nothing happened."""

    class Flaky(DirectoryStore):
        failures = 2

        async def load(self, keys: list[str]) -> dict[str, Loaded]:
            if self.failures:
                self.failures -= 1
                raise CheckpointError("the checkpoint topic cannot be read (error code 5)")
            return await super().load(keys)

    await two_checkpoints(Harness(tmp_path / "checkpoints"))
    h = Harness(tmp_path / "checkpoints", store=Flaky(tmp_path / "checkpoints"))
    h.keeper.backoff = Backoff(0.01, 0.02)
    await h.keeper.start()
    restored = await h.keeper.restore({0})
    assert restored[0].offset == 2 and h.keeper.fatal is None
    assert h.restores("corrupt") == 0 and h.restores("restored") == 1
    errors = h.telemetry.metrics.registry.get_sample_value(
        "exfil_monitor_source_errors_total", {"kind": "checkpoint_store"})  # fmt: skip
    assert errors == 2 and "error code 5" in h.log.getvalue()
    assert h.health.report().status != NOT_READY, "answered: the condition is gone"


async def test_a_stop_while_the_store_is_away_reads_nothing(tmp_path: Path) -> None:
    class Away(DirectoryStore):
        async def load(self, keys: list[str]) -> dict[str, Loaded]:
            raise OSError(5, "Input/output error")

    stopping = asyncio.Event()
    h = Harness(tmp_path, store=Away(tmp_path))
    h.keeper.stopping, h.keeper.backoff = stopping, Backoff(0.01, 0.02)
    await h.keeper.start()
    restoring = asyncio.create_task(h.keeper.restore({0, 1}))
    await asyncio.sleep(0.05)
    assert not restoring.done(), "still waiting for the store"
    stopping.set()
    assert await asyncio.wait_for(restoring, 2) == {}
    assert 0 not in h.engines and h.keeper.fatal is None


async def test_a_fallback_is_reported_until_that_partitions_next_checkpoint(
    harness: Callable[..., Harness], tmp_path: Path
) -> None:
    h, _ = await with_newest_corrupt(harness, tmp_path)
    assert h.health.report().status == DEGRADED
    h.engines.process({0: [read(3, "a", T0 + 2)]}, {0: 2})
    assert await h.keeper.save()
    assert h.health.report().status == "ready"


async def test_a_checkpoint_of_the_first_format_version_restores(tmp_path: Path) -> None:
    """``data/checkpoint-v1.ckpt``: the envelope of version 1 around the engine snapshot of
    version 1 (tests/engine/data), offset 42, as the directory store keeps it. Every later
    daemon must restore it; add a file per new version rather than replace this one."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copy(DATA / "checkpoint-v1.ckpt", folder / "events.0.ckpt")
    telemetry = Telemetry(Metrics(CollectorRegistry()), configure_logging("json", "info", io.StringIO()))
    options = EngineOptions(allowed_lateness_ms=10_000)
    engines = Partitioned(ruleset_of(rule_yaml("count", "gte", 2, 60, 30, resolve_after_s=60)), options)
    keeper = Keeper(DirectoryStore(folder), engines, telemetry, Health(), key=lambda p: f"events.{p}")
    await keeper.start()
    assert (await keeper.restore({0}))[0].offset == 42
    [episode] = engines.open_episodes()
    assert episode.alert.group == {"actor.id": "a"}
