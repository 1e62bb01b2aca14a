"""Which rules count per partition and which after repartitioning, by their own group key.

Producers key records by one field (``kafka.key_field``), so a partition holds every event
of each of its keys, and a rule grouped by that field counts each group whole in one
partition's engine. A rule grouped by anything else (``group_by: [customer_id]``: many
accounts reading one customer), or not grouped at all but counting over a window (every
card-table read in the shop together), has its groups spread over partitions: counted
per partition, a threshold the whole group passes may never be met. Such a rule is
evaluated after repartitioning, as Kafka Streams' ``groupBy`` does: each event it
matches goes, reduced to the fields it reads, to an internal topic keyed by the rule's
group key, so that all of a group's events meet in one partition of that topic, where an
engine of the repartitioned rules counts them (:mod:`monitor.sources.repartition` moves
the records; this module only decides).

With ``kafka.keyed: false`` (producers that key by something else: Kafka Connect,
Debezium, another partitioner) no group is whole in a partition, so every rule that
remembers a group (a window, or a suppression) is repartitioned.

Rules with the same ``group_by`` share a :class:`Route`: an event they match is forwarded
once for them all. Forwarded events carry their route's name in :data:`ROUTE_FIELD`, and
the repartitioned engine looks its rules up by it (it is their index), so an event that
came by one route is never counted by a rule of another: an event two routes forward is
two records, each counted once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.engine.dispatch import matcher
from monitor.event import PROVENANCE, Event, getter
from monitor.rules.loader import CompiledRule, RuleSet
from monitor.rules.model import Condition, RuleSpec

ROUTE_FIELD = "@route"  # the route a forwarded event came by
ALWAYS_FORWARDED = ("id", PROVENANCE)  # alerts' sample ids and where each event was read
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_@][A-Za-z0-9_.@-]*)\}")  # as monitor.engine.alert renders


def repartitioned(spec: RuleSpec, key_field: str, keyed: bool = True) -> bool:
    """Whether the rule keeps state for groups that may span partitions (then it is
    evaluated after repartitioning). A rule without a window that suppresses nothing
    remembers nothing, so any partition judges its events alone; one with neither group
    nor window is one group for the whole rule, and only its suppression is per
    partition (funnelling every match into one partition for that is not worth it)."""
    if spec.window_ms is None and spec.suppress_ms == 0:
        return False
    if spec.group_by:
        return not keyed or key_field not in spec.group_by
    return spec.window_ms is not None


@dataclass(frozen=True)
class Route:
    """The rules of one ``group_by``: what they match is forwarded keyed by its group."""

    name: str  # the group_by as JSON ("[]" for none): stable across instances and reloads
    group_by: tuple[str, ...]
    rules: tuple[CompiledRule, ...]
    fields: tuple[str, ...]  # the top-level fields its rules read: all a forwarded event keeps
    _match: tuple[Callable[[Event, int], bool], ...] = dataclasses.field(repr=False, default=())
    _group: tuple[Callable[[Event], Any], ...] = dataclasses.field(repr=False, default=())

    def matches(self, e: Event, ts: int) -> bool:
        return any(m(e, ts) for m in self._match)

    def key(self, e: Event) -> bytes:
        """The route and the group's values: what picks the internal partition, so every
        event of the group meets in one. Canonical, as the engine tells groups apart: keys
        of objects sorted, a float that is a whole number written as the integer."""
        return orjson.dumps([self.name, *(_canonical(g(e)) for g in self._group)], option=orjson.OPT_SORT_KEYS)

    def reduce(self, e: Event) -> Event:
        out = {f: e[f] for f in self.fields if f in e}
        out[ROUTE_FIELD] = self.name
        return out


@dataclass(frozen=True)
class Split:
    """One rule set cut in two: ``local`` is what each source partition's engine counts,
    ``internal`` what the internal topic's engines count; ``routes`` say what is forwarded."""

    local: RuleSet
    internal: RuleSet
    routes: tuple[Route, ...]

    @classmethod
    def of(cls, ruleset: RuleSet, key_field: str, keyed: bool = True) -> Split:
        moved = [r for r in ruleset.enabled if repartitioned(r.spec, key_field, keyed)]
        if not moved:
            return cls(ruleset, _view(ruleset, (), "repartitioned"), ())
        ids = {r.id for r in moved}
        by_group: dict[tuple[str, ...], list[CompiledRule]] = {}
        for r in moved:
            by_group.setdefault(r.spec.group_by, []).append(r)
        routes = tuple(_route(group_by, rules) for group_by, rules in by_group.items())
        internal = tuple(_looked_up_by_route(r, route.name) for route in routes for r in route.rules)
        local = _view(ruleset, tuple(r for r in ruleset.rules if r.id not in ids), "local")
        return cls(local, _view(ruleset, tuple(sorted(internal, key=lambda r: r.order)), "repartitioned"), routes)

    def forward(self, e: Event, ts: int) -> list[tuple[bytes, Event]]:
        """The (key, reduced event) of each route the event is forwarded by, in route order."""
        return [(route.key(e), route.reduce(e)) for route in self.routes if route.matches(e, ts)]


