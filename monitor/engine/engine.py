"""The engine: finds each event's candidate rules, applies them, and builds alerts.

It knows nothing of Kafka, files or wall clocks: events come in batches of
``(event, event time)``, and the clock that forgets idle groups is the newest event
time seen (replay) or whatever the caller passes (the daemon passes the minimum over
its partitions). That is what makes ``replay`` and the daemon give the same alerts, and,
through the episode table (:mod:`monitor.engine.episodes`) the same clock drives, the
same episodes and resolutions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from monitor import defaults
from monitor.engine.alert import Alert, alert_id, describe_window, render
from monitor.engine.dispatch import Dispatch, build, reference
from monitor.engine.episodes import Episode, Episodes, Resolution
from monitor.engine.reload import Plan, plan
from monitor.engine.sums import SUM_BOUND
from monitor.engine.windows import Fire, RuleState
from monitor.event import Event, getter
from monitor.rules.loader import CompiledRule, RuleSet
from monitor.units import format_value, limit_sentence, plain_summary

SWEEP_EVERY_MS = 60_000
_NEVER = -(2**62)


@dataclass(frozen=True)
class EngineOptions:
    allowed_lateness_ms: int = defaults.ALLOWED_LATENESS_MS
    max_groups_per_rule: int = defaults.MAX_GROUPS_PER_RULE
    distinct_exact_limit: int = defaults.DISTINCT_EXACT_LIMIT
    # Applied to each event field a template names (path, value), before the value is cut
    # to the alert's size budget: the daemon's masking (monitor.privacy.Masker.field), which
    # must see a card number whole to recognise it.
    template_field: Callable[[str, Any], Any] | None = None


def _in_rule_order(fires: list[tuple[int, Fire, Event]]) -> list[tuple[int, Fire, Event]]:
    """One event's alerts in rule order, whatever order the generated loop found them in."""
    out: list[tuple[int, Fire, Event]] = []
    run: list[tuple[int, Fire, Event]] = []
    for f in fires:
        if run and run[-1][2] is not f[2]:
            out.extend(sorted(run, key=lambda x: x[0]))
            run = []
        run.append(f)
    out.extend(sorted(run, key=lambda x: x[0]))
    return out


