"""The file output: appends JSON lines, fsyncs on flush, survives a restart."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from monitor.outputs.file import FileOutput
from tests.outputs.conftest import MakeAlert


async def test_appends_json_lines_across_restarts(tmp_path: Path, make_alert: MakeAlert) -> None:
    path = tmp_path / "deep" / "alerts.jsonl"
    out = FileOutput("file", path)
    await out.start()
    await out.send([make_alert(1)])
    # Sent means handed to the OS: another reader sees it before any flush.
    assert path.read_bytes() == make_alert(1).to_json() + b"\n"
    await out.stop()

    again = FileOutput("file", path)
    await again.start()
    await again.send([make_alert(2), make_alert(3)])
    await again.stop()
    ids = [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]
    assert ids == [make_alert(n).id for n in (1, 2, 3)]


async def test_flush_fsyncs_only_after_new_alerts(
    tmp_path: Path, make_alert: MakeAlert, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    out = FileOutput("file", tmp_path / "alerts.jsonl")
    await out.start()
    await out.flush()
    assert synced == []
    await out.send([make_alert(1)])
    await out.flush()
    assert len(synced) == 1
    await out.flush()
    assert len(synced) == 1
    await out.send([make_alert(2)])
    await out.stop()  # stopping makes the rest durable too
    assert len(synced) == 2


async def test_an_unwritable_path_fails_to_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    out = FileOutput("file", blocker / "alerts.jsonl")
    with pytest.raises(OSError):
        await out.start()
    assert not out.started
