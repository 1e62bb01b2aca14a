"""The match operators, each defined once: what it accepts, how it tests, how it is inlined.

An entry gives an operator's operand check (the rule problem a bad value is, with its
code), its closure for the reference path, and, where inlining pays, the expression the
generated dispatch loop writes in its place. Validation (``conditions.py``), compilation
(``compile.py``) and generation (``engine/dispatch.py``) all read this table, so adding
an operator is one entry here.

Values compare as JSON gives them: numbers with numbers, text with text, booleans with
booleans. A value of the wrong type fails the test and bumps the rule's mismatch counter
(``miss``), because a rule silently never matching is how a detection rots; a missing
field (``None``) fails without counting.
"""

from __future__ import annotations

import ipaddress
import operator as _op
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

from monitor.event import Event, Getter
from monitor.rules.context import is_number, is_scalar

Check = Callable[[Event], bool]
Miss = Callable[[], bool]
# (getter of the field, the operand as prepared by the check, miss) -> the test
Closure = Callable[[Getter, Any, Miss], Check]

REGEX_MAX_INPUT = 64 * 1024  # re2 is linear-time; the bound keeps one event's cost bounded too
_IP_CACHE_MAX = 65_536


class BadOperand(ValueError):
    """An operand an operator does not accept: the message and code of the rule problem."""

    def __init__(self, message: str, code: str = "E-BAD-OPERAND") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Operand:
    """A checked operand: ``value`` as the rule keeps it, ``arg`` ready for the closure
    (a compiled regex, parsed networks), made once when the rule is validated."""

    value: Any
    arg: Any


@dataclass(frozen=True)
class Inline:
    """An expression for the generated loop: ``{v}`` is the field's value, ``{k}`` the
    name of ``const`` in the loop's namespace, ``{miss}`` the rule's mismatch callable.
    Templates are fixed text written here: nothing from a rule reaches the source."""

    template: str
    const: Any = None


@dataclass(frozen=True)
class Operator:
    name: str
    check: Callable[[Any, str], Operand]  # (value, how the rule names the operator)
    closure: Closure
    inline: Callable[[Any], Inline | None] = lambda value: None  # not inlined: the closure
    takes_list_ref: bool = False  # a ``$name`` operand is allowed
    empty_list_never_holds: bool = False  # an empty ``$name`` makes the rule unable to fire


def kind(v: Any) -> str | None:
    """The JSON type a value is compared within: text, boolean, number, or none of them."""
    cls = v.__class__
    if cls is str:
        return "s"
    if cls is bool:
        return "b"
    if cls is int or cls is float:
        return "n"
    return None


