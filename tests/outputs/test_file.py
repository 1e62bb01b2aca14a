"""The file output: appends JSON lines, fsyncs before it acknowledges, survives a restart."""

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
    await out.send([make_alert(1).to_dict()])
    assert path.read_bytes() == make_alert(1).to_json() + b"\n"
    await out.stop()

    again = FileOutput("file", path)
    await again.start()
    await again.send([make_alert(2).to_dict(), make_alert(3).to_dict()])
    await again.stop()
    ids = [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]
    assert ids == [make_alert(n).id for n in (1, 2, 3)]


async def test_send_returns_only_once_the_lines_are_fsynced(
    tmp_path: Path, make_alert: MakeAlert, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool lets go of what an output acknowledged: a power cut after that must not
    lose the line, so each send fsyncs before it returns."""
    out = FileOutput("file", tmp_path / "alerts.jsonl")
    await out.start()
    synced: list[bytes] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append((tmp_path / "alerts.jsonl").read_bytes())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    await out.send([make_alert(1).to_dict()])
    assert synced == [make_alert(1).to_json() + b"\n"]
    await out.send([])
    assert len(synced) == 1  # nothing to write, nothing to sync
    await out.stop()


async def test_an_unwritable_path_fails_to_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    out = FileOutput("file", blocker / "alerts.jsonl")
    with pytest.raises(OSError):
        await out.start()
    assert not out.started
