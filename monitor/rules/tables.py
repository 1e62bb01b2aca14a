"""Validation of the rule files' ``actors:`` and ``inputs:`` tables.

They live in the rule files, not the daemon's config, because ``replay``, ``test`` and
``explain`` must see the same events the daemon sees: a custom input or an actor type
that only the daemon knew would make a rule pack's own tests judge different events.
Like lists, both tables are shared by every file of a rule set, each name defined once;
every problem is reported at its FILE:LINE:COL with the rest.
"""

from __future__ import annotations

from typing import Any

from monitor.inputs import FORMATS
from monitor.inputs.actors import ACTOR_TYPES, UNKNOWN, BadPattern, glob_regex
from monitor.inputs.base import ACTIONS, OUTCOMES
from monitor.inputs.custom import CustomInput
from monitor.problems import did_you_mean
from monitor.rules.context import FIELD, NAME, FileDoc, ValidationContext
from monitor.rules.yamlpos import Path

_INPUT_KEYS = ("from", "fields", "constants")
_TYPES = tuple(t for t in ACTOR_TYPES if t != UNKNOWN)
# constants whose values the canonical vocabulary fixes (README "Connect your data")
_VOCABULARY: dict[str, tuple[str, ...]] = {"action": ACTIONS, "outcome": OUTCOMES, "actor.type": ACTOR_TYPES}


