"""The internal topic's records and marks: each forwarded event counted once, however
often and by however many instances it was forwarded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.engine.repartition import Split
from monitor.event import PROVENANCE
from monitor.sources.repartition import (
    CHUNK_EVENTS,
    admit,
    chunks,
    count,
    decode,
    partitioner,
    records,
    stamp,
)
from tests.engine.test_properties import SETTINGS
from tests.support.engine import ruleset


def test_records_round_trip_in_chunks_per_partition_and_a_foreign_one_says_what_is_wrong() -> None:
    sent = [(p, (f"events/{p}", (o, 0), 1_795_737_600_000 + o, {"cust": o, "@route": "cust"}))
            for o in range(2 * CHUNK_EVENTS + 3) for p in (0, 1)]  # fmt: skip
    records = chunks(sent, 2)
    assert [(p, n) for p, _, n in records] == [(0, CHUNK_EVENTS), (1, CHUNK_EVENTS)] * 2 + [(0, 3), (1, 3)]
    for p in (0, 1):
        assert [e for q, value, _ in records if q == p for e in decode(value)[1]] == [f for q, f in sent if q == p]
    assert {decode(value)[0] for _, value, _ in records} == {2}, "the partitions keys were placed over"
    big = [(0, ("events/0", (o, 0), 1, {"text": "x" * 100_000})) for o in range(5)]
    assert [n for _, _, n in chunks(big, 1)] == [2, 2, 1], "about CHUNK_BYTES to a record"
    for bad, said in [(b"", "not a record"), (b'{"v": 1}', "not a record"), (b'{"v":1,"partitions":1,"events":[[1]]}', "not a record"),
                      (b'{"v":2,"partitions":1,"events":[]}', "record version 2"),
                      (b'{"v":1,"partitions":1,"events":[["t/0","1",0,1,{}]]}', "wrong type"), (None, "not a record")]:  # fmt: skip
        with pytest.raises(ValueError, match=said):
            decode(bad)


def test_marks_are_per_source_partition_and_route_and_restore_from_json() -> None:
    marks = {"events/0": {"cust": [10, 1]}}  # as a checkpoint's header gives them back
    assert not admit(marks, "events/0", "cust", (10, 1))
    assert admit(marks, "events/0", "cust", (10, 2)) and marks["events/0"]["cust"] == (10, 2)
    assert admit(marks, "events/0", "", (10, 0)), "another route: its own marks (an event may go by both)"
    assert admit(marks, "events/1", "cust", (0, 0)), "each source partition has its own marks"


@SETTINGS
@given(n=st.integers(1, 40), first_run=st.integers(0, 40), restart=st.integers(0, 40), merge=st.randoms())
def test_two_runs_forwarding_one_source_partition_interleaved_count_each_record_once(
    n: int, first_run: int, restart: int, merge: st.SearchStrategy[int]
) -> None:
    """An instance that lost the partition without knowing (it still forwards up to
    ``first_run``) and its successor (from its last checkpoint, ``restart``: everything
    before it was acknowledged before the checkpoint was written) interleave two runs of
    one increasing sequence in any way: every record is admitted once."""
    marks = [(o, k) for o in range(n) for k in range(2) if (o + k) % 3]  # some records hold two events
    old = marks[: min(first_run, len(marks))]
    cut = min(restart, len(old))
    runs = [old[cut:], marks[cut:]]
    admitted = []
    state: dict[str, object] = {}
    for m in old[:cut]:
        assert admit(state, "events/0", "cust", m)  # type: ignore[arg-type]
        admitted.append(m)
    while any(runs):
        run = merge.choice([r for r in runs if r])  # type: ignore[attr-defined]
        m = run.pop(0)
        if admit(state, "events/0", "cust", m):  # type: ignore[arg-type]
            admitted.append(m)
    assert admitted == marks


def test_keys_go_where_the_java_client_would_put_them() -> None:
    place = partitioner(6)
    assert {place(b'["cust",7]') for _ in range(3)} == {place(b'["cust",7]')}
    assert len({place(f'["cust",{i}]'.encode()) for i in range(100)}) == 6


def test_events_of_one_record_are_stamped_by_their_place_and_counted_once() -> None:
    split = Split.of(ruleset("rules:\n  - {id: shop, severity: high, window: 1m, threshold: {gte: 9}}\n"), "actor.id")
    two = [({"id": f"e{n}", PROVENANCE: "t/0@7"}, 1_000 + n) for n in range(2)]  # one record, two events
    offsets = {"t/0@7": 7, "t/0@8": 8}
    stamped = stamp(split, "t/0", offsets, [*two, ({"id": "e2", PROVENANCE: "t/0@8"}, 1_002)], lambda _: 0)
    assert [f[1] for _, _, f in stamped] == [(7, 0), (7, 1), (8, 0)]
    [(_, value, _)] = records([stamped], 1)
    marks: dict[str, object] = {}
    assert count(value, marks, 1)[1:] == (0, 0)
    events, duplicates, misplaced = count(value, marks, 2)
    assert (events, duplicates, misplaced) == ([], 3, 1), "read again: dropped; placed over 1 partition, not 2"
