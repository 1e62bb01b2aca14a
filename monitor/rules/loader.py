"""Rule loading in stages: parse, validate, compile; the caller swaps the result in.

``load_rules`` either returns a complete, compiled :class:`RuleSet` or raises
:class:`RuleLoadError` with every error of every file. It never returns half a rule
set, so a bad edit can never replace a good rule set in a running daemon. Warnings do
not stop a load: they travel with the :class:`RuleSet` for ``check`` and the daemon to
report. They are judged only on a set without errors, because a rule that failed to
validate may be the one that used a list now reported as unused.
"""

from __future__ import annotations

import collections
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.event import Event, Tally
from monitor.inputs.actors import ActorTable
from monitor.inputs.custom import CustomInput
from monitor.problems import sort_key
from monitor.rules.compile import compile_test, index_choice, threshold_check
from monitor.rules.errors import Pos, Problem, RuleLoadError
from monitor.rules.exceptions import compile_exceptions
from monitor.rules.model import Condition, RuleSpec
from monitor.rules.schedule import Schedule
from monitor.rules.validate import FileDoc, Validator
from monitor.rules.yamlpos import YamlProblem, load

RULE_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIXES = (".test.yaml", ".test.yml")


@dataclass(eq=False)
class CompiledRule:
    spec: RuleSpec
    order: int
    test: Callable[[Event, int], bool]  # every condition but the indexed one, and `when`
    index: Condition | None  # the eq/in condition the engine looks the rule up by
    threshold: Callable[[Any], bool]
    mismatch: Tally
    excepted: Callable[[Event, int], bool] | None = None  # a live exception lets the event through

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    files: tuple[str, ...]
    digest: str  # SHA-256 over the files' names and bytes: which rule set is in force
    lists: dict[str, list[Any]] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()
    # Who is who and the custom input formats: read by every consumer from here (README
    # "Connect your data"), so the daemon, replay, test and explain see the same events.
    actors: ActorTable | None = None
    inputs: dict[str, CustomInput] = field(default_factory=dict)
    # (name, bytes) of each file as loaded: what a reload compares, and what the daemon
    # keeps as the last good set (monitor.rulestore).
    sources: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)

    @property
    def enabled(self) -> tuple[CompiledRule, ...]:
        return tuple(r for r in self.rules if r.spec.enabled)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "file": r.spec.file,
                "line": r.spec.pos.line,
                "severity": r.spec.severity,
                "enabled": r.spec.enabled,
                "description": r.spec.description,
                "window": r.spec.source.get("window"),
                "group_by": list(r.spec.group_by),
            }
            for r in self.rules
        ]


def rule_files(path: Path) -> list[Path]:
    """The YAML files that make up a rule set: one file, or a folder's, tests excluded."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.name.endswith(RULE_SUFFIXES)
        and not p.name.endswith(TEST_SUFFIXES)
        and not hidden(p.relative_to(path))
    )


def hidden(relative: Path) -> bool:
    """Dot-folders and dot-files are not rules: a Kubernetes ConfigMap mounted as a folder
    keeps a second copy of every file under ``..data``, and editors leave ``.#`` files."""
    return any(part.startswith(".") for part in relative.parts)


def load_rules(path: str | Path, *, now_ms: int | None = None) -> RuleSet:
    """Parse, validate and compile every rule file under ``path``; ``now_ms`` (default:
    the wall clock) is when expired exceptions are judged, for the warning only."""
    return load_texts(read_sources(path), now_ms=now_ms)


def read_sources(path: str | Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of the rule set's files, or :class:`RuleLoadError` saying why none."""
    root = Path(path)
    try:
        files = rule_files(root)
    except FileNotFoundError as exc:
        raise RuleLoadError([Problem(str(root), 1, 1, str(exc).split(": ", 1)[1], code="E-CANNOT-READ")]) from None
    if not files:
        raise RuleLoadError([Problem(str(root), 1, 1, "no rule files (*.yaml, *.yml) found", code="E-NO-RULE-FILES")])
    out: list[tuple[str, bytes]] = []
    for p in files:
        try:
            out.append((str(p), p.read_bytes()))
        except OSError as exc:  # e.g. listed, then gone: a folder being rewritten
            raise RuleLoadError([Problem(str(p), 1, 1, f"cannot read: {exc.strerror or exc}", code="E-CANNOT-READ")]) from None
    return out


def sources_digest(sources: list[tuple[str, bytes]]) -> str:
    """SHA-256 over the files' names and bytes: :attr:`RuleSet.digest` of the set they make."""
    digest = hashlib.sha256()
    for name, raw in sources:
        digest.update(name.encode() + b"\0" + raw + b"\0")
    return digest.hexdigest()


def load_texts(sources: list[tuple[str, bytes]], *, now_ms: int | None = None) -> RuleSet:
    problems: list[Problem] = []
    docs: list[FileDoc] = []
    for name, raw in sources:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(name, 1, 1, f"not UTF-8 text (byte {exc.start})", code="E-NOT-UTF8"))
            continue
        try:
            docs.append(FileDoc(name, load(text)))
        except YamlProblem as exc:
            problems.append(Problem(name, exc.pos.line, exc.pos.col, exc.message, code=exc.code))
    validator = Validator(now_ms=int(time.time() * 1000) if now_ms is None else now_ms)
    specs = validator.validate(docs)
    problems.extend(validator.problems)
    if problems:
        raise RuleLoadError(problems)
    return RuleSet(
        rules=compile_specs(specs),
        files=tuple(name for name, _ in sources),
        digest=sources_digest(sources),
        lists=validator.lists,
        schedules=validator.schedules,
        warnings=tuple(sorted(validator.warnings, key=sort_key)),
        actors=ActorTable(validator.actors) if validator.actors else None,
        inputs=validator.inputs,
        sources=tuple(sources),
    )


def compile_specs(specs: list[RuleSpec]) -> tuple[CompiledRule, ...]:
    # Index every rule on the field most rules can be indexed on, so an event needs as
    # few field reads as possible to find its candidate rules.
    shared = collections.Counter(
        c.path
        for s in specs
        for c in s.conditions
        if c.op in ("eq", "in")
    )
    preferred = [p for p, _ in shared.most_common()]
    out = []
    for order, spec in enumerate(specs):
        mismatch = Tally()
        index = index_choice(spec, preferred)
        rest = [c for c in spec.conditions if c is not index]
        excepted = compile_exceptions(spec.exceptions, mismatch)
        out.append(
            CompiledRule(
                spec=spec,
                order=order,
                test=compile_test(rest, spec.when, mismatch, excepted),
                index=index,
                threshold=threshold_check(spec.threshold_op, spec.threshold),
                mismatch=mismatch,
                excepted=excepted,
            )
        )
    return tuple(out)


__all__ = ["CompiledRule", "Pos", "RuleLoadError", "RuleSet", "load_rules", "load_texts", "read_sources", "sources_digest"]
