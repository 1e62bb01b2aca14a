"""Event time and durations: monitor.timeparse.

Every event's time goes through ``parse_ts``, so it is checked here against the standard
library's ``datetime`` for many instants, and every shape it must refuse is refused.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.timeparse import format_duration, format_ts, parse_duration, parse_ts

EPOCH = datetime(1970, 1, 1)
MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
T0 = 1_795_773_600_000  # 2026-11-27T10:00:00Z


def utc_ms(text: str) -> int:
    """The reference answer, from datetime (which takes the same shapes in 3.11)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


# -- RFC 3339 strings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T10:00:00Z", T0),
        ("2026-11-27T10:00:00z", T0),
        ("2026-11-27t10:00:00Z", T0),
        ("2026-11-27t10:00:00z", T0),
        ("2026-11-27 10:00:00Z", T0),
        ("2026-11-27T10:00:00+00:00", T0),
        ("2026-11-27T10:00:00-00:00", T0),
        ("2026-11-27T15:30:00+05:30", T0),
        ("2026-11-27T04:00:00-06:00", T0),
        ("2026-11-28T09:59:00+23:59", T0),
        ("2026-11-27T10:00:00.000Z", T0),
        ("2026-11-27T10:00:00.5Z", T0 + 500),
        ("2026-11-27T10:00:00.05Z", T0 + 50),
        ("2026-11-27T10:00:00.123Z", T0 + 123),
        ("2026-11-27T10:00:00.1234Z", T0 + 123),
        ("2026-11-27T10:00:00.12345Z", T0 + 123),
        ("2026-11-27T10:00:00.123456Z", T0 + 123),
        ("2026-11-27T10:00:00.1234567Z", T0 + 123),
        ("2026-11-27T10:00:00.12345678Z", T0 + 123),
        ("2026-11-27T10:00:00.123456789Z", T0 + 123),
        ("2026-11-27T10:00:00.999999999Z", T0 + 999),  # truncated, never rounded up
        ("2026-11-27T15:30:00.250+05:30", T0 + 250),
        ("2026-11-27T10:00:59Z", T0 + 59_000),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000),  # leap year
        ("2000-02-29T00:00:00Z", 951_782_400_000),  # divisible by 400: leap
        ("0001-01-01T00:00:00Z", MIN_MS),
        ("9999-12-31T23:59:59.999Z", MAX_MS),
    ],
)
def test_rfc3339_strings(text: str, expected: int) -> None:
    assert parse_ts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T10:00:00Z",
        "2026-11-27T15:30:00+05:30",
        "2026-11-27T04:00:00.123456-06:00",
        "1999-12-31T23:59:59.999+00:00",
    ],
)
def test_rfc3339_agrees_with_datetime(text: str) -> None:
    assert parse_ts(text) == utc_ms(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2016-12-31T23:59:60Z", 1_483_228_799_000),
        ("2016-12-31T23:59:60.500Z", 1_483_228_799_500),
        ("2016-12-31T23:59:60.5Z", 1_483_228_799_500),
        ("2016-12-31T17:59:60-06:00", 1_483_228_799_000),
    ],
)
def test_leap_second_reads_as_the_last_second_of_its_minute_in_every_shape(
    text: str, expected: int
) -> None:
    assert parse_ts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T10:00:00Z",  # no such day
        "2026-02-29T10:00:00Z",  # not a leap year
        "2100-02-29T10:00:00Z",  # divisible by 100: not a leap year
        "2026-04-31T10:00:00Z",
        "2026-13-01T10:00:00Z",
        "2026-00-10T10:00:00Z",
        "2026-11-00T10:00:00Z",
        "2026-11-27T25:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T10:60:00Z",
        "2026-11-27T10:00:61Z",
        "2026-11-27T10:00:61.000Z",
        "2026-11-27T1 :00:00Z",
        "2026-11-27T10:0 :00Z",
        "2026-11-27T10:00: 0Z",
        "2026-11-27T10:00",
        "2026-11-27T10:00Z",
        "2026-11-27T10:00:00",  # no offset: local time of nowhere
        "2026-11-27T10:00:00.Z",
        "2026-11-27T10:00:00.1234567890Z",  # ten fraction digits
        "2026-11-27T10:00:00.12aZ",
        "2026-11-27T10:00:00+0530",
        "2026-11-27T10:00:00+05",
        "2026-11-27T10:00:00+24:00",
        "2026-11-27T10:00:00+05:60",
        "2026-11-27T10:00:00 Z",
        "2026-11-27T10:00:00Z ",
        " 2026-11-27T10:00:00Z",
        "2026-11-27T10:00:00Z\n",
        "2026-11-27X10:00:00Z",
        "2026-11-27",
        "26-11-27T10:00:00Z",
        "+2026-11-27T10:00:00Z",
        "\uff12\uff10\uff12\uff16-11-27T10:00:00Z",  # fullwidth digits are not RFC 3339
        "2026-11-27T10:00:0\uff15Z",
        "2026-11-27T10:00:00.\uff11\uff12\uff13Z",
        "\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0667T10:00:00Z",  # Arabic-Indic digits
        "0001-01-01T00:00:00+00:01",  # before year 1 in UTC
        "9999-12-31T23:59:59-00:01",  # after year 9999 in UTC
        "",
        "garbage",
        "now",
        "+1",
        "-1",
        "1700000000",
        "1.7e9",
        "nan",
        "inf",
    ],
)
def test_invalid_strings_are_rejected(text: str) -> None:
    assert parse_ts(text) is None


