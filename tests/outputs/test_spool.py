"""The spool: nothing flushed is lost or delivered twice, whatever kills the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.outputs.spool import Spool, SpoolError, SpoolFull


def drain(spool: Spool) -> list[bytes]:
    """Deliver everything pending, in batches, acknowledging each batch."""
    out: list[bytes] = []
    while batch := spool.peek(7):
        out.extend(e.data for e in batch)
        spool.ack(batch[-1])
    return out


def records(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"n": i, "pad": "x" * (i % 13)}) for i in range(start, start + n)]


def test_flushed_entries_survive_a_reopen_in_order(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=200) as s:
        for r in records(30):
            s.append(r)
        s.flush()
        assert s.depth == 30
    with Spool(tmp_path, segment_bytes=200) as s:
        assert s.depth == 30
        assert drain(s) == records(30)
        assert s.depth == 0 and s.bytes == 0


def test_acknowledged_entries_are_not_delivered_again_and_their_segments_go(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=100) as s:
        for r in records(40):
            s.append(r)
        s.flush()
        many = len(list(tmp_path.glob("*.seg")))
        first = s.peek(25)
        s.ack(first[-1])
        s.ack(first[3])  # an older ack changes nothing
        assert s.depth == 15
        assert len(list(tmp_path.glob("*.seg"))) < many
    with Spool(tmp_path, segment_bytes=100) as s:
        assert drain(s) == records(15, start=25)
    with Spool(tmp_path, segment_bytes=100) as s:
        assert s.depth == 0
        assert len(list(tmp_path.glob("*.seg"))) == 1  # only the one being appended to


def test_a_torn_tail_is_cut_off_and_appending_goes_on(tmp_path: Path) -> None:
    with Spool(tmp_path) as s:
        for r in records(5):
            s.append(r)
    seg = next(tmp_path.glob("*.seg"))
    whole = seg.read_bytes()
    seg.write_bytes(whole[:-3])  # the last frame half written, as a SIGKILL leaves it
    with Spool(tmp_path) as s:
        assert s.torn_bytes > 0
        assert [e.data for e in s.peek()] == records(4)
        s.append(b"after")
        s.flush()
    with Spool(tmp_path) as s:
        assert s.torn_bytes == 0
        assert drain(s) == [*records(4), b"after"]


@pytest.mark.parametrize(
    "tail", [b"\x00" * 64, b"\xe5\x70garbage", b"\xe5\x70\xff\xff\xff\xff" + b"\x00" * 20]
)
def test_garbage_after_the_last_frame_is_dropped_never_a_crash(tmp_path: Path, tail: bytes) -> None:
    with Spool(tmp_path) as s:
        s.append(b"kept")
    seg = next(tmp_path.glob("*.seg"))
    with seg.open("ab") as f:
        f.write(tail)
    with Spool(tmp_path) as s:
        assert s.torn_bytes == len(tail)
        assert drain(s) == [b"kept"]


def test_damage_in_an_older_segment_loses_only_the_rest_of_that_segment(tmp_path: Path) -> None:
    with Spool(tmp_path, segment_bytes=60) as s:
        for r in records(12):
            s.append(r)
        s.flush()
    segs = sorted(tmp_path.glob("*.seg"))
    assert len(segs) >= 3
    damaged = bytearray(segs[0].read_bytes())
    damaged[-1] ^= 0xFF  # the CRC of its last frame no longer matches
    segs[0].write_bytes(bytes(damaged))
    with Spool(tmp_path, segment_bytes=60) as s:
        got = drain(s)
    assert s.torn_bytes > 0
    assert got[-1] == records(12)[-1]
    assert got == [r for r in records(12) if r in got]  # in order, nothing invented
    assert len(got) == 11


def test_full_refuses_new_entries_until_delivery_makes_room(tmp_path: Path) -> None:
    with Spool(tmp_path, max_bytes=100) as s:
        while not s.full:
            s.append(b"y" * 30)
        assert s.bytes >= 100 and s.bytes < 100 + 30 + 32  # overshoot by at most one entry
        depth = s.depth
        with pytest.raises(SpoolFull, match="full"):
            s.append(b"z")
        assert s.depth == depth  # nothing written
        s.ack(s.peek(1)[0])
        assert not s.full
        s.append(b"z")
        assert s.full


def test_parked_entries_are_kept_with_the_answer_and_never_delivered_again(tmp_path: Path) -> None:
    with Spool(tmp_path) as s:
        s.append(b'{"id": "a1"}')
        s.append(b"\xff\xfe")
        s.append(b'{"id": "a3"}')
        s.flush()
        a1, raw, _ = s.peek()
        s.park(a1, "400 Bad Request: bad label name")
        s.park(raw, "422")
        assert s.parked == 2
    with Spool(tmp_path) as s:
        assert s.parked == 2
        assert drain(s) == [b'{"id": "a3"}']
    lines = [
        orjson.loads(x) for x in (tmp_path / "parked" / "parked.jsonl").read_bytes().splitlines()
    ]
    assert lines[0]["answer"] == "400 Bad Request: bad label name"
    assert lines[0]["record"] == '{"id": "a1"}'
    assert lines[1]["record_base64"] == "//4="
    assert {"parked_at", "spooled_at"} <= lines[0].keys()


def test_depth_bytes_and_age_of_the_oldest_undelivered_entry(tmp_path: Path) -> None:
    now = [1_000.0]
    with Spool(tmp_path, clock=lambda: now[0]) as s:
        assert s.oldest_age() == 0.0
        s.append(b"a")
        now[0] += 5
        s.append(b"b")
        now[0] += 2.5
        assert s.depth == 2
        assert s.oldest_age() == pytest.approx(7.5)
        s.ack(s.peek(1)[0])
        assert s.oldest_age() == pytest.approx(2.5)
        assert s.bytes == s.peek()[0].size


def test_closed_spool_refuses_use_and_closes_twice(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    s.close()
    s.close()
    with pytest.raises(SpoolError, match="closed"):
        s.append(b"x")


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match="file"):
        Spool(tmp_path / "file" / "spool")


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from monitor.outputs.spool import Spool

    s = Spool(Path(sys.argv[1]), segment_bytes=64 * 1024)
    n = 0
    while True:
        s.append(b"%d:" % n + b"p" * (n % 5000))
        if n % 3 == 0:
            s.flush()
            print(n, flush=True)  # everything up to n is durable
        if n % 50 == 49:
            s.ack(s.peek(20)[-1])
            print("ack", flush=True)
        n += 1
    """
)


