"""replay's progress line: share done and time left when the input's size is known."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import orjson

from monitor.replay import Progress, ReplayStats
from monitor.sources.files import FileSource


def lines(n: int) -> bytes:
    return b"".join(orjson.dumps({"id": f"e{i}", "ts": i, "pad": os.urandom(8).hex()}) + b"\n" for i in range(n))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def read_half(source: FileSource) -> tuple[int, ReplayStats]:
    """Reads batches until about half the bytes are read; returns the events read."""
    stats = ReplayStats()
    total = source.total_bytes()
    assert total
    batches = source.batches()
    while source.bytes_read() < total / 2:
        stats.events += len(next(batches).lines)
    batches.close()
    return source.bytes_read(), stats


def test_regular_files_show_percent_done_and_time_left(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(lines(3000))
    b.write_bytes(lines(3000))
    source = FileSource([str(a), str(b)], batch_size=64)
    assert source.total_bytes() == a.stat().st_size + b.stat().st_size
    clock = Clock()
    progress = Progress(io.StringIO(), enabled=True, source=source, clock=clock)
    done, stats = read_half(source)
    clock.now += 10.0  # ten seconds for the share read
    share = done / source.total_bytes()  # type: ignore[operator]
    line = progress.line(stats, "a.jsonl", clock.now)
    assert line.startswith(f"{share:6.1%} a.jsonl: {stats.events:,} events")
    left = round(10.0 * (1 - share) / share)
    assert line.endswith(f"{left // 60}:{left % 60:02d} left")
    # and the line the terminal sees, then cleared
    out = io.StringIO()
    progress = Progress(out, enabled=True, source=source, clock=clock)
    progress.update(stats, "a.jsonl")
    progress.done()
    assert "% a.jsonl: " in out.getvalue() and out.getvalue().endswith("\r")


def test_every_byte_read_is_counted_to_the_end(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    a.write_bytes(lines(500))
    b.write_bytes(gzip.compress(lines(5000)))
    source = FileSource([str(a), str(b)])
    for _ in source.batches():
        assert 0 <= source.bytes_read() <= source.total_bytes()  # type: ignore[operator]
    assert source.bytes_read() == source.total_bytes()


def test_gz_counts_compressed_bytes(tmp_path: Path) -> None:
    raw = lines(20_000)
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(gzip.compress(raw))
    source = FileSource([str(path)], batch_size=64)
    assert source.total_bytes() == path.stat().st_size < len(raw)
    done, stats = read_half(source)
    assert path.stat().st_size / 2 <= done < path.stat().st_size
    assert 0 < stats.events < 20_000  # half the compressed bytes is part of the events, not all


def test_standard_input_or_a_pipe_shows_no_share(tmp_path: Path) -> None:
    assert FileSource(["-"]).total_bytes() is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    source = FileSource([str(fifo)])
    assert source.total_bytes() is None
    progress = Progress(io.StringIO(), enabled=True, source=source, clock=Clock())
    stats = ReplayStats(events=1234)
    line = progress.line(stats, "fifo", 101.0)
    assert line == "fifo: 1,234 events, 1,234/s, 0 alerts"


def test_long_runs_show_hours(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(lines(4000))
    source = FileSource([str(path)], batch_size=64)
    clock = Clock()
    progress = Progress(io.StringIO(), enabled=True, source=source, clock=clock)
    batches = source.batches()
    next(batches)
    share = source.bytes_read() / path.stat().st_size
    clock.now += 3600 * share  # an hour for the whole file
    left = round(3600 * share * (1 - share) / share)
    line = progress.line(ReplayStats(events=64), "e.jsonl", clock.now)
    batches.close()
    assert line.endswith(f"{left // 60}:{left % 60:02d} left")
    assert Progress(io.StringIO(), enabled=False, source=source).total is None  # no stat when silent
