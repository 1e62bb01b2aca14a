"""Stage three of loading: conditions become plain closures, chosen once per operator.

Nothing here looks an operator name up per event and nothing uses ``eval``: each
condition is turned into one small function that reads its field and tests it. Values
compare as JSON gives them: numbers with numbers, text with text, booleans with
booleans. A value of the wrong type fails the test and bumps the rule's mismatch
counter, which becomes a metric, because a rule silently never matching is how a
detection rots.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable
from typing import Any

import orjson
import re2

from monitor.rules.model import Condition, RuleSpec

Event = dict[str, Any]
Getter = Callable[[Event], Any]
Check = Callable[[Event], bool]

REGEX_MAX_INPUT = 64 * 1024  # re2 is linear-time; the bound keeps one event's cost bounded too


def compile_regex(pattern: str) -> Any:
    """re2, with its own stderr logging off: errors are reported as rule problems."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)
_IP_CACHE_MAX = 65_536


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


def _kind(v: Any) -> str | None:
    cls = v.__class__
    if cls is str:
        return "s"
    if cls is bool:
        return "b"
    if cls is int or cls is float:
        return "n"
    return None


class Counter:
    """A plain integer cell; closures bump it on the hot path, telemetry reads it per batch."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def _typed_sets(values: list[Any]) -> dict[str | None, frozenset[Any]]:
    out: dict[str | None, set[Any]] = {}
    for v in values:
        out.setdefault(_kind(v), set()).add(v)
    return {k: frozenset(s) for k, s in out.items()}


def compile_condition(cond: Condition, mismatch: Counter) -> Check:
    get = getter(cond.path)
    op, arg = cond.op, cond.value

    if op == "exists":
        if arg:
            return lambda e: get(e) is not None
        return lambda e: get(e) is None

    def miss() -> bool:
        mismatch.value += 1
        return False

    if op in ("eq", "ne"):
        want = _kind(arg)
        positive = op == "eq"

        def eq(e: Event) -> bool:
            v = get(e)
            if v is None:
                return False
            if _kind(v) != want:
                return miss()
            return (v == arg) is positive

        if want == "s":  # the common case, without the generic type dispatch

            def eq_str(e: Event) -> bool:
                v = get(e)
                if v.__class__ is str:
                    return (v == arg) is positive
                return False if v is None else miss()

            return eq_str
        return eq

    if op in ("in", "not_in"):
        sets = _typed_sets(arg)
        positive = op == "in"
        if set(sets) == {"s"}:
            strings = sets["s"]

            def in_str(e: Event) -> bool:
                v = get(e)
                if v.__class__ is str:
                    return (v in strings) is positive
                return False if v is None else miss()

            return in_str

        def in_any(e: Event) -> bool:
            v = get(e)
            if v is None:
                return False
            members = sets.get(_kind(v))
            if members is None:
                return miss()
            return (v in members) is positive

        return in_any

    if op == "contains":
        want = _kind(arg)

        def contains(e: Event) -> bool:
            v = get(e)
            if v is None:
                return False
            if v.__class__ is str:
                return arg in v if want == "s" else miss()
            if v.__class__ is list:
                return any(_kind(x) == want and x == arg for x in v)
            return miss()

        return contains

    if op in ("startswith", "endswith"):

        def affix(e: Event) -> bool:
            v = get(e)
            if v.__class__ is str:
                return v.startswith(arg) if op == "startswith" else v.endswith(arg)
            return False if v is None else miss()

        return affix

    if op == "regex":
        pattern = compile_regex(arg)

        def regex(e: Event) -> bool:
            v = get(e)
            if v.__class__ is str:
                return pattern.search(v[:REGEX_MAX_INPUT]) is not None
            return False if v is None else miss()

        return regex

    if op == "cidr":
        return _cidr(get, arg, miss)

    if op in ("gt", "gte", "lt", "lte"):
        want = _kind(arg)
        import operator as _op

        cmp = {"gt": _op.gt, "gte": _op.ge, "lt": _op.lt, "lte": _op.le}[op]

        def compare(e: Event) -> bool:
            v = get(e)
            if v is None:
                return False
            if _kind(v) != want:
                return miss()
            return bool(cmp(v, arg))

        return compare

    raise ValueError(f"unknown operator {op}")  # validation makes this unreachable


def _cidr(get: Getter, networks: list[str], miss: Callable[[], bool]) -> Check:
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    cache: dict[str, bool | None] = {}  # None: not an address

    def inside(text: str) -> bool | None:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            return None
        return any(addr in n for n in nets if n.version == addr.version)

    def cidr(e: Event) -> bool:
        v = get(e)
        if v.__class__ is not str:
            return False if v is None else miss()
        hit = cache.get(v, False)
        if hit is False and v not in cache:
            if len(cache) >= _IP_CACHE_MAX:
                cache.clear()
            hit = cache[v] = inside(v)
        return miss() if hit is None else bool(hit)

    return cidr


def threshold_check(op: str, n: float) -> Callable[[float], bool]:
    if op == "gt":
        return lambda v: v > n
    if op == "gte":
        return lambda v: v >= n
    if op == "lt":
        return lambda v: v < n
    if op == "lte":
        return lambda v: v <= n
    return lambda v: v == n


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


def index_choice(spec: RuleSpec, preferred: list[str]) -> Condition | None:
    """The condition the rule is indexed by: an ``eq``/``in`` on text, on the most shared field."""
    usable = [
        c
        for c in spec.conditions
        if (c.op == "eq" and isinstance(c.value, str))
        or (c.op == "in" and c.value and all(isinstance(v, str) for v in c.value))
    ]
    if not usable:
        return None
    return min(usable, key=lambda c: preferred.index(c.path) if c.path in preferred else len(preferred))


def compile_test(
    conditions: list[Condition], when: Any, mismatch: Counter
) -> Callable[[Event, int], bool]:
    """All conditions (AND) plus the schedule, as one callable of (event, event time)."""
    checks = tuple(compile_condition(c, mismatch) for c in conditions)
    sched = None
    if when is not None:
        kind, schedule = when
        inside = kind == "inside"
        contains = schedule.contains

        def sched(ts: int) -> bool:
            return contains(ts) is inside

    # Off the hot path: the generated dispatch loop inlines most conditions itself.
    def test(e: Event, ts: int) -> bool:
        for c in checks:
            if not c(e):
                return False
        return sched is None or sched(ts)

    return test
