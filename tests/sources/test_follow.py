"""The file follower against real files being written, rotated, truncated and replaced."""

from __future__ import annotations

import os
from pathlib import Path

from monitor.inputs import get_format
from monitor.sources.follow import Follower

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