def test_sigkill_while_writing_loses_nothing_flushed(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(spool_dir)], stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.stdout is not None
    flushed = -1
    acked = 0
    for line in proc.stdout:
        if line.strip() == "ack":
            acked += 20
        else:
            flushed = int(line)
        if flushed >= 1500:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with Spool(spool_dir, segment_bytes=64 * 1024) as s:
        got = [int(d.split(b":")[0]) for d in drain(s)]
    # Acknowledged ones are gone (the writer may have acknowledged more after the last
    # line read), then every number follows, in order, nothing twice; everything flushed
    # is there (it may have written more before it died).
    assert got[0] >= acked and got[0] % 20 == 0
    assert got == list(range(got[0], got[0] + len(got)))
    assert got[-1] >= flushed


Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 300)),
        st.tuples(st.just("flush"), st.just(0)),
        st.tuples(st.just("ack"), st.integers(1, 6)),
        st.tuples(st.just("reopen"), st.just(0)),
        st.tuples(st.just("crash"), st.integers(0, 10_000)),
    ),
    max_size=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops)
def test_any_interleaving_delivers_flushed_entries_once_in_order(tmp_path_factory: pytest.TempPathFactory,
                                                                 ops: list[Op]) -> None:  # fmt: skip
    """Model: ``pending`` is what must still come, ``maybe`` what was appended since the
    last flush (a crash may lose a suffix of it, never a flushed entry)."""
    d = tmp_path_factory.mktemp("spool")
    s = Spool(d, segment_bytes=256)
    pending: list[bytes] = []  # durable, undelivered
    maybe: list[bytes] = []  # appended after the last flush
    delivered: list[bytes] = []
    lost: list[int] = []
    n = 0
    for op, arg in ops:
        if op == "append":
            r = b"%d:" % n + b"." * arg
            n += 1
            s.append(r)
            maybe.append(r)
        elif op == "flush":
            s.flush()
            pending += maybe
            maybe = []
        elif op == "ack":
            batch = s.peek(arg)
            if batch:
                delivered += [e.data for e in batch]
                s.ack(batch[-1])  # ack flushes first: everything delivered is durable
                pending += maybe
                maybe = []
                del pending[: len(batch)]
        elif op == "reopen":
            s.close()
            s = Spool(d, segment_bytes=256)
            pending += maybe
            maybe = []
        else:  # crash: the unflushed tail of the active segment is partly lost
            unflushed = s.peek(10_000)[len(pending) :]
            last = max((e.segment for e in unflushed), default=None)
            s._closed = True  # abandon the handle as a killed process would
            if s._fd is not None:
                os.close(s._fd)
            if last is not None:
                seg = d / f"{last:016d}.seg"
                cut_from = min(e.offset for e in unflushed if e.segment == last)
                size = seg.stat().st_size
                os.truncate(seg, cut_from + arg % (size - cut_from + 1))
            s = Spool(d, segment_bytes=256)
            got = [e.data for e in s.peek(10_000)]
            assert got[: len(pending)] == pending  # nothing durable lost
            survivors = got[len(pending) :]
            assert survivors == maybe[: len(survivors)]  # a prefix of the rest, in order
            pending += survivors
            lost += [int(x.split(b":")[0]) for x in maybe[len(survivors) :]]
            maybe = []
        current = [e.data for e in s.peek(10_000)]
        assert current == pending + maybe
    s.close()
    s = Spool(d, segment_bytes=256)
    rest = drain(s)
    s.close()
    assert rest == pending + maybe
    delivered += rest
    # Each entry delivered exactly once, in append order, unless a crash lost it unflushed.
    nums = [int(x.split(b":")[0]) for x in delivered]
    assert nums == sorted(set(nums))
    assert sorted(nums + lost) == list(range(n))
