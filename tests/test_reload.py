"""Rule reloads (monitor.reload): start on the path or the last good set, attempts that
go live whole or not at all, the watcher's debounce and a ConfigMap's symlink swap."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.config import RulesConfig
from monitor.engine import Engine
from monitor.engine.reload import Plan
from monitor.health import DEGRADED
from monitor.reload import Reloader, Settle
from monitor.rules.loader import RuleSet
from monitor.telemetry import Metrics, Telemetry, configure_logging

GOOD = "rules:\n  - {id: r, severity: high, match: {action: select}}\n"
OTHER = "rules:\n  - {id: s, severity: low, match: {action: export}}\n"
BROKEN = "rules:\n  - {id: r, severity: high, match: {action: {eqq: select}}}\n"


class Daemon:
    """What the daemon gives a Reloader: telemetry, and an engine to swap sets into."""

    def __init__(self, rules: Path, state: Path, **config: Any) -> None:
        self.stream = io.StringIO()
        self.metrics = Metrics()
        self.telemetry = Telemetry(self.metrics, configure_logging("json", "info", self.stream))
        self.reloader = Reloader(RulesConfig(path=rules, **config), state, self.telemetry, wall_clock=time.time)
        self.engine: Engine | None = None
        self.swaps: list[str] = []

    def start(self) -> RuleSet | None:
        rs = self.reloader.start()
        if rs is not None:
            self.engine = Engine(rs)
        return rs

    async def apply(self, rs: RuleSet) -> Plan:
        assert self.engine is not None
        self.swaps.append(rs.digest)
        return self.engine.reload(rs)

    def logs(self, event: str) -> list[dict[str, Any]]:
        lines = [orjson.loads(line) for line in self.stream.getvalue().splitlines()]
        return [e for e in lines if e["event"] == event]

    def counted(self, outcome: str) -> float:
        return self.metrics.registry.get_sample_value("exfil_monitor_rule_reloads_total", {"outcome": outcome}) or 0.0

    def gauge(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(f"exfil_monitor_{name}") or 0.0


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "a.yaml").write_text(GOOD)
    return d


def test_settle_acts_on_a_change_once_it_held_still_for_a_poll() -> None:
    s = Settle("A")
    assert [s.poll(f) for f in ["A", "A", "B", "C", "C", "C"]] == [False, False, False, False, True, True]
    s.attempted("C")
    assert [s.poll(f) for f in ["C", "A", "A"]] == [False, False, True]


def test_start_loads_the_path_and_keeps_it(folder: Path, tmp_path: Path) -> None:
    d = Daemon(folder, tmp_path / "state")
    rs = d.start()
    assert rs is not None and d.reloader.live is rs and not d.reloader.from_last_good
    assert (tmp_path / "state" / "rules" / "last-good.json").is_file()
    assert d.counted("success") == 1 and d.reloader.condition() is None
    status = d.reloader.status()
    assert status["origin"] == "rules.path" and status["last_rejected"] is None and status["loaded_at"]


def test_start_on_a_broken_set_runs_the_last_good_one_loudly(folder: Path, tmp_path: Path) -> None:
    first = Daemon(folder, tmp_path / "state")
    good = first.start()
    assert good is not None
    (folder / "a.yaml").write_text(BROKEN)
    d = Daemon(folder, tmp_path / "state")
    rs = d.start()
    assert rs is not None and rs.digest == good.digest and d.reloader.from_last_good
    assert d.counted("rejected") == 1 and d.gauge("rules_last_good") == 1
    (rejected,) = d.logs("rules_rejected")
    assert rejected["problems"][0].startswith(f"{folder / 'a.yaml'}:2:")  # file:line:col
    assert d.logs("rules_last_good")[0]["level"] == "error"
    condition = d.reloader.condition()
    assert condition is not None and condition.level == DEGRADED and "last good" in condition.reason
    status = d.reloader.status()
    assert status["origin"] == "last good (state.dir)"
    assert status["last_rejected"]["trigger"] == "start" and "E-UNKNOWN-OPERATOR" in status["last_rejected"]["problems"][0]


def test_start_on_a_broken_set_without_a_last_good_one_refuses(folder: Path, tmp_path: Path) -> None:
    (folder / "a.yaml").write_text(BROKEN)
    d = Daemon(folder, tmp_path / "state")
    assert d.start() is None
    assert d.counted("rejected") == 1


def test_start_with_a_damaged_last_good_copy_refuses_and_says_why(folder: Path, tmp_path: Path) -> None:
    Daemon(folder, tmp_path / "state").start()
    (tmp_path / "state" / "rules" / "last-good.json").write_text("{")
    (folder / "a.yaml").write_text(BROKEN)
    d = Daemon(folder, tmp_path / "state")
    assert d.start() is None
    assert "damaged" in d.logs("rules_last_good_unusable")[0]["error"]


async def test_a_broken_reload_changes_nothing_and_a_fix_goes_live(folder: Path, tmp_path: Path) -> None:
    d = Daemon(folder, tmp_path / "state")
    good = d.start()
    assert good is not None
    (folder / "a.yaml").write_text(BROKEN)
    out = await d.reloader.reload("sighup", d.apply)
    assert out.outcome == "rejected" and out.digest == good.digest and d.swaps == []
    assert d.reloader.live is good and d.counted("rejected") == 1
    assert d.reloader.status()["last_rejected"]["trigger"] == "sighup"
    condition = d.reloader.condition()
    assert condition is not None and "stays in force" in condition.reason

    (folder / "a.yaml").write_text(GOOD)
    (folder / "b.yaml").write_text(OTHER)
    out = await d.reloader.reload("http", d.apply)
    assert out.outcome == "success" and out.digest != good.digest and d.swaps == [out.digest]
    assert out.to_dict() == {"outcome": "success", "digest": out.digest, "files_changed": [str(folder / "b.yaml")],
                             "added": ["s"], "changed": [], "removed": [], "fresh": []}  # fmt: skip
    assert d.reloader.condition() is None and d.counted("success") == 2
    (audit,) = d.logs("rules_reloaded")
    assert audit["added"] == ["s"] and audit["trigger"] == "http" and audit["previous"] == good.digest[:12]
    kept = orjson.loads((tmp_path / "state" / "rules" / "last-good.json").read_bytes())
    assert kept["digest"] == out.digest
    # the last rejected attempt stays on /rules, older than the set loaded since
    assert d.reloader.status()["last_rejected"]["trigger"] == "sighup"


async def test_an_unchanged_set_swaps_nothing(folder: Path, tmp_path: Path) -> None:
    d = Daemon(folder, tmp_path / "state")
    d.start()
    out = await d.reloader.reload("sighup", d.apply)
    assert out.outcome == "success" and d.swaps == [] and out.plan is not None and out.plan.files == ()


async def test_a_source_format_the_new_set_lacks_rejects_it(folder: Path, tmp_path: Path) -> None:
    from monitor.problems import Problem
    from monitor.rules.errors import RuleLoadError

    d = Daemon(folder, tmp_path / "state")
    good = d.start()

    async def refuse(rs: RuleSet) -> Plan:
        raise RuleLoadError([Problem(str(folder), 1, 1, "the source's format is gone", code="E-UNKNOWN-FORMAT")])

    (folder / "b.yaml").write_text(OTHER)
    out = await d.reloader.reload("sighup", refuse)
    assert out.outcome == "rejected" and d.reloader.live is good


async def watched(d: Daemon, until: Any, timeout: float = 10.0) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(d.reloader.watch(d.apply, stopping))
    try:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, d.stream.getvalue()[-2000:]
            await asyncio.sleep(0.02)
    finally:
        stopping.set()
        await task


async def test_the_watcher_reloads_an_edit_once_and_a_broken_edit_once(folder: Path, tmp_path: Path) -> None:
    d = Daemon(folder, tmp_path / "state", watch_interval="50ms")
    d.start()
    (folder / "a.yaml").write_text(BROKEN)
    await watched(d, lambda: d.counted("rejected") >= 1)
    await asyncio.sleep(0.3)  # polls go on; the same broken files are not attempted again
    await watched(d, lambda: True)
    assert d.counted("rejected") == 1 and d.swaps == []
    (folder / "a.yaml").write_text(GOOD.replace("high", "critical"))
    await watched(d, lambda: d.swaps)
    assert d.counted("success") == 2
    assert d.logs("rules_reloaded")[0]["changed"] == ["r"] and d.logs("rules_reloaded")[0]["trigger"] == "watch"


async def test_the_watcher_sees_a_configmap_swap_with_the_same_mtimes(tmp_path: Path) -> None:
    """The kubelet writes a new timestamped folder and renames the ``..data`` symlink over
    the old one; the visible names stay symlinks into ``..data``, and here even the files'
    mtimes are the old ones: only their content tells."""
    mount = tmp_path / "mount"
    mount.mkdir()
    first = mount / "..2026_11_27_00_00_00.1"
    first.mkdir()
    (first / "a.yaml").write_text(GOOD)
    os.symlink(first.name, mount / "..data")
    os.symlink("..data/a.yaml", mount / "a.yaml")
    d = Daemon(mount, tmp_path / "state", watch_interval="50ms")
    good = d.start()
    assert good is not None and good.files == (str(mount / "a.yaml"),)

    second = mount / "..2026_11_27_00_05_00.2"
    second.mkdir()
    (second / "a.yaml").write_text(GOOD.replace("select", "export"))
    stat = (first / "a.yaml").stat()
    os.utime(second / "a.yaml", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.utime(second, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns))
    os.symlink(second.name, mount / "..data_tmp")
    os.rename(mount / "..data_tmp", mount / "..data")
    await watched(d, lambda: d.swaps)
    live = d.reloader.live
    assert live is not None and live.rules[0].spec.conditions[0].value == "export"
    assert d.logs("rules_reloaded")[0]["changed"] == ["r"]


def test_telemetry_forgets_the_states_and_group_gauges_of_rules_gone(tmp_path: Path) -> None:
    from monitor.rules.loader import load_texts

    two = load_texts([("r.yaml", (GOOD + OTHER.replace("rules:\n", "")).encode())])
    d = Daemon(tmp_path, tmp_path / "state")
    engine = Engine(two)
    engine.process([({"ts": 1, "action": "select"}, 1), ({"ts": 2, "action": "export"}, 2)])
    d.telemetry.batch_done(engine, 0.001, None, None)
    groups = d.metrics.registry.get_sample_value
    assert groups("exfil_monitor_active_groups", {"rule": "s"}) == 0.0
    engine.reload(load_texts([("r.yaml", GOOD.encode())]))
    d.telemetry.rules_swapped(engine.states)
    assert groups("exfil_monitor_active_groups", {"rule": "s"}) is None
    assert groups("exfil_monitor_active_groups", {"rule": "r"}) == 0.0
    assert [v[0] for v in d.telemetry._synced.values()] == engine.states
