"""The per-event hot loop, generated once per rule set.

Calling one closure per condition, each reading its own field, costs more than the
tests themselves. So the loop over a batch is written out as Python source for the
rule set at hand: events are routed by the indexed field's value to a branch that
reads each field its rules need once, tests text equality and membership inline, and
calls the rule's ``apply`` only when everything holds. Operators that are not worth
inlining (regex, cidr, comparisons, mixed types) call the same closures as before.

Safety: the source contains nothing from the rules but generated names (a rule's id
reduced to ``[A-Za-z0-9_]``, behind a generated prefix) and integer literals; every field name, value and callable reaches it through the namespace it is
executed in. ``reference_process`` is the straightforward loop over the same closures;
tests check that both give the same alerts.
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Callable
from typing import Any

from monitor.engine.windows import RuleState
from monitor.event import Tally, getter, hashable
from monitor.rules.compile import compile_condition
from monitor.rules.loader import CompiledRule
from monitor.rules.model import Condition
from monitor.rules.operators import OPERATORS, Inline

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")

Dispatch = Callable[[Any, Any, int], tuple[list[tuple[int, Any, Any]], int]]


class _Source:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self._n = 0

    def const(self, value: Any, prefix: str = "K", owner: str | None = None) -> str:
        """A name for ``value`` in the loop's namespace, carrying the id of the rule it
        belongs to (reduced to identifier characters) so the source reads back."""
        name = f"{prefix}{self._n}"
        if owner is not None:
            name += "_" + _NOT_IDENT.sub("_", owner)[:40]
        self._n += 1
        self.ns[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)


def _inline(cond: Condition) -> Inline | None:
    """The operator's expression for the generated loop, or None to call its closure."""
    return OPERATORS[cond.op].inline(cond.value)


def _read(src: _Source, depth: int, var: str, path: str, parents: dict[str, str] | None = None) -> None:
    """Emit ``var = <the field at path>``; two-level paths share their parent object's
    read through ``parents`` (name -> variable holding that object, or None)."""
    parts = path.split(".")
    if len(parts) == 1:
        src.emit(depth, f"{var} = e.get({src.const(parts[0])})")
    elif len(parts) == 2:
        parent = parents.get(parts[0]) if parents is not None else None
        if parent is None:
            parent = f"p{len(parents)}" if parents is not None else var
            src.emit(depth, f"{parent} = e.get({src.const(parts[0])})")
            if parents is not None:
                src.emit(depth, f"if {parent}.__class__ is not dict:")
                src.emit(depth + 1, f"{parent} = {src.const({}, 'E')}")
                parents[parts[0]] = parent
            else:
                src.emit(depth, f"{var} = {var}.get({src.const(parts[1])}) if {var}.__class__ is dict else None")
                return
        src.emit(depth, f"{var} = {parent}.get({src.const(parts[1])})")
    else:
        src.emit(depth, f"{var} = {src.const(getter(path))}(e)")


def _test(src: _Source, inline: Inline, var: str, mismatch: str, owner: str) -> str:
    """An expression that is True when the condition holds, counting type mismatches."""
    k = src.const(inline.const, owner=owner) if "{k}" in inline.template else ""
    return inline.template.format(v=var, k=k, miss=mismatch)


def _miss(counter: Tally) -> Callable[[], bool]:
    def miss() -> bool:
        counter.value += 1
        return False

    return miss


def _direct(rule: CompiledRule) -> bool:
    """Whether the loop can hand the rule its group key and aggregate value directly."""
    spec = rule.spec
    paths = [*spec.group_by, *([spec.aggregate_field] if spec.aggregate_field else [])]
    return len(spec.group_by) <= 1 and all(p.count(".") <= 1 for p in paths)


def _direct_paths(rule: CompiledRule) -> list[str]:
    if not _direct(rule):
        return []
    return [*rule.spec.group_by, *([rule.spec.aggregate_field] if rule.spec.aggregate_field else [])]


def _rule_block(
    src: _Source, depth: int, i: int, rule: CompiledRule, conds: list[Condition],
    fields: dict[str, str], state: RuleState,
) -> None:  # fmt: skip
    apply, apply_with = state.apply, state.apply_with
    mismatch = src.const(_miss(rule.mismatch), "M", rule.id)
    terms = []
    for c in conds:
        inline = _inline(c)
        if inline is not None:
            terms.append(_test(src, inline, fields[c.path], mismatch, rule.id))
        else:
            terms.append(f"{src.const(compile_condition(c, rule.mismatch), 'C', rule.id)}(e)")
    if rule.spec.when is not None:
        kind, schedule = rule.spec.when
        terms.append(f"({src.const(schedule.contains, 'S', rule.id)}(ts) is {kind == 'inside'})")
    if rule.excepted is not None:
        terms.append(f"not {src.const(rule.excepted, 'X', rule.id)}(e, ts)")
    cond = " and ".join(terms) or "True"
    src.emit(depth, f"if {cond}:")
    spec = rule.spec
    if _direct(rule):
        key = fields[f"key:{spec.group_by[0]}"] if spec.group_by else "None"
        value = fields[spec.aggregate_field] if spec.aggregate_field else "1"
        src.emit(depth + 1, f"x = {src.const(apply_with, 'A', rule.id)}(e, ts, now, {key}, {value})")
    else:
        src.emit(depth + 1, f"x = {src.const(apply, 'A', rule.id)}(e, ts, now)")
    src.emit(depth + 1, "if x is not None:")
    src.emit(depth + 2, f"fires.append(({i}, x, e))")


