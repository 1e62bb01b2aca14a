"""Values in the unit a rule counts, so a page reads "3,000 customers", not "3000.0".

A rule may say ``unit: rows | bytes | customers | events``; without it the unit follows
from the aggregate (:func:`default_unit`). Bytes use decimal prefixes (1 kB = 1000 B), as
disks and network dashboards do; counts get thousands separators and a plural that
agrees (``1 row``, ``2 rows``). :func:`limit_sentence` says plainly how a value compares
with the rule's threshold, for every human-facing output; :func:`plain_summary` is the
summary of an alert whose rule writes none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

import orjson

from monitor.text import truncate

Unit = Literal["rows", "bytes", "customers", "events"]
UNITS: tuple[str, ...] = get_args(Unit)

_SINGULAR = {"rows": "row", "customers": "customer", "events": "event"}
_BYTE_PREFIXES = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
_COMPARE = {
    "gt": "over the limit of",
    "gte": "at or over the limit of",
    "lt": "under the minimum of",
    "lte": "at or under the minimum of",
    "eq": "equal to the threshold of",
}


def default_unit(aggregate: str, field: str | None) -> Unit:
    """The unit a rule means when it does not say: what its aggregate adds up.

    A ``sum`` (or ``max``) of a field named ``bytes`` counts bytes, of ``rows`` rows; a
    ``distinct`` of a customer field counts customers; anything else counts events.
    """
    last = (field or "").rsplit(".", 1)[-1].lower()
    if aggregate in ("sum", "max"):
        if "bytes" in last:
            return "bytes"
        if last in ("rows", "row_count", "rows_returned", "rows_read"):
            return "rows"
    if aggregate == "distinct" and "customer" in (field or "").lower():
        return "customers"
    return "events"


def _number(v: float) -> str:
    """Thousands separators; at most two decimals, and none on a whole number."""
    if isinstance(v, int) or (math.isfinite(v) and v.is_integer() and abs(v) < 2**53):
        return f"{int(v):,}"
    if not math.isfinite(v):
        return str(v)
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def _bytes(v: float) -> str:
    if not math.isfinite(v):
        return f"{v} B"
    size, i = abs(v), 0
    while size >= 1000 and i < len(_BYTE_PREFIXES) - 1:
        size /= 1000
        i += 1
    sign = "-" if v < 0 else ""
    if i == 0:
        return f"{sign}{_number(size)} B"
    text = f"{size:.1f}" if size < 100 else f"{size:.0f}"
    # 999.96 kB rounds to "1000 kB": say the next prefix up instead.
    if text == "1000" and i < len(_BYTE_PREFIXES) - 1:
        text, i = "1.0", i + 1
    return f"{sign}{text.removesuffix('.0')} {_BYTE_PREFIXES[i]}"


def format_value(value: float, unit: str) -> str:
    """``value`` as a person reads it in ``unit`` (an unknown unit is spelt after it)."""
    if unit == "bytes":
        return _bytes(value)
    text = _number(value)
    word = _SINGULAR.get(unit, unit) if value == 1 else unit
    return f"{text} {word}"


def limit_sentence(value: float, threshold: Mapping[str, float], unit: str,
                   window: str | None = None) -> str:  # fmt: skip
    """Says "3,000 customers in 10m, over the limit of 1,000" for a threshold ``{"gt": 1000}``.

    The limit is spelt in the unit too when it is bytes (``over the limit of 1 GB``);
    counts give the bare number, since the unit was just said.
    """
    head = format_value(value, unit)
    if window:
        head += f" in {window}"
    parts = []
    for op, limit in threshold.items():
        words = _COMPARE.get(op, f"{op}")
        shown = _bytes(limit) if unit == "bytes" else _number(limit)
        parts.append(f"{words} {shown}")
    return ", ".join([head, *parts])


def plain_summary(rule: str, group_values: Sequence[Any], limit: str) -> str:
    """"bulk-read: mallory: 40,000 rows in 10m, over the limit of 5,000": the rule, who
    (the group's values), and :func:`limit_sentence`'s ``limit``."""
    who = ", ".join(_shown(v) for v in group_values)
    return f"{rule}: {who}: {limit}" if who else f"{rule}: {limit}"


def _shown(v: Any) -> str:
    if isinstance(v, str):
        return truncate(v)
    try:
        return truncate(orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode())
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, or nested too deep
        return truncate(repr(v))