class Engine:
    def __init__(self, ruleset: RuleSet, options: EngineOptions | None = None, *, generated: bool = True) -> None:
        """A restarted daemon's state comes back through :mod:`monitor.engine.snapshot`,
        open episodes included."""
        self.ruleset = ruleset
        self.options = options or EngineOptions()
        self.newest: int | None = None  # newest event time seen overall
        self.clock: int | None = None  # the forgetting clock of the last batch
        self._last_sweep: int | None = None
        self._generated = generated
        self.episodes = Episodes(self.options.allowed_lateness_ms)
        rules = list(ruleset.enabled)
        self.states: list[RuleState] = [self._state(r) for r in rules]
        self._dispatch = self._loop(rules)

    def _loop(self, rules: list[CompiledRule]) -> Dispatch:
        if self._generated:
            return build(rules, self.states, self.ruleset.digest)
        return reference(rules, self.states)

    def reload(self, ruleset: RuleSet) -> Plan:
        """Swap ``ruleset`` in between batches (:mod:`monitor.engine.reload`): rules of the
        same shape keep their state, the others start empty, and the open episodes of
        rules that lost their state end (collected with :meth:`resolutions`)."""
        decided = plan(self.ruleset, ruleset)
        kept = {s.id: s for s in self.states if s.id in decided.keep}
        rules = list(ruleset.enabled)
        states = []
        for r in rules:
            state = kept.get(r.id)
            if state is None:
                state = self._state(r)
            else:
                state.rebind(r.spec, r.threshold, r.mismatch)
            states.append(state)
        self.episodes.end_rules(set(decided.drop), self.clock)
        self.ruleset, self.states = ruleset, states
        self._dispatch = self._loop(rules)
        return decided

    def _state(self, rule: CompiledRule) -> RuleState:
        o = self.options
        state = RuleState(
            rule.spec,
            rule.threshold,
            allowed_lateness_ms=o.allowed_lateness_ms,
            max_groups=o.max_groups_per_rule,
            distinct_exact_limit=o.distinct_exact_limit,
        )
        state.mismatch = rule.mismatch
        return state

    def process(self, batch: Iterable[tuple[Event, int]], clock: int | None = None) -> list[Alert]:
        """Apply a batch in order; ``clock`` fixes the forgetting clock for the batch.

        The batch's resolutions are then waiting in :meth:`resolutions`."""
        start = self.newest if self.newest is not None else _NEVER
        fires, newest = self._dispatch(batch, clock, start)
        if newest != _NEVER:
            self.newest = newest
        now = self.newest if clock is None else clock
        if now is not None:
            self.clock = now
        self._maybe_sweep(now)
        if len(fires) > 1:
            fires = _in_rule_order(fires)
        alerts = self._episodes(fires)
        if now is not None:
            self.episodes.advance(now)
        return alerts

    def _episodes(self, fires: list[tuple[int, Fire, Event]]) -> list[Alert]:
        """The batch's holds through the episode table, rule by rule in event order (the
        order that matters: episodes are per rule and group), and its fires made alerts
        carrying their episode's start, in the order the engine reports them."""
        events = {id(f): e for _, f, e in fires}
        made: dict[int, Alert] = {}
        table = self.episodes
        for state in self.states:
            held = state.held
            if not held:
                continue
            rule, resolve_after = state.id, state.spec.resolve_after_ms
            for t, key, now, fire in held:
                if fire is None:
                    table.hold(rule, key, t, now)
                else:
                    build = partial(self._alert, state, fire, events[id(fire)])
                    made[id(fire)] = table.fire(rule, key, t, now, resolve_after, build)
            held.clear()
        return [made[id(f)] for _, f, _ in fires]

    def resolutions(self) -> list[Resolution]:
        """The episodes final since the last call (call it after :meth:`process`), by
        resolved_at."""
        return self.episodes.take()

    def resolve_idle(self, wall_ms: int) -> list[Resolution]:
        """For a daemon whose source is idle: resolve the open episodes whose resolved_at
        ``wall_ms`` has passed, at that same resolved_at (with any not yet collected)."""
        return self.episodes.resolve_idle(wall_ms)

    def resolve_all(self) -> list[Resolution]:
        """At the end of the input (replay): every open episode resolves at its
        resolved_at, as it would for a daemon whose source then stayed idle."""
        return self.episodes.resolve_all()

    def open_episodes(self) -> list[Episode]:
        return self.episodes.open()

    def warmed(self) -> None:
        """The end of a warm-up (``replay --warmup``): its events trained the windows,
        suppressions and clocks, and the alerts they raised were held back, so their
        episodes are forgotten rather than resolved (nobody was told they opened)."""
        self.episodes = Episodes(self.options.allowed_lateness_ms)

    def _maybe_sweep(self, now: int | None) -> None:
        if now is None:
            return
        if self._last_sweep is None:
            self._last_sweep = now
        elif now - self._last_sweep >= SWEEP_EVERY_MS:
            self._last_sweep = now
            for s in self.states:
                s.sweep(now)

    def _alert(self, state: RuleState, fire: Fire, e: Event, episode_start: int) -> Alert:
        spec = state.spec
        end, value, fired_at = fire.end, fire.value, fire.fired_at
        saturated = False
        if state.kind == "sum" and not -SUM_BOUND < value < SUM_BOUND:
            # at the bound, or an integer sum beyond what a float (and JSON) can carry
            saturated = True
            value = SUM_BOUND if value > 0 else -SUM_BOUND
        gvals = state.group_values(fire.key)
        group = dict(zip(spec.group_by, gvals, strict=True))
        if end is None:
            start_ms, end_ms = fired_at, fired_at
        else:
            start_ms, end_ms = (end - state.nb + 1) * state.res, (end + 1) * state.res
        window = describe_window(spec.window_ms)
        limit = limit_sentence(value, {spec.threshold_op: spec.threshold}, spec.unit, window)
        values: dict[str, Any] = {
            **group,
            "value": value,
            "window": window or "one event",
            "rule": spec.id,
            "severity": spec.severity,
            "threshold": spec.threshold,
            "value_text": format_value(value, spec.unit),
            "limit_text": limit,
        }
        hook = self.options.template_field
        lookup = (lambda name: getter(name)(e)) if hook is None else (lambda name: hook(name, getter(name)(e)))
        annotations = {k: render(t, values, lookup) for k, t in spec.annotations.items()}
        return Alert(
            id=alert_id(spec.id, gvals, fired_at),
            rule=spec.id,
            severity=spec.severity,
            description=spec.description,
            group=group,
            value=value,
            threshold={spec.threshold_op: spec.threshold},
            unit=spec.unit,
            window=window,
            window_start_ms=start_ms,
            window_end_ms=end_ms,
            fired_at_ms=fired_at,
            event_count=fire.events,
            summary=annotations.get("summary") or plain_summary(spec.id, gvals, limit),
            labels=dict(spec.labels),
            annotations=annotations,
            sample_event_ids=[eid for eid, _ in fire.samples if eid is not None],
            sample_provenance=[str(w) for _, w in fire.samples if w is not None],
            saturated=saturated,
            estimated=fire.estimated,
            episode_start_ms=episode_start,
        )

    # -- introspection for telemetry and tests ----------------------------------------

    @property
    def source(self) -> str | None:
        """The generated dispatch loop's Python source (``check --explain``); None for
        the reference loop."""
        return getattr(self._dispatch, "source", None)

    def active_groups(self) -> dict[str, int]:
        return {s.id: len(s.groups) for s in self.states}