class Router:
    """The daemon's split of each rule set it runs, and which streams are the internal
    topic's partitions (their engines count the repartitioned rules)."""

    def __init__(self, key_field: str, keyed: bool, topic: str) -> None:
        self.key_field = key_field
        self.keyed = keyed
        self.topic = topic
        self._last: tuple[RuleSet, Split] | None = None

    def split(self, ruleset: RuleSet) -> Split:
        if self._last is None or self._last[0] is not ruleset:
            self._last = (ruleset, Split.of(ruleset, self.key_field, self.keyed))
        return self._last[1]

    def internal(self, stream: Hashable) -> bool:
        return getattr(stream, "topic", None) == self.topic

    def view(self, stream: Hashable, ruleset: RuleSet) -> RuleSet:
        s = self.split(ruleset)
        return s.internal if self.internal(stream) else s.local


def _view(ruleset: RuleSet, rules: tuple[CompiledRule, ...], name: str) -> RuleSet:
    # Its own digest: the generated loop of each view is registered under it for tracebacks.
    return dataclasses.replace(ruleset, rules=rules, digest=f"{ruleset.digest}+{name}")


def _route(group_by: tuple[str, ...], rules: list[CompiledRule]) -> Route:
    fields: dict[str, None] = dict.fromkeys(ALWAYS_FORWARDED)
    for r in rules:
        for path in _paths(r.spec):
            fields[path.split(".", 1)[0]] = None
    # JSON, not a join: a field path may hold a comma, and two routes must never share a name.
    return Route(orjson.dumps(list(group_by)).decode(), group_by, tuple(rules), tuple(fields),
                 tuple(matcher(r) for r in rules), tuple(getter(p) for p in group_by))  # fmt: skip


def _paths(spec: RuleSpec) -> list[str]:
    """Every field the rule reads: conditions, exceptions, group, aggregate, templates."""
    paths = [c.path for c in spec.conditions]
    paths += [c.path for x in spec.exceptions for c in x.conditions]
    paths += list(spec.group_by)
    if spec.aggregate_field:
        paths.append(spec.aggregate_field)
    for template in spec.annotations.values():
        paths += _PLACEHOLDER.findall(template)
    return paths


def _canonical(v: Any) -> Any:
    if v.__class__ is float and v.is_integer():
        return int(v)
    return v


def _looked_up_by_route(rule: CompiledRule, route: str) -> CompiledRule:
    """The rule as the internal engine runs it: indexed by its route, so events of other
    routes never reach its conditions; its own index becomes one of them (``matcher``
    tests it for the reference loop)."""
    index = Condition(ROUTE_FIELD, "eq", route, rule.spec.pos)
    return dataclasses.replace(rule, index=index, test=matcher(rule))