def compile_regex(pattern: str) -> Any:
    """re2, with its own stderr logging off: errors are reported as rule problems."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def _same(value: Any) -> Operand:
    return Operand(value, value)


def _is_text(v: Any) -> bool:
    return v.__class__ is str


# -- eq, ne ------------------------------------------------------------------------------


def _check_scalar(value: Any, label: str) -> Operand:
    if not is_scalar(value):
        raise BadOperand(
            f"{label} needs text, a number or a boolean"
            + ("; to test for a missing field use {exists: false}" if value is None else "")
        )
    return _same(value)


def _equality(positive: bool) -> Closure:
    def closure(get: Getter, arg: Any, miss: Miss) -> Check:
        want = kind(arg)
        if want == "s":  # the common case, without the generic type dispatch

            def eq_str(e: Event) -> bool:
                v = get(e)
                if v.__class__ is str:
                    return (v == arg) is positive
                return False if v is None else miss()

            return eq_str

        def eq(e: Event) -> bool:
            v = get(e)
            if v is None:
                return False
            if kind(v) != want:
                return miss()
            return (v == arg) is positive

        return eq

    return closure


def _inline_text(test: str) -> Callable[[Any], Inline | None]:
    guarded = f"(({test}) if {{v}}.__class__ is str else ({{v}} is not None and {{miss}}()))"
    return lambda value: Inline(guarded, value) if _is_text(value) else None


# -- in, not_in --------------------------------------------------------------------------


def _check_values(value: Any, label: str) -> Operand:
    if not isinstance(value, list) or not all(is_scalar(v) for v in value):
        raise BadOperand(f"{label} needs a list of values or a $list")
    sets: dict[str | None, set[Any]] = {}
    for v in value:
        sets.setdefault(kind(v), set()).add(v)
    return Operand(value, {k: frozenset(s) for k, s in sets.items()})


def _membership(positive: bool) -> Closure:
    def closure(get: Getter, sets: Any, miss: Miss) -> Check:
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
            members = sets.get(kind(v))
            if members is None:
                return miss()
            return (v in members) is positive

        return in_any

    return closure


def _inline_members(test: str) -> Callable[[Any], Inline | None]:
    guarded = f"(({test}) if {{v}}.__class__ is str else ({{v}} is not None and {{miss}}()))"
    return lambda value: (
        Inline(guarded, frozenset(value)) if value and all(_is_text(v) for v in value) else None
    )


# -- contains, startswith, endswith ------------------------------------------------------


def _check_contains(value: Any, label: str) -> Operand:
    if not is_scalar(value):
        raise BadOperand(f"{label} needs text")
    return _same(value)


def _check_text(value: Any, label: str) -> Operand:
    if not isinstance(value, str):
        raise BadOperand(f"{label} needs text")
    return _same(value)


def _contains(get: Getter, arg: Any, miss: Miss) -> Check:
    want = kind(arg)

    def contains(e: Event) -> bool:
        v = get(e)
        if v is None:
            return False
        if v.__class__ is str:
            return arg in v if want == "s" else miss()
        if v.__class__ is list:
            return any(kind(x) == want and x == arg for x in v)
        return miss()

    return contains


def _affix(starts: bool) -> Closure:
    def closure(get: Getter, arg: Any, miss: Miss) -> Check:
        def affix(e: Event) -> bool:
            v = get(e)
            if v.__class__ is str:
                return v.startswith(arg) if starts else v.endswith(arg)
            return False if v is None else miss()

        return affix

    return closure


# -- regex -------------------------------------------------------------------------------


def _check_regex(value: Any, label: str) -> Operand:
    if not isinstance(value, str):
        raise BadOperand("regex needs text")
    try:
        pattern = compile_regex(value)
    except Exception as exc:  # re2 raises its own error type, with bytes
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise BadOperand(f"bad regex {value!r}: {detail}", "E-BAD-REGEX") from None
    return Operand(value, pattern)


def _regex(get: Getter, pattern: Any, miss: Miss) -> Check:
    def regex(e: Event) -> bool:
        v = get(e)
        if v.__class__ is str:
            return pattern.search(v[:REGEX_MAX_INPUT]) is not None
        return False if v is None else miss()

    return regex


# -- cidr --------------------------------------------------------------------------------


def _check_networks(value: Any, label: str) -> Operand:
    nets = value if isinstance(value, list) else [value]
    parsed = []
    for net in nets:
        try:
            if not isinstance(net, str):
                raise ValueError(f"{net!r} is not text")
            parsed.append(ipaddress.ip_network(net, strict=False))
        except ValueError as exc:
            raise BadOperand(f"bad network {net!r}: {exc}", "E-BAD-NETWORK") from None
    return Operand(list(nets), parsed)


def _cidr(get: Getter, nets: Any, miss: Miss) -> Check:
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


# -- gt, gte, lt, lte --------------------------------------------------------------------


def _check_ordered(value: Any, label: str) -> Operand:
    if not (is_number(value) or isinstance(value, str)):
        raise BadOperand(f"{label} needs a number or text")
    return _same(value)


def _ordering(cmp: Callable[[Any, Any], Any]) -> Closure:
    def closure(get: Getter, arg: Any, miss: Miss) -> Check:
        want = kind(arg)

        def compare(e: Event) -> bool:
            v = get(e)
            if v is None:
                return False
            if kind(v) != want:
                return miss()
            return bool(cmp(v, arg))

        return compare

    return closure


# -- exists ------------------------------------------------------------------------------


def _check_bool(value: Any, label: str) -> Operand:
    if not isinstance(value, bool):
        raise BadOperand("exists needs true or false")
    return _same(value)


def _exists(get: Getter, arg: Any, miss: Miss) -> Check:
    if arg:
        return lambda e: get(e) is not None
    return lambda e: get(e) is None


def _inline_exists(value: Any) -> Inline:
    return Inline("({v} is not None)" if value else "({v} is None)")


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("eq", _check_scalar, _equality(True), _inline_text("{v} == {k}")),
        Operator("ne", _check_scalar, _equality(False), _inline_text("{v} != {k}")),
        Operator("in", _check_values, _membership(True), _inline_members("{v} in {k}"),
                 takes_list_ref=True, empty_list_never_holds=True),
        Operator("not_in", _check_values, _membership(False), _inline_members("{v} not in {k}"),
                 takes_list_ref=True),
        Operator("contains", _check_contains, _contains),
        Operator("startswith", _check_text, _affix(True)),
        Operator("endswith", _check_text, _affix(False)),
        Operator("regex", _check_regex, _regex),
        Operator("cidr", _check_networks, _cidr, takes_list_ref=True, empty_list_never_holds=True),
        Operator("gt", _check_ordered, _ordering(_op.gt)),
        Operator("gte", _check_ordered, _ordering(_op.ge)),
        Operator("lt", _check_ordered, _ordering(_op.lt)),
        Operator("lte", _check_ordered, _ordering(_op.le)),
        Operator("exists", _check_bool, _exists, _inline_exists),
    )
}  # fmt: skip
