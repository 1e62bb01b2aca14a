"""Factories for engine tests: rule sets from YAML text, events at given times."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.engine import Alert, Engine, EngineOptions
from monitor.rules.loader import RuleSet, load_texts

MIN = 60_000
T0 = 1_795_737_600_000  # 2026-11-27T00:00:00Z, a whole day, hour and minute


def ruleset(yaml_text: str) -> RuleSet:
    return load_texts([("test.yaml", yaml_text.encode())])


def engine(yaml_text: str, **options: Any) -> Engine:
    generated = options.pop("generated", True)
    return Engine(ruleset(yaml_text), EngineOptions(**options), generated=generated)


def rule(**fields: Any) -> str:
    """One rule as YAML flow text; match defaults to everything, id to r."""
    import orjson

    body = {"id": "r", "severity": "high", **fields}
    return "rules:\n  - " + orjson.dumps(body).decode() + "\n"


def ev(ts: int, actor: str = "a", **fields: Any) -> tuple[dict[str, Any], int]:
    return ({"ts": ts, "actor": {"id": actor}, **fields}, ts)


def run(eng: Engine, events: Iterable[tuple[dict[str, Any], int]], batch: int = 1) -> list[Alert]:
    events = list(events)
    out: list[Alert] = []
    for i in range(0, len(events), batch):
        out.extend(eng.process(events[i : i + batch]))
    return out


def fired(alerts: Iterable[Alert]) -> list[tuple[str, Any, int]]:
    """(rule, value, fired_at offset from T0) for compact assertions."""
    return [(a.rule, a.value, a.fired_at_ms - T0) for a in alerts]
