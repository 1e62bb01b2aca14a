"""``exfil-monitor explain ALERT_ID``: the events that were in an alert's window, and why it fired.

An analyst holding an alert wants the rows behind its number without writing a query.
The input is replayed twice through the ordinary pipeline (:mod:`monitor.pipeline`), so
what is shown is what the engine counted, not a second reading of the rules:

1. the whole rule set, as ``replay`` runs it, until the alert with that id fires: which
   rule, group and window it is;
2. that rule alone (a rule's windows depend on no other rule; the forgetting clock is the
   newest event time, whichever rules there are) through the engine's reference loop,
   whose calls into the rule's state are observed: an event is in the window when the
   engine put it in one of the group's buckets (not dropped as late, not a type
   mismatch), into the group as it was when the alert fired (not one forgotten or
   evicted before), with its time in ``[window_start, window_end)``, and it came before
   the alert in the stream.

Events are listed in the order the engine saw them, with the aggregate (count, sum,
distinct or max) running over them; the last running value is the alert's value. Two
cases cannot be listed event by event, and say so: a value that includes the estimate of
evicted groups (``estimated``), and a distinct count past ``--distinct-exact-limit``
(HyperLogLog) whose exact count of the listed values may differ a little.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from monitor.decode import Decoder
from monitor.engine import Alert, Engine, EngineOptions
from monitor.engine.alert import alert_id
from monitor.engine.group import COUNT
from monitor.engine.windows import Fire, RuleState
from monitor.event import TOO_LARGE, Event, getter, hashable
from monitor.pipeline import Pipeline
from monitor.rules.loader import CompiledRule, RuleSet
from monitor.sources.files import Batch
from monitor.telemetry import quiet_telemetry
from monitor.timeparse import format_ts

Source = Callable[[], Iterable[Batch]]  # a fresh pass over the same input each call
_PLAIN = (int, float, str)


@dataclass
class Explanation:
    alert: Alert
    rule: CompiledRule
    events: list[tuple[Event, int, Any]] = field(default_factory=list)  # (event, time, its input to the aggregate)
    approximate: bool = False  # a distinct count kept as HyperLogLog when it fired

    @property
    def kind(self) -> str:
        return self.rule.spec.aggregate

    def running(self) -> list[Any]:
        """The aggregate after each listed event, as the engine accumulated it."""
        out: list[Any] = []
        kind = self.kind
        total: Any = None
        seen: set[Hashable] = set()
        values: list[Any] = []
        for _, _, v in self.events:
            if kind == "distinct":
                seen.add(v if v.__class__ in _PLAIN else hashable(v))
                total = len(seen)
            elif kind == "max":
                total = v if total is None or v > total else total
            else:
                values.append(v)
                total = sum(values) if not any(x.__class__ is float for x in values) else math.fsum(values)
            out.append(total)
        return out

    def value(self) -> Any:
        r = self.running()
        return r[-1] if r else None

    def notes(self) -> list[str]:
        notes = []
        if self.alert.estimated:
            notes.append(
                "the alert's value includes an estimate of evicted groups (--max-groups): "
                "the listed events account for part of it"
            )
        if self.approximate:
            notes.append("the distinct count was approximate (HyperLogLog) when the alert fired")
        return notes

    def to_dict(self) -> dict[str, Any]:
        spec = self.rule.spec
        return {
            "alert": self.alert.to_dict(),
            "aggregate": {"kind": spec.aggregate, "field": spec.aggregate_field, "value": self.value()},
            "events": [
                {"ts": format_ts(ts), "contribution": _jsonable(v), "running": r, "event": e}
                for (e, ts, v), r in zip(self.events, self.running(), strict=True)
            ],
            "notes": self.notes(),
        }


def _jsonable(v: Any) -> Any:
    return v if v is None or v.__class__ in (*_PLAIN, bool, dict, list) else str(v)


def find(alert_id_: str, ruleset: RuleSet, options: EngineOptions, decoder: Callable[[], Decoder],
         source: Source) -> Alert | None:  # fmt: skip
    """Pass 1: the alert with that id, replayed as ``replay`` would; None if it never fires."""
    found: list[Alert] = []

    def emit(alert: Alert) -> None:
        if alert.id == alert_id_ and not found:
            found.append(alert)

    pipeline = Pipeline(decoder(), Engine(ruleset, options), quiet_telemetry(), emit=emit)
    for batch in source():
        pipeline.feed(batch)
        if found:
            return found[0]
    return None


def _ident(values: Iterable[Any]) -> list[bytes]:
    """Group values as the alert id encodes them (``true`` is not ``1``)."""
    return [orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values]


class _Watch:
    """Observes the engine's applications of one rule to one group (pass 2)."""

    def __init__(self, state: RuleState, alert: Alert) -> None:
        self.state = state
        self.alert = alert
        self.target = _ident(alert.group.values())
        self.inner = state.apply
        self.members: list[tuple[Event, int, Any]] = []
        self.group: Any = None
        self.done: list[tuple[Event, int, Any]] | None = None
        self.approximate = False

    def ours(self, key: Hashable) -> bool:
        if key is TOO_LARGE or (key.__class__ is tuple and TOO_LARGE in key):
            return False
        return _ident(self.state.group_values(key)) == self.target

    def apply(self, e: Event, ts: int, clock: int) -> Fire | None:
        state = self.state
        if self.done is not None:
            return self.inner(e, ts, clock)
        key = state.key(e)
        if not self.ours(key):
            return self.inner(e, ts, clock)
        contrib = 1 if state.field is None else state.field(e)
        if state.window is None:
            fire = self.inner(e, ts, clock)
            if fire is not None and self._is_it(fire):
                self.done = [(e, ts, contrib)]
            return fire
        b = ts // state.res
        before = state.groups.get(key)
        had = before.buckets[b][COUNT] if before is not None and b in before.buckets else 0
        fire = self.inner(e, ts, clock)
        after = state.groups.get(key)
        if after is not before:  # made by this event: its bucket held nothing before
            had = 0
        if after is not self.group:  # a new group: what the old one held is gone
            self.group, self.members = after, []
        if after is not None and b in after.buckets and after.buckets[b][COUNT] == had + 1:
            self.members.append((e, ts, contrib))
        if fire is not None and self._is_it(fire):
            a = self.alert
            self.done = [m for m in self.members if a.window_start_ms <= m[1] < a.window_end_ms]
            self.approximate = after is not None and after.sketch is not None
        return fire

    def _is_it(self, fire: Fire) -> bool:
        rid = self.state.id
        return alert_id(rid, self.state.group_values(fire.key), fire.fired_at) == self.alert.id


