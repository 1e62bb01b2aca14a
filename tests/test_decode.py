"""Decoding raw lines into (event, time): every kind of bad input is named, never raised;
a far-future event never blinds the stream; a quiet gap in a recording is not "future"."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.decode import REASONS, Decoder, sample

T0 = 1_795_773_600_000  # 2026-11-27T10:00:00Z
SEC, MIN, YEAR = 1000, 60_000, 365 * 86_400_000
SKEW = 5 * MIN

DecoderFactory = Callable[..., Decoder]


@pytest.fixture
def make_decoder() -> DecoderFactory:
    def make(**options: Any) -> Decoder:
        return Decoder(**options)

    return make


def line(ts: Any, **fields: Any) -> bytes:
    return orjson.dumps({"ts": ts, **fields})


def times(good: list[tuple[dict[str, Any], int]]) -> list[int]:
    return [ts for _, ts in good]


# -- bad input, by reason -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "invalid_json"),
        (b"not json", "invalid_json"),
        (b"{'ts': 1}", "invalid_json"),
        (b'{"ts": 1,}', "invalid_json"),
        (b'{"ts": "2026-11-27T10:00:00Z"} trailing', "invalid_json"),
        (b'{"ts": NaN}', "invalid_json"),
        (b'{"ts": 1e400}', "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b'{"ts": "\xff"}', "invalid_json"),  # not UTF-8
        ('{"ts": "\ud800"}', "invalid_json"),  # a lone surrogate
        (b"[" * 5000, "invalid_json"),
        (b"[]", "not_an_object"),
        (b'[{"ts": 1}]', "not_an_object"),
        (b'"2026-11-27T10:00:00Z"', "not_an_object"),
        (b"1795773600", "not_an_object"),
        (b"1.5", "not_an_object"),
        (b"null", "not_an_object"),
        (b"true", "not_an_object"),
        (b"{}", "missing_time"),
        (b'{"time": "2026-11-27T10:00:00Z"}', "missing_time"),
        (b'{"ts": null}', "missing_time"),
        (b'{"TS": 1795773600}', "missing_time"),
        (b'{"ts": "yesterday"}', "bad_time"),
        (b'{"ts": ""}', "bad_time"),
        (b'{"ts": "2026-02-30T10:00:00Z"}', "bad_time"),
        (b'{"ts": "2026-11-27T25:00:00Z"}', "bad_time"),
        (b'{"ts": "2026-11-27T1 :00:00Z"}', "bad_time"),
        (b'{"ts": "2026-11-27T10:00:00"}', "bad_time"),
        (b'{"ts": "1795773600"}', "bad_time"),
        (b'{"ts": true}', "bad_time"),
        (b'{"ts": false}', "bad_time"),
        (b'{"ts": {}}', "bad_time"),
        (b'{"ts": [1795773600]}', "bad_time"),
        (b'{"ts": 1e300}', "bad_time"),
        (b'{"ts": 100000000000000000000}', "bad_time"),
    ],
)
def test_bad_input_is_named_not_raised(make_decoder: DecoderFactory, raw: bytes | str, reason: str) -> None:
    decoder = make_decoder()
    good, bad = decoder.decode([line(T0), raw, line(T0 + SEC)])
    assert reason in REASONS
    assert bad == [(1, reason)]
    assert times(good) == [T0, T0 + SEC]
    assert decoder.newest == T0 + SEC


@pytest.mark.parametrize("raw", [b"", b"\n", b"   \r\n", b"\t", ""])
def test_blank_lines_are_neither_events_nor_bad_input(make_decoder: DecoderFactory, raw: bytes | str) -> None:
    good, bad = make_decoder().decode([raw, line(T0), raw])
    assert (times(good), bad) == ([T0], [])


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-27T10:00:00Z", T0),
        ("2026-11-27T10:00:00.250Z", T0 + 250),
        ("2026-11-27T04:00:00-06:00", T0),
        ("2026-11-27 10:00:00z", T0),
        (1_795_773_600, T0),
        (1_795_773_600.25, T0 + 250),
        (T0, T0),
    ],
)
def test_good_times(make_decoder: DecoderFactory, ts: Any, expected: int) -> None:
    good, bad = make_decoder().decode([line(ts, id="e1")])
    assert good == [({"ts": ts, "id": "e1"}, expected)]
    assert bad == []


def test_positions_name_the_input_and_good_events_keep_their_order(make_decoder: DecoderFactory) -> None:
    raws = [b"{", line(T0, id=1), b"[]", b"", line(T0 + 2 * SEC, id=2), b"{}", line(T0 + SEC, id=3), b'{"ts": "x"}']
    good, bad = make_decoder().decode(raws)
    assert [e["id"] for e, _ in good] == [1, 2, 3]
    assert bad == [(0, "invalid_json"), (2, "not_an_object"), (5, "missing_time"), (7, "bad_time")]


def test_str_and_bytes_and_buffers_are_all_input(make_decoder: DecoderFactory) -> None:
    raw = line(T0)
    good, bad = make_decoder().decode([raw, raw.decode(), bytearray(raw), memoryview(raw)])
    assert (times(good), bad) == ([T0] * 4, [])


# -- the time field ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        ({"meta": {"at": "2026-11-27T10:00:00Z"}}, T0),
        ({"meta": {"at": T0}}, T0),
        ({"meta": {"at": None}}, "missing_time"),
        ({"meta": {}}, "missing_time"),
        ({"meta": "2026-11-27T10:00:00Z"}, "missing_time"),
        ({"meta": [{"at": T0}]}, "missing_time"),
        ({"meta.at": T0}, "missing_time"),  # a dotted key is not a path
        ({"ts": T0}, "missing_time"),
        ({"meta": {"at": "soon"}}, "bad_time"),
        ({"meta": {"at": True}}, "bad_time"),
    ],
)
def test_time_field_is_a_dotted_path(make_decoder: DecoderFactory, event: dict[str, Any], outcome: Any) -> None:
    good, bad = make_decoder(time_field="meta.at").decode([orjson.dumps(event)])
    if isinstance(outcome, int):
        assert (good, bad) == ([(event, outcome)], [])
    else:
        assert (good, bad) == ([], [(0, outcome)])


@pytest.mark.parametrize("field", ["@timestamp", "eventTime", "a.b.c.d"])
def test_any_field_name_can_hold_the_time(make_decoder: DecoderFactory, field: str) -> None:
    event: dict[str, Any] = {}
    node = event
    *parents, leaf = field.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = "2026-11-27T10:00:00Z"
    good, bad = make_decoder(time_field=field).decode([orjson.dumps(event), line(T0)])
    assert times(good) == [T0]
    assert bad == [(1, "missing_time")]


# -- the future ---------------------------------------------------------------------------------


def test_skew_is_measured_from_the_newest_event_so_far(make_decoder: DecoderFactory) -> None:
    decoder = make_decoder(max_future_skew_ms=SKEW)
    good, bad = decoder.decode(
        [line(T0), line(T0 + SKEW), line(T0 + 2 * SKEW), line(T0 - YEAR)]  # each within 5m of the newest
    )
    assert times(good) == [T0, T0 + SKEW, T0 + 2 * SKEW, T0 - YEAR]  # the past is never "future"
    assert bad == []
    assert decoder.newest == T0 + 2 * SKEW


@pytest.mark.parametrize("ahead", [SKEW + 1, 10 * MIN, 1 * YEAR, 80 * YEAR])
def test_one_far_future_event_is_rejected_and_does_not_blind_later_events(
    make_decoder: DecoderFactory, ahead: int
) -> None:
    decoder = make_decoder(max_future_skew_ms=SKEW)
    raws = [line(T0), line(T0 + ahead, id="far"), line(T0 + SEC), line(T0 + 2 * SEC), line(T0 + 10 * SEC)]
    good, bad = decoder.decode(raws)
    assert times(good) == [T0, T0 + SEC, T0 + 2 * SEC, T0 + 10 * SEC]
    assert bad == [(1, "future_time")]
    assert decoder.newest == T0 + 10 * SEC


def test_a_far_future_event_is_judged_by_the_next_batch_too(make_decoder: DecoderFactory) -> None:
    decoder = make_decoder(max_future_skew_ms=SKEW)
    far = line(T0 + YEAR, id="far")
    good, bad = decoder.decode([line(T0), far])
    assert (times(good), bad) == ([T0], [])  # held: nothing after it yet
    good, bad = decoder.decode([b"{", line(T0 + SEC)])
    assert times(good) == [T0 + SEC]
    assert Counter(bad) == Counter([(0, "invalid_json"), (-1, "future_time")])
    assert decoder.rejected_held == [far]
    assert decoder.finish() == []


def test_far_future_events_that_disagree_are_all_rejected(make_decoder: DecoderFactory) -> None:
    decoder = make_decoder(max_future_skew_ms=SKEW)
    raws = [line(T0), line(T0 + YEAR), line(T0 + 2 * YEAR), line(T0 + SEC)]
    good, bad = decoder.decode(raws)
    assert times(good) == [T0, T0 + SEC]
    assert bad == [(1, "future_time"), (2, "future_time")]


def test_a_quiet_gap_in_a_recording_is_not_the_future(make_decoder: DecoderFactory) -> None:
    decoder = make_decoder(max_future_skew_ms=SKEW)
    raws = [line(T0), line(T0 + 10 * MIN), line(T0 + 10 * MIN + SEC), line(T0 + 3 * 60 * MIN), line(T0 + 3 * 60 * MIN)]
    good, bad = decoder.decode(raws)
    assert times(good) == [T0, T0 + 10 * MIN, T0 + 10 * MIN + SEC, T0 + 180 * MIN, T0 + 180 * MIN]
    assert bad == []
    assert decoder.newest == T0 + 180 * MIN


def test_a_gap_across_batches(make_decoder: DecoderFactory) -> None:
    decoder = make_decoder(max_future_skew_ms=SKEW)
    good, bad = decoder.decode([line(T0), line(T0 + 10 * MIN)])
    assert (times(good), bad) == ([T0], [])
    good, bad = decoder.decode([line(T0 + 10 * MIN + SEC)])
    assert (times(good), bad) == ([T0 + 10 * MIN, T0 + 10 * MIN + SEC], [])


def test_the_last_event_far_ahead_is_handed_back_at_the_end(make_decoder: DecoderFactory) -> None:
    decoder = make_decoder(max_future_skew_ms=SKEW)
    last = line(T0 + YEAR)
    good, bad = decoder.decode([line(T0), last])
    assert (times(good), bad) == ([T0], [])
    assert decoder.finish() == [last]
    assert decoder.finish() == []


@pytest.mark.parametrize("skew", [0, -1])
def test_skew_zero_turns_the_check_off(make_decoder: DecoderFactory, skew: int) -> None:
    decoder = make_decoder(max_future_skew_ms=skew)
    good, bad = decoder.decode([line(T0), line(T0 + 80 * YEAR), line(T0 + SEC)])
    assert times(good) == [T0, T0 + 80 * YEAR, T0 + SEC]
    assert bad == []
    assert decoder.finish() == []


def test_reference_mode_measures_from_the_given_clock(make_decoder: DecoderFactory) -> None:
    decoder = make_decoder(max_future_skew_ms=SKEW)
    now = T0
    raws = [
        line(T0 - YEAR),  # old: fine
        line(T0 + SKEW),  # exactly the skew ahead of the clock: fine
        line(T0 + SKEW + 1),  # beyond: rejected at once, not held
        line(T0 + SKEW + 2),  # agreeing with it changes nothing: the clock is the judge
        line(T0 + SEC),
    ]
    good, bad = decoder.decode(raws, reference_ms=now)
    assert times(good) == [T0 - YEAR, T0 + SKEW, T0 + SEC]
    assert bad == [(2, "future_time"), (3, "future_time")]
    assert decoder.finish() == []
    # the newest event does not move the reference: the next clock reading does
    good, bad = decoder.decode([line(T0 + 2 * SKEW)], reference_ms=now + SKEW)
    assert (times(good), bad) == ([T0 + 2 * SKEW], [])


def test_reference_mode_with_skew_zero_accepts_anything(make_decoder: DecoderFactory) -> None:
    good, bad = make_decoder(max_future_skew_ms=0).decode([line(T0 + YEAR)], reference_ms=T0)
    assert (times(good), bad) == ([T0 + YEAR], [])


# -- properties -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=20))
def test_arbitrary_bytes_never_raise(raws: list[bytes]) -> None:
    decoder = Decoder()
    good, bad = decoder.decode(raws)
    held = decoder.finish()
    blank = sum(1 for r in raws if not r.strip())
    assert len(good) + len(bad) + len(held) + blank == len(raws)
    assert all(reason in REASONS for _, reason in bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)
times_ = st.one_of(
    json_values,
    st.integers(min_value=T0 - YEAR, max_value=T0 + YEAR),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27T10:00:00.123+05:30", "2026-13-01T00:00:00Z"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(times_, max_size=15), st.lists(json_values, max_size=5))
def test_arbitrary_objects_and_times_never_raise(ts_values: list[Any], others: list[Any]) -> None:
    raws = [orjson.dumps({"ts": t}, option=orjson.OPT_NON_STR_KEYS) for t in ts_values if _dumpable(t)]
    raws += [orjson.dumps(v) for v in others if _dumpable(v)]
    decoder = Decoder()
    good, bad = decoder.decode(raws)
    assert len(good) + len(bad) + len(decoder.finish()) == len(raws)


def _dumpable(v: Any) -> bool:
    try:
        orjson.dumps(v)
    except orjson.JSONEncodeError:
        return False
    return True


stream_item = st.one_of(
    st.integers(min_value=-3 * MIN, max_value=20 * MIN),  # step from the previous event
    st.sampled_from(["far", "junk", "blank", "gap"]),
)


def _stream(items: list[Any]) -> list[bytes]:
    t, raws = T0, []
    for k, item in enumerate(items):
        if item == "far":
            raws.append(line(T0 + YEAR + k, id=k))
        elif item == "junk":
            raws.append(b"{nope")
        elif item == "blank":
            raws.append(b"\n")
        elif item == "gap":
            t += 2 * 60 * MIN
            raws.append(line(t, id=k))
        else:
            t += item
            raws.append(line(t, id=k))
    return raws


def _decode_all(raws: list[bytes], cuts: list[int]) -> tuple[list[Any], Counter[tuple[bytes, str]]]:
    decoder = Decoder(max_future_skew_ms=SKEW)
    good_all: list[Any] = []
    bad_all: Counter[tuple[bytes, str]] = Counter()
    bounds = [0, *sorted(set(cuts)), len(raws)]
    for lo, hi in itertools.pairwise(bounds):
        chunk = raws[lo:hi]
        good, bad = decoder.decode(chunk)
        good_all += [(e.get("id"), ts) for e, ts in good]
        held = iter(decoder.rejected_held)
        for i, reason in bad:
            bad_all[(next(held) if i < 0 else chunk[i], reason)] += 1
    for raw in decoder.finish():
        bad_all[(raw, "future_time")] += 1
    return good_all, bad_all


@settings(max_examples=200, deadline=None)
@given(st.lists(stream_item, max_size=40), st.lists(st.integers(min_value=0, max_value=40), max_size=6))
def test_batch_boundaries_never_change_the_outcome(items: list[Any], cuts: list[int]) -> None:
    raws = _stream(items)
    cuts = [c for c in cuts if c <= len(raws)]
    assert _decode_all(raws, cuts) == _decode_all(raws, [])


# -- samples for log lines ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"ts": 1}\n', '{"ts": 1}'),
        (b"\xff\xfebad\r\n", "\ufffd\ufffdbad"),
        ("text\n", "text"),
        (b"x" * 250, "x" * 200 + "... (250 chars)"),
    ],
)
def test_sample_is_printable_and_truncated(raw: bytes | str, expected: str) -> None:
    assert sample(raw) == expected


# -- the accepted time range (README "Limits") -----------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        "0001-01-01T00:00:00Z",  # crashed the schedule check and the window formatting
        -62_135_596_800,  # the same instant as a negative epoch
        -1,
        "1969-12-31T23:59:59.999Z",
        "1970-01-01T00:30:00+01:00",
        "9000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999Z",  # overflowed to year 10000 with max_future_skew 0s
        221_845_392_000_000,
    ],
)
@pytest.mark.parametrize("skew", [0, SKEW])
def test_times_outside_the_accepted_range_have_their_own_reason(
    make_decoder: DecoderFactory, ts: Any, skew: int
) -> None:
    decoder = make_decoder(max_future_skew_ms=skew)
    good, bad = decoder.decode([line(ts), line(T0)])
    assert "time_out_of_range" in REASONS
    assert (bad, times(good)) == ([(0, "time_out_of_range")], [T0])


@pytest.mark.parametrize(
    ("ts", "expected"),
    [("1970-01-01T00:00:00Z", 0), (0, 0), ("8999-12-31T23:59:59.999Z", 221_845_391_999_999)],
)
def test_the_edges_of_the_accepted_range(make_decoder: DecoderFactory, ts: Any, expected: int) -> None:
    good, bad = make_decoder(max_future_skew_ms=0).decode([line(ts)])
    assert (times(good), bad) == ([expected], [])