class TableChecks(ValidationContext):
    """Checks ``actors`` and ``inputs``, filling :attr:`actors` and :attr:`inputs`."""

    def _tables(self, f: FileDoc) -> None:
        data = f.doc.data if isinstance(f.doc.data, dict) else {}
        if data.get("actors") is not None:
            self._actors(f, data["actors"])
        if data.get("inputs") is not None:
            self._inputs(f, data["inputs"])

    # -- actors ----------------------------------------------------------------------

    def _actors(self, f: FileDoc, table: Any) -> None:
        if not isinstance(table, dict):
            self._report(f, f.doc.where(("actors",)), "'actors' must be a mapping of actor types to lists of account patterns", code="E-BAD-TYPE")
            return
        for kind, patterns in table.items():
            path: Path = ("actors", kind)
            if kind not in _TYPES:
                hint = " (accounts no pattern matches are unknown)" if kind == UNKNOWN else did_you_mean(kind, _TYPES)
                self._report(
                    f, f.doc.key_at(path), f"actors: unknown actor type {kind!r} (expected {', '.join(_TYPES)}){hint}",
                    code="E-UNKNOWN-KEY",
                )  # fmt: skip
                continue
            where = f"{f.name}:{f.doc.key_at(path).line}"
            first = self._defined_at.setdefault(("actors", kind), where)
            if first != where:
                self._report(f, f.doc.key_at(path), f"actor type {kind!r} is already defined at {first}", code="E-DUPLICATE-NAME")
                continue
            if not isinstance(patterns, list):
                self._report(f, f.doc.where(path), f"actors: {kind!r} must be a list of account patterns", code="E-BAD-TYPE")
                continue
            good: list[str] = []
            for i, p in enumerate(patterns):
                if not isinstance(p, str):
                    self._report(f, f.doc.where((*path, i)), f"actors: {kind!r}: a pattern must be text", code="E-BAD-TYPE")
                    continue
                try:
                    glob_regex(p)
                except BadPattern as exc:
                    self._report(f, f.doc.where((*path, i)), f"actors: {kind!r}: bad pattern {p!r}: {exc}", code="E-BAD-PATTERN")
                    continue
                good.append(p)
            self.actors[kind] = tuple(good)

    # -- inputs ----------------------------------------------------------------------

    def _inputs(self, f: FileDoc, table: Any) -> None:
        if not isinstance(table, dict):
            self._report(f, f.doc.where(("inputs",)), "'inputs' must be a mapping of input names", code="E-BAD-TYPE")
            return
        for name, spec in table.items():
            path: Path = ("inputs", name)
            if not NAME.match(name):
                self._report(f, f.doc.key_at(path), f"invalid input name {name!r}", code="E-BAD-NAME")
                continue
            if name in FORMATS:
                self._report(
                    f, f.doc.key_at(path), f"input {name!r} has the name of a built-in format; choose another",
                    code="E-BUILTIN-FORMAT",
                )  # fmt: skip
                continue
            where = f"{f.name}:{f.doc.key_at(path).line}"
            first = self._defined_at.setdefault(("inputs", name), where)
            if first != where:
                self._report(f, f.doc.key_at(path), f"input {name!r} is already defined at {first}", code="E-DUPLICATE-INPUT")
                continue
            parsed = self._input(f, path, name, spec)
            if parsed is not None:
                self.inputs[name] = parsed

    def _input(self, f: FileDoc, path: Path, name: str, spec: Any) -> CustomInput | None:
        doc = f.doc
        if not isinstance(spec, dict):
            self._report(f, doc.where(path), f"input {name!r} must be a mapping with from, fields, constants", code="E-BAD-TYPE")
            return None
        before = len(self.problems)
        for key in spec:
            if key not in _INPUT_KEYS:
                self._report(
                    f, doc.key_at((*path, key)),
                    f"input {name!r}: unknown key {key!r} (expected from, fields, constants)" + did_you_mean(key, _INPUT_KEYS),
                    code="E-UNKNOWN-KEY",
                )  # fmt: skip
        base = spec.get("from")
        if "from" not in spec:
            self._report(f, doc.key_at(path), f"input {name!r}: 'from' (the built-in format it maps) is required", code="E-MISSING-KEY")
        elif not isinstance(base, str):
            self._report(f, doc.where((*path, "from")), f"input {name!r}: from must be a format name", code="E-BAD-TYPE")
        elif base not in FORMATS:
            self._report(
                f, doc.where((*path, "from")),
                f"input {name!r}: from: unknown format {base!r} (a built-in one: {', '.join(FORMATS)})"
                + did_you_mean(base, list(FORMATS)),
                code="E-UNKNOWN-FORMAT",
            )  # fmt: skip
        fields = self._mapping(f, (*path, "fields"), name, spec.get("fields", {}))
        for target, source in fields.items():
            if not isinstance(source, str) or not FIELD.match(source):
                self._report(
                    f, doc.where((*path, "fields", target)),
                    f"input {name!r}: fields: {target!r} must name a field of the {base or 'base'} event, like user.name",
                    code="E-BAD-FIELD",
                )  # fmt: skip
        constants = self._mapping(f, (*path, "constants"), name, spec.get("constants", {}))
        for target, value in constants.items():
            allowed = _VOCABULARY.get(target)
            if allowed is not None and value not in allowed:
                self._report(
                    f, doc.where((*path, "constants", target)),
                    f"input {name!r}: constants: {target} must be one of {', '.join(allowed)}, got {value!r}",
                    code="E-BAD-VALUE",
                )  # fmt: skip
        if len(self.problems) != before:
            return None
        return CustomInput.model_validate(spec)

    def _mapping(self, f: FileDoc, path: Path, name: str, value: Any) -> dict[str, Any]:
        """A ``fields`` or ``constants`` mapping whose keys are canonical field paths."""
        if not isinstance(value, dict):
            self._report(f, f.doc.where(path), f"input {name!r}: {path[-1]} must be a mapping of field paths", code="E-BAD-TYPE")
            return {}
        for target in value:
            if not FIELD.match(target) or target == "raw" or target.startswith("raw."):
                why = "raw holds the original record" if FIELD.match(target) else "not a field path like actor.id"
                self._report(f, f.doc.key_at((*path, target)), f"input {name!r}: {path[-1]}: {target!r}: {why}", code="E-BAD-FIELD")
        return value
