"""The file follower against real files being written, rotated, truncated and replaced."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.inputs import get_format
from monitor.inputs.base import record_lines
from monitor.sources.follow import STATE_FILE, Events, Follower

CSV = (
    '2024-05-01 12:00:0{n}.000 UTC,"alice","shop",1,"10.0.0.5:5",s,{n},"SELECT",x,3/1,0,LOG,00000,'
    '"AUDIT: SESSION,{n},1,READ,SELECT,TABLE,shop.customers,""select *\n  from shop.customers"",<not logged>,{n}"'
    ',,,,,,,,,"psql","client backend",,0\n'
)


def drain(f: Follower) -> list[bytes]:
    out: list[bytes] = []
    for chunk in f.poll():
        out.extend(chunk.records)
        f.commit(chunk)
    return out


def test_growth_rotation_new_files_and_truncation(tmp_path: Path) -> None:
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    f = Follower(str(logs / "*.log"), get_format("jsonl"), state)
    a = logs / "app.log"
    a.write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": 3')  # the third line is still being written
    assert drain(f) == [b'{"n": 1}', b'{"n": 2}']
    with a.open("ab") as w:
        w.write(b'}\n{"n": 4}\n')
    assert drain(f) == [b'{"n": 3}', b'{"n": 4}']
    with a.open("ab") as w:
        w.write(b'{"n": 5}\n{"n": 6}')  # rotated before its last newline
    os.rename(a, tmp_path / "app.log.1")  # out of the glob: read to its end, then let go
    a.write_bytes(b'{"n": 7}\n')
    (logs / "other.log").write_bytes(b'{"n": 8}\n')
    assert sorted(drain(f)) == [b'{"n": 5}', b'{"n": 6}', b'{"n": 7}', b'{"n": 8}']
    assert drain(f) == []
    a.write_bytes(b'{"n":9}\n')  # truncated in place (copytruncate), shorter than before
    assert drain(f) == [b'{"n":9}']
    f.close()
    f.close()


def test_csv_records_spanning_lines_and_positions_at_boundaries(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.csv"
    record = CSV.format(n=1).encode()
    cut = record.index(b"\n") + 1  # inside the quoted, multi-line statement
    log.write_bytes(record[:cut])
    f = Follower(str(tmp_path / "*.csv"), get_format("pgaudit"), tmp_path / "state")
    assert drain(f) == []
    with log.open("ab") as w:
        w.write(record[cut:] + CSV.format(n=2).encode())
    records = drain(f)
    assert len(records) == 2
    events = [e for r in records for e in get_format("pgaudit").decode(r)]
    assert [e["rows"] for e in events if isinstance(e, dict)] == [1, 2]
    f.close()


def test_positions_survive_a_restart_and_uncommitted_chunks_are_read_again(tmp_path: Path) -> None:
    log, state = tmp_path / "a.log", tmp_path / "state"
    log.write_bytes(b'{"n": 1}\n{"n": 2}\n')
    f = Follower(str(tmp_path / "*.log"), get_format("jsonl"), state)
    assert drain(f) == [b'{"n": 1}', b'{"n": 2}']
    with log.open("ab") as w:
        w.write(b'{"n": 3}\n')
    (chunk,) = f.poll()  # handed out, then the process dies before committing
    assert chunk.records == [b'{"n": 3}']
    f.close()
    g = Follower(str(tmp_path / "*.log"), get_format("jsonl"), state)
    assert drain(g) == [b'{"n": 3}']  # at least once, nothing before it again
    g.close()
    h = Follower(str(tmp_path / "*.log"), get_format("jsonl"), state)
    assert drain(h) == []
    h.rewind()
    h.close()


def records_and_lines(f: Follower) -> list[tuple[bytes, int]]:
    out: list[tuple[bytes, int]] = []
    for chunk in f.poll():
        out.extend(zip(chunk.records, chunk.lines, strict=True))
        f.commit(chunk)
    return out


def test_line_numbers_count_multi_line_records_across_reads_and_restarts(tmp_path: Path) -> None:
    log, state = tmp_path / "postgresql.csv", tmp_path / "state"
    one, two = CSV.format(n=1).encode(), CSV.format(n=2).encode()
    assert one.count(b"\n") == 2  # the statement spans two lines
    log.write_bytes(one + two)
    f = Follower(str(tmp_path / "*.csv"), get_format("pgaudit"), state)
    assert [n for _, n in records_and_lines(f)] == [1, 3]
    f.close()
    with log.open("ab") as w:
        w.write(b"\n" + CSV.format(n=3).encode())  # after a blank line
    g = Follower(str(tmp_path / "*.csv"), get_format("pgaudit"), state)
    assert [n for _, n in records_and_lines(g)] == [6]  # the line number was saved with the offset
    g.close()
    lines = log.read_bytes().split(b"\n")
    assert lines[5].startswith(b"2024-05-01 12:00:03")


def test_a_truncated_file_is_read_from_its_first_line_again_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": 3}\n')
    kinds: list[str] = []
    f = Follower(str(tmp_path / "*.log"), get_format("jsonl"), tmp_path / "state", events=Events(rotated=kinds.append))
    assert [n for _, n in records_and_lines(f)] == [1, 2, 3]
    log.write_bytes(b'{"n": 4}\n')  # copytruncate
    assert records_and_lines(f) == [(b'{"n": 4}', 1)]
    assert kinds == ["truncated"]
    f.close()


def test_rotation_by_rename_is_drained_counted_and_let_go(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    a = logs / "a.log"
    a.write_bytes(b'{"n": 1}\n')
    kinds: list[str] = []
    followed: list[int] = []
    f = Follower(str(logs / "*.log"), get_format("jsonl"), tmp_path / "state",
                 events=Events(rotated=kinds.append, followed=followed.append))  # fmt: skip
    assert records_and_lines(f) == [(b'{"n": 1}', 1)]
    with a.open("ab") as w:
        w.write(b'{"n": 2}\n')
    os.rename(a, tmp_path / "a.log.1")
    a.write_bytes(b'{"n": 3}\n')
    chunks = f.poll()
    assert sorted((c.path, c.records, c.lines) for c in chunks) == sorted([
        (str(a), [b'{"n": 3}'], [1]), (str(tmp_path / "a.log.1"), [b'{"n": 2}'], [2])])  # its name now
    assert kinds == ["rotated"]
    for c in chunks:
        f.commit(c)
    assert records_and_lines(f) == []
    assert f.followed == [str(a)]  # the renamed file, drained and committed, is let go
    assert followed[-1] == 1
    f.close()


def test_a_saved_position_is_not_applied_to_another_file_on_a_reused_inode(tmp_path: Path) -> None:
    log, state = tmp_path / "a.log", tmp_path / "state"
    log.write_bytes(b'{"old": 1}\n{"old": 2}\n')
    f = Follower(str(tmp_path / "*.log"), get_format("jsonl"), state)
    records_and_lines(f)
    f.close()
    # The same inode now holds other content (as after delete and create): its start differs.
    with log.open("r+b") as w:
        w.write(b'{"new": 1}\n{"new": 2}\n{"new": 3}\n')
    g = Follower(str(tmp_path / "*.log"), get_format("jsonl"), state)
    assert [r for r, _ in records_and_lines(g)] == [b'{"new": 1}', b'{"new": 2}', b'{"new": 3}']
    g.close()


def test_an_unreadable_file_is_a_problem_said_once_until_it_can_be_read(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b'{"n": 1}\n')
    errors: list[tuple[str, str]] = []
    f = Follower(str(tmp_path / "*.log"), get_format("jsonl"), tmp_path / "state",
                 events=Events(error=lambda kind, message: errors.append((kind, message))))  # fmt: skip
    log.chmod(0)
    try:
        if os.access(log, os.R_OK):  # root reads anything: make it a directory-like failure instead
            log.chmod(0o644)
            log.unlink()
            log.mkdir()
            (tmp_path / "a.log" / "x").write_bytes(b"")
        assert records_and_lines(f) == []
        assert records_and_lines(f) == []
        assert len(errors) == 1 and errors[0][0] == "open" and str(log) in errors[0][1]
        assert f.problems and str(log) in f.problems[0]
    finally:
        if log.is_dir():
            (log / "x").unlink()
            log.rmdir()
            log.write_bytes(b'{"n": 1}\n')
        log.chmod(0o644)
    assert records_and_lines(f) == [(b'{"n": 1}', 1)]
    assert f.problems == []
    f.close()


def test_positions_are_written_whole_and_forget_files_gone_while_stopped(tmp_path: Path) -> None:
    logs, state = tmp_path / "logs", tmp_path / "state"
    logs.mkdir()
    (logs / "a.log").write_bytes(b'{"n": 1}\n')
    (logs / "b.log").write_bytes(b'{"n": 2}\n')
    f = Follower(str(logs / "*.log"), get_format("jsonl"), state)
    records_and_lines(f)
    f.close()
    saved = json.loads((state / STATE_FILE).read_text())["files"]
    assert sorted(v["path"] for v in saved.values()) == [str(logs / "a.log"), str(logs / "b.log")]
    assert all(v["line"] == 2 and v["offset"] == 9 for v in saved.values())
    assert not list(state.glob("*.tmp"))
    (logs / "b.log").unlink()
    g = Follower(str(logs / "*.log"), get_format("jsonl"), state)
    assert records_and_lines(g) == []
    g.save()
    g.close()
    saved = json.loads((state / STATE_FILE).read_text())["files"]
    assert [v["path"] for v in saved.values()] == [str(logs / "a.log")]


RECORD = st.builds(  # csvlog records: quoted statements with newlines, commas and quotes
    lambda n, text: CSV.format(n=n).replace("select *", text.replace('"', '""')),
    st.integers(0, 9), st.text(st.sampled_from('ab ,"\n\t'), max_size=20),
)
STEP = st.tuples(st.integers(0, 200), st.sampled_from(["write", "restart", "rotate", "poll"]))


@settings(max_examples=60, deadline=None)
@given(records=st.lists(RECORD, min_size=1, max_size=12), steps=st.lists(STEP, max_size=25))
def test_whatever_the_writes_restarts_and_rotations_every_record_comes_once_with_its_line(
    records: list[str], steps: list[tuple[int, str]]
) -> None:
    """A log written in arbitrary pieces (cut inside records and lines), with restarts of
    the follower and rotations by rename between them: every record is handed out exactly
    once (all chunks are committed), whole, in order per file, with the line it starts on."""
    fmt = get_format("pgaudit")  # frames csvlog records across lines, and plain lines
    with tempfile.TemporaryDirectory() as d:
        logs = Path(d) / "logs"
        logs.mkdir()
        log, state = logs / "x.csv", Path(d) / "state"
        data = "".join(records).encode()
        expected: list[tuple[str, bytes, int]] = []  # (file, record, line) in writing order
        files: list[Path] = [log]
        got: list[tuple[str, bytes, int]] = []
        f = Follower(str(logs / "*.csv"), fmt, state, max_read=64)

        def drain() -> None:
            for _ in range(1000):
                chunks = f.poll()
                if not chunks:
                    return
                for c in chunks:
                    got.extend((c.path, r, n) for r, n in zip(c.records, c.lines, strict=True))
                    f.commit(c)

        written = 0
        log.write_bytes(b"")
        for size, op in [*steps, (len(data), "write")]:
            if op == "write" and written < len(data):
                piece = data[written : written + max(size, 1)]
                with files[-1].open("ab") as w:
                    w.write(piece)
                written += len(piece)
            elif op == "restart":
                f.close()
                f = Follower(str(logs / "*.csv"), fmt, state, max_read=64)
            elif op == "rotate" and data[:written].endswith(b"\n"):  # logrotate after a whole record
                gone = Path(d) / f"x.csv.{len(files)}"
                os.rename(files[-1], gone)
                files[-1] = gone
                files.append(log)
                log.write_bytes(b"")
            drain()
        drain()
        f.close()
        for path in files:  # what each file holds, framed as one finished stream
            content = path.read_bytes()
            recs, _ = fmt.frame(content, True)
            lines, _ = record_lines(content, recs, 1, len(content))
            expected.extend((str(path), r, n) for r, n in zip(recs, lines, strict=True))
        # (paths aside: a record read before its file was renamed names the name it had then)
        assert sorted((r, n) for _, r, n in got) == sorted((r, n) for _, r, n in expected)
