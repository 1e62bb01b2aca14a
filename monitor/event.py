"""The event model: what an event is, how its fields are read, and how a field's JSON
value becomes a dict key or set member.

Decoding, the rules, the windows, the generated dispatch loop and the producers all read
events the same way, so this is the one place that says how: ``a.b.c`` reads nested
objects and is ``None`` wherever anything is missing; a group key or distinct value is
the value itself for text, numbers and null, and canonical JSON text in a type of its
own for everything else, bounded so a hostile value costs bounded time and memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import orjson

Event = dict[str, Any]
Getter = Callable[[Event], Any]

# Where the daemon read an event (``file:line``, ``topic/partition@offset``): set on each
# decoded event under a key no rule names by accident, carried into alerts' samples.
PROVENANCE = "@provenance"


class Tally:
    """A plain integer cell; closures bump it on the hot path, telemetry reads it per batch."""

    __slots__ = ("source", "value")

    def __init__(self) -> None:
        self.value = 0
        self.source: Tally | None = None  # the tally of the rule this one replaced, count carried over


def getter(path: str) -> Getter:
    """A function reading ``a.b.c`` from nested objects; ``None`` where anything is missing."""
    parts = path.split(".")
    if len(parts) == 1:
        (a,) = parts

        def get1(e: Event) -> Any:
            return e.get(a)

        return get1
    if len(parts) == 2:
        a, b = parts

        def get2(e: Event) -> Any:
            v = e.get(a)
            return v.get(b) if v.__class__ is dict else None

        return get2

    def getn(e: Event) -> Any:
        v: Any = e
        for p in parts:
            if v.__class__ is not dict:
                return None
            v = v.get(p)
        return v

    return getn


class JsonKey(tuple[str]):
    """A JSON value that Python would confuse with another as a dict key or set member
    (``true`` with ``1``) or cannot hash (objects, lists): kept as its canonical JSON text,
    in a type of its own so it never equals a string or a number."""

    __slots__ = ()

    @property
    def value(self) -> Any:
        return orjson.loads(self[0])


# Bounds on a non-scalar value used as a group key or distinct value (README "Limits").
KEY_MAX_DEPTH = 32
KEY_MAX_JSON = 1024


class _TooLarge:
    """The key of a value past the bounds: a rule treats it as a type mismatch."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TOO_LARGE"


TOO_LARGE: Hashable = _TooLarge()


def _within_bounds(v: Any) -> bool:
    """Whether ``v`` nests at most KEY_MAX_DEPTH deep and has at most KEY_MAX_JSON values.

    Iterative, and it stops at the first value past either bound, so a value nested a
    thousand deep or a list of a million items costs no more than a bounded one.
    Every value is at least one character of JSON, so more values than KEY_MAX_JSON is
    already too much text.
    """
    stack = [(v, 1)]
    seen = 0
    while stack:
        x, depth = stack.pop()
        seen += 1
        if seen > KEY_MAX_JSON:
            return False
        cls = x.__class__
        if cls is dict:
            if depth > KEY_MAX_DEPTH:
                return False
            stack.extend((y, depth + 1) for y in x.values())
            seen += len(x)  # the keys
        elif cls is list:
            if depth > KEY_MAX_DEPTH:
                return False
            stack.extend((y, depth + 1) for y in x)
    return True


def hashable(v: Any) -> Hashable:
    """A key for a JSON value: text, numbers and null as themselves, the rest as JsonKey.

    Objects and lists deeper than KEY_MAX_DEPTH or longer than KEY_MAX_JSON bytes of JSON
    become :data:`TOO_LARGE`, which rules count as a type mismatch: an attacker's nested
    field must cost bounded time and memory, and never the recursion limit.
    """
    cls = v.__class__
    if cls is str or cls is int or cls is float or v is None:
        return v  # type: ignore[no-any-return]
    if (cls is dict or cls is list) and not _within_bounds(v):
        return TOO_LARGE
    text = orjson.dumps(v, option=orjson.OPT_SORT_KEYS)
    if len(text) > KEY_MAX_JSON:
        return TOO_LARGE
    return JsonKey((text.decode(),))


def unkey(k: Any) -> Any:
    """The JSON value behind a key made by :func:`hashable`."""
    return k.value if k.__class__ is JsonKey else k


def key_of(values: list[Any]) -> Hashable:
    """The key :func:`group_key` gives an event whose group paths hold ``values``, as an
    alert's ``group`` holds them: how a saved episode finds its group again."""
    if not values:
        return None
    if len(values) == 1:
        (v,) = values
        return v if v.__class__ is str else hashable(v)
    return tuple(hashable(v) for v in values)


def group_key(paths: tuple[str, ...]) -> Callable[[Event], Hashable]:
    """One key per group: the bare value for one path, a tuple for several."""
    if not paths:
        return lambda e: None
    gets = [getter(p) for p in paths]
    if len(gets) == 1:
        (g,) = gets

        def key1(e: Event) -> Hashable:
            v = g(e)
            return v if v.__class__ is str else hashable(v)

        return key1
    return lambda e: tuple(hashable(g(e)) for g in gets)