# -- epoch numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1, 1000),
        (-1, -1000),
        (1_795_773_600, T0),
        (1_795_773_600.5, T0 + 500),
        (1_795_773_600.123, T0 + 123),
        (0.001, 1),
        (100_000_000_000, 100_000_000_000_000),  # exactly 1e11 is still seconds
        (1e11, 100_000_000_000_000),
        (100_000_000_001, 100_000_000_001),  # above 1e11: milliseconds
        (T0, T0),
        (float(T0), T0),
        (T0 + 0.7, T0),  # milliseconds have no fraction to keep
        (-100_000_000_001, -100_000_000_001),
        (MAX_MS, MAX_MS),
        (MIN_MS, MIN_MS),
    ],
)
def test_epoch_seconds_and_milliseconds(value: float, expected: int) -> None:
    assert parse_ts(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        None,
        math.nan,
        math.inf,
        -math.inf,
        MAX_MS + 1,
        MIN_MS - 1,
        10**30,
        -(10**30),
        1e300,
        [],
        {},
        [T0],
        {"ts": T0},
        b"2026-11-27T10:00:00Z",
        object(),
    ],
)
def test_invalid_values_are_rejected(value: object) -> None:
    assert parse_ts(value) is None


def test_booleans_are_not_epoch_numbers_whatever_python_thinks() -> None:
    assert parse_ts(1) == 1000
    assert parse_ts(True) is None


# -- against datetime, for many instants -----------------------------------------------------

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timedelta(minutes=m)
)
naive = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


def _offset_text(off: timedelta) -> str:
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hh, mm = divmod(abs(minutes), 60)
    return f"{sign}{hh:02d}:{mm:02d}"