def _branch(
    src: _Source, depth: int, members: list[tuple[int, CompiledRule, list[Condition]]],
    states: list[RuleState],
) -> None:  # fmt: skip
    fields: dict[str, str] = {}
    parents: dict[str, str] = {}
    for _, rule, conds in members:
        for path in [c.path for c in conds if _inline(c) is not None] + _direct_paths(rule):
            if path not in fields:
                fields[path] = f"f{len(fields)}"
                _read(src, depth, fields[path], path, parents)
    for _, rule, _ in members:  # group keys, each made once for the rules that need it
        if _direct(rule) and rule.spec.group_by and f"key:{rule.spec.group_by[0]}" not in fields:
            g = fields[rule.spec.group_by[0]]
            k = fields[f"key:{rule.spec.group_by[0]}"] = f"k{g[1:]}"
            src.emit(depth, f"{k} = {g} if {g}.__class__ is str else {src.const(hashable, 'H')}({g})")
    for i, rule, conds in members:
        _rule_block(src, depth, i, rule, conds, fields, states[i])


def filename(digest: str) -> str:
    """The loop's name in tracebacks: which rule set it was generated for."""
    return f"<exfil-monitor rules sha256:{digest[:12]}>"


def build(rules: list[CompiledRule], states: list[RuleState], digest: str = "") -> Dispatch:
    """Generate the batch loop for ``rules`` (enabled, in order; ``states`` alongside).

    The source is registered with ``linecache`` under :func:`filename` of the rule set's
    ``digest``, so a traceback through the loop shows its lines; one entry per rule set.
    """
    src = _Source()
    by_path: dict[str, list[int]] = {}
    always: list[int] = []
    for i, r in enumerate(rules):
        if r.index is None:
            always.append(i)
        else:
            by_path.setdefault(r.index.path, []).append(i)

    src.emit(0, "def process(batch, clock, newest):")
    src.emit(1, "fires = []")
    src.emit(1, "for e, ts in batch:")
    src.emit(2, "if ts > newest:")
    src.emit(3, "newest = ts")
    src.emit(2, "now = newest if clock is None else clock")
    for path, members in by_path.items():
        # Each distinct set of rules an index value selects becomes one branch.
        branches: dict[tuple[int, ...], int] = {}
        table: dict[str, int] = {}
        for v in dict.fromkeys(
            v
            for i in members
            for v in ([rules[i].index.value] if rules[i].index.op == "eq" else rules[i].index.value)  # type: ignore[union-attr]
        ):
            chosen = tuple(
                i
                for i in members
                if v == rules[i].index.value or (rules[i].index.op == "in" and v in rules[i].index.value)  # type: ignore[union-attr]
            )
            table[v] = branches.setdefault(chosen, len(branches))
        _read(src, 2, "v", path)
        src.emit(2, "if v.__class__ is str:")
        src.emit(3, f"b = {src.const(table, 'T')}.get(v)")
        for chosen, number in branches.items():
            src.emit(3, f"{'if' if number == 0 else 'elif'} b == {number}:")
            rest = [(i, rules[i], [c for c in rules[i].spec.conditions if c is not rules[i].index]) for i in chosen]
            _branch(src, 4, rest, states)
        counters = [rules[i].mismatch for i in members]
        src.emit(2, "elif v is not None:")
        src.emit(3, f"for m in {src.const(counters)}:")
        src.emit(4, "m.value += 1")
    if always:
        _branch(src, 2, [(i, rules[i], list(rules[i].spec.conditions)) for i in always], states)
    src.emit(1, "return fires, newest")

    text = "\n".join(src.lines) + "\n"
    name = filename(digest)
    linecache.cache[name] = (len(text), None, text.splitlines(keepends=True), name)
    exec(compile(text, name, "exec"), src.ns)
    process: Dispatch = src.ns["process"]
    process.source = text  # type: ignore[attr-defined]
    return process


def matcher(rule: CompiledRule) -> Callable[[Any, int], bool]:
    """Whether an event is one the rule counts: its indexed condition (a text value), then
    the rest (conditions, schedule, exceptions). The reference loop's test, and what
    decides which events are forwarded to be counted after repartitioning."""
    index, test = rule.index, rule.test
    if index is None:
        return test
    get, value, eq = getter(index.path), index.value, index.op == "eq"

    def matches(e: Any, ts: int) -> bool:
        v = get(e)
        if v.__class__ is not str or not (v == value if eq else v in value):
            return False
        return test(e, ts)

    return matches


def reference(rules: list[CompiledRule], states: list[RuleState]) -> Dispatch:
    """The same loop without code generation: one closure per rule, for tests to compare."""
    index_get = {r.index.path: getter(r.index.path) for r in rules if r.index is not None}
    pairs = list(zip(map(matcher, rules), states, strict=True))

    def process(batch: Any, clock: Any, newest: int) -> tuple[list[tuple[int, Any, Any]], int]:
        fires = []
        for e, ts in batch:
            newest = max(newest, ts)
            now = newest if clock is None else clock
            for path, get in index_get.items():
                v = get(e)
                if v is not None and v.__class__ is not str:
                    for r in rules:
                        if r.index is not None and r.index.path == path:
                            r.mismatch.value += 1
            for i, (m, state) in enumerate(pairs):
                if m(e, ts):
                    x = state.apply(e, ts, now)
                    if x is not None:
                        fires.append((i, x, e))
        return fires, newest

    return process
