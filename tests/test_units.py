"""Values in the rule's unit, and the plain "over the limit" sentence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.units import default_unit, format_value, limit_sentence


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1_200_000_000, "bytes", "1.2 GB"),
        (999, "bytes", "999 B"),
        (1000, "bytes", "1 kB"),
        (1_500, "bytes", "1.5 kB"),
        (125_000_000, "bytes", "125 MB"),
        (999_960, "bytes", "1 MB"),
        (3000, "customers", "3,000 customers"),
        (1, "customers", "1 customer"),
        (1, "rows", "1 row"),
        (2, "rows", "2 rows"),
        (1.0, "events", "1 event"),
        (50_001.0, "rows", "50,001 rows"),
        (2.5, "rows", "2.5 rows"),
        (0, "events", "0 events"),
    ],
)
def test_format_value(value: float, unit: str, expected: str) -> None:
    assert format_value(value, unit) == expected


@pytest.mark.parametrize(
    ("aggregate", "field", "unit"),
    [
        ("sum", "bytes", "bytes"),
        ("sum", "response.bytes", "bytes"),
        ("sum", "rows", "rows"),
        ("max", "rows", "rows"),
        ("count", None, "events"),
        ("sum", "amount", "events"),
        ("distinct", "customer.id", "customers"),
        ("distinct", "ip", "events"),
    ],
)
def test_default_unit(aggregate: str, field: str | None, unit: str) -> None:
    assert default_unit(aggregate, field) == unit


def test_limit_sentence() -> None:
    assert limit_sentence(3000, {"gt": 1000}, "customers", "10m") == (
        "3,000 customers in 10m, over the limit of 1,000"
    )
    assert limit_sentence(1_200_000_000, {"gte": 1e9}, "bytes", "1h") == (
        "1.2 GB in 1h, at or over the limit of 1 GB"
    )
    assert limit_sentence(2, {"lt": 5}, "events") == "2 events, under the minimum of 5"


@given(st.integers(0, 10**18))
def test_bytes_always_three_significant_figures_or_fewer(n: int) -> None:
    number, prefix = format_value(n, "bytes").split(" ")
    assert prefix in ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    assert prefix == "B" or float(number) < 1000