def explain(alert: Alert, ruleset: RuleSet, options: EngineOptions, decoder: Callable[[], Decoder],
            source: Source) -> Explanation:  # fmt: skip
    """Pass 2: the events the engine had in ``alert``'s window when it fired."""
    rule = next(r for r in ruleset.rules if r.id == alert.rule)
    alone = dataclasses.replace(rule, spec=dataclasses.replace(rule.spec, enabled=True))
    engine = Engine(dataclasses.replace(ruleset, rules=(alone,)), options, generated=False)
    (state,) = engine.states
    watch = _Watch(state, alert)
    state.apply = watch.apply  # type: ignore[method-assign]  # the reference loop calls it per event
    pipeline = Pipeline(decoder(), engine, quiet_telemetry())
    for batch in source():
        pipeline.feed(batch)
        if watch.done is not None:
            break
    if watch.done is None:  # pass 1 saw it fire: the same input must fire it again
        raise RuntimeError(f"alert {alert.id} did not fire again on the second pass (did the input change?)")
    return Explanation(alert, rule, watch.done, watch.approximate)


# -- the table for people ----------------------------------------------------------

_COLUMNS = (("TIME", "ts"), ("ACTOR", "actor.id"), ("ACTION", "action_name"), ("RESOURCE", "resource.name"),
            ("OUTCOME", "outcome"))  # fmt: skip


def _cell(v: Any, width: int) -> str:
    text = "-" if v is None else v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return _cell(v, 14)
    return f"{v:,}" if isinstance(v, int) or v.is_integer() else f"{v:,.2f}"


def write_table(x: Explanation, out: TextIO) -> None:
    a, spec = x.alert, x.rule.spec
    group = ", ".join(f"{k}={_cell(v, 60)}" for k, v in a.group.items()) or "(no group)"
    agg = spec.aggregate if spec.aggregate_field is None else f"{spec.aggregate} of {spec.aggregate_field}"
    (op, n), = a.threshold.items()
    out.write(f"alert {a.id}: rule {a.rule} ({a.severity}), {group}\n")
    out.write(f"window {format_ts(a.window_start_ms)} .. {format_ts(a.window_end_ms)} ({a.window or 'one event'}), "
              f"fired at {format_ts(a.fired_at_ms)}; {agg} = {_number(a.value)} ({op} {_number(n)})\n")  # fmt: skip
    out.write(f"{a.summary}\n\n")
    head = f"{'#':>5}  {'TIME':<24}  {'ACTOR':<24}  {'ACTION':<16}  {'RESOURCE':<24}  {'OUTCOME':<8}"
    shown = spec.aggregate_field is not None
    if spec.aggregate_field is not None:
        head += f"  {spec.aggregate_field[:14]:>14}"
    head += f"  {'RUNNING ' + spec.aggregate:>16}"
    out.write(head + "\n")
    widths = (24, 24, 16, 24, 8)
    for i, ((e, ts, v), r) in enumerate(zip(x.events, x.running(), strict=True), 1):
        cells = [format_ts(ts)] + [_cell(getter(path)(e), w) for (_, path), w in zip(_COLUMNS[1:], widths[1:], strict=True)]
        if cells[2] == "-":
            cells[2] = _cell(e.get("action"), 16)
        line = f"{i:>5}  " + "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True))
        if shown:
            line += f"  {_number(v):>14}"
        out.write(line + f"  {_number(r):>16}\n")
    value = x.value()
    same = value == a.value
    out.write(f"\n{len(x.events)} event(s) in the window; {agg} = {_number(value)}"
              + ("" if same else f" (the alert says {_number(a.value)})") + "\n")  # fmt: skip
    for note in x.notes():
        out.write(f"note: {note}\n")