@settings(max_examples=400, deadline=None)
@given(
    local=naive,
    offset=st.one_of(st.none(), offsets),
    digits=st.integers(min_value=0, max_value=9),
    sep=st.sampled_from(["T", "t", " "]),
    zulu=st.sampled_from(["Z", "z"]),
    extra=st.integers(min_value=0, max_value=999),
)
def test_random_instants_agree_with_datetime(
    local: datetime, offset: timedelta | None, digits: int, sep: str, zulu: str, extra: int
) -> None:
    frac6 = f"{local.microsecond:06d}" + f"{extra:03d}"
    text = f"{local.year:04d}-{local:%m-%d}{sep}{local:%H:%M:%S}"
    if digits:
        text += "." + frac6[:digits]
    text += zulu if offset is None else _offset_text(offset)
    whole = local.replace(microsecond=0) - (offset or timedelta(0))
    expected = (whole - EPOCH) // timedelta(milliseconds=1) + int(frac6[: min(digits, 3)].ljust(3, "0"))
    assert parse_ts(text) == expected
    if offset is not None:  # datetime reads the same text the same way
        aware = local.replace(tzinfo=timezone(offset))
        assert parse_ts(aware.isoformat()) == (
            aware.replace(microsecond=0) - datetime(1970, 1, 1, tzinfo=UTC)
        ) // timedelta(milliseconds=1) + local.microsecond // 1000


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=MIN_MS, max_value=MAX_MS))
def test_format_ts_round_trips_and_agrees_with_datetime(ms: int) -> None:
    text = format_ts(ms)
    assert parse_ts(text) == ms
    dt = EPOCH + timedelta(milliseconds=ms)
    assert text == f"{dt.year:04d}-{dt:%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=MIN_MS // 1000, max_value=10**11))
def test_integer_epoch_seconds_agree_with_datetime(secs: int) -> None:
    ms = parse_ts(secs)
    assert ms == secs * 1000
    assert parse_ts(format_ts(ms)) == ms


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=10**11 + 1, max_value=MAX_MS))
def test_integer_epoch_milliseconds_are_kept(ms: int) -> None:
    assert parse_ts(ms) == ms
    assert parse_ts(-ms) == (-ms if -ms >= MIN_MS else None)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_never_raises(text: str) -> None:
    result = parse_ts(text)
    assert result is None or MIN_MS <= result <= MAX_MS


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (T0 + 5, "2026-11-27T10:00:00.005Z"),
        (MIN_MS, "0001-01-01T00:00:00.000Z"),
        (MAX_MS, "9999-12-31T23:59:59.999Z"),
        (-59_011_459_200_000, "0100-01-01T00:00:00.000Z"),
    ],
)
def test_format_ts(ms: int, text: str) -> None:
    assert format_ts(ms) == text
    assert parse_ts(text) == ms


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("1s", 1000),
        ("30s", 30_000),
        ("10m", 600_000),
        ("1h", 3_600_000),
        ("2d", 172_800_000),
        ("0s", 0),
        ("0ms", 0),
        (" 10m ", 600_000),
        ("10 m", 600_000),
        ("90m", 5_400_000),
        (0, 0),
    ],
)
def test_durations(text: str | int, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "value",
    [
        "10",  # no unit: seconds or minutes?
        "0",
        5,
        600,
        "1h30m",  # one number, one unit
        "-5m",
        "+5m",
        "1.5h",
        "10M",
        "10min",
        "10 minutes",
        "1w",
        "m",
        "",
        " ",
        "\uff110m",  # fullwidth digit
        True,
        False,
        None,
        1.5,
        [],
        {"m": 10},
    ],
)
def test_bad_durations_raise_value_error_with_a_message(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (1, "1ms"),
        (1500, "1500ms"),
        (1000, "1s"),
        (90_000, "90s"),
        (600_000, "10m"),
        (5_400_000, "90m"),
        (3_600_000, "1h"),
        (86_400_000, "1d"),
        (90_000_000, "25h"),
    ],
)
def test_format_duration_is_the_shortest_exact_spelling(ms: int, text: str) -> None:
    assert format_duration(ms) == text
    assert parse_duration(text) == ms


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_format_duration_round_trips(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms


def test_format_ts_is_total() -> None:
    # A window start before year 1 (a window of millennia) raised while building an alert.
    assert format_ts(-(10**16)) == "0001-01-01T00:00:00.000Z"
    assert format_ts(10**16) == "9999-12-31T23:59:59.999Z"
    assert format_ts(-62_135_596_800_000) == "0001-01-01T00:00:00.000Z"
    assert format_ts(221_845_392_000_000) == "9000-01-01T00:00:00.000Z"
