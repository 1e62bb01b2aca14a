"""Validation of which events a rule counts: its ``match`` conditions and ``when`` schedule.

Each ``match`` entry is a field path with one or more operators; every operator has its
own idea of a valid value (a list, text, a regex RE2 accepts, a network), and a
``$name`` value is resolved here against the rule set's lists. ``when`` names a schedule,
which must have been defined without errors. Kept apart from the rest of a rule because
the operator table (``operators.py``) is the part that grows.
"""

from __future__ import annotations

from typing import Any

from monitor.problems import did_you_mean
from monitor.rules.context import FIELD, NAME, FileDoc, ValidationContext
from monitor.rules.model import MATCH_OPS, Condition
from monitor.rules.operators import OPERATORS, BadOperand
from monitor.rules.schedule import Schedule
from monitor.rules.yamlpos import Path

_LIST_OPS = tuple(name for name, o in OPERATORS.items() if o.takes_list_ref)


class ConditionChecks(ValidationContext):
    """Checks ``match`` into :class:`Condition` objects and ``when`` into a schedule."""

    def _match(self, f: FileDoc, path: Path, match: Any, rid: str | None) -> list[Condition]:
        doc = f.doc
        out: list[Condition] = []
        if not isinstance(match, dict):
            self._report(f, doc.where((*path, "match")), "match must be a mapping of field: condition", rid, code="E-BAD-TYPE")
            return out
        for fld, cond in match.items():
            fpath: Path = (*path, "match", fld)
            if not FIELD.match(fld):
                self._report(f, doc.key_at(fpath), f"invalid field path {fld!r}", rid, code="E-BAD-FIELD")
                continue
            if isinstance(cond, dict):
                if not cond:
                    self._report(f, doc.where(fpath), f"{fld}: no operator given", rid, code="E-NO-OPERATOR")
                for op, value in cond.items():
                    c = self._condition(f, (*fpath, op), fld, op, value, rid)
                    if c is not None:
                        out.append(c)
            elif isinstance(cond, list):
                self._report(f, doc.where(fpath), f"{fld}: a list needs an operator, e.g. {{in: [...]}}", rid, code="E-NO-OPERATOR")
            else:
                c = self._condition(f, fpath, fld, "eq", cond, rid, bare=True)
                if c is not None:
                    out.append(c)
        return out

    def _condition(
        self, f: FileDoc, path: Path, fld: str, op: str, value: Any, rid: str | None, *, bare: bool = False
    ) -> Condition | None:
        doc = f.doc
        pos = doc.where(path)

        def bad(msg: str, code: str = "E-BAD-OPERAND") -> None:
            self._report(f, pos, f"{fld}: {msg}", rid, code=code)

        if op not in MATCH_OPS:
            self._report(
                f, doc.key_at(path), f"{fld}: unknown operator {op!r} (one of {', '.join(MATCH_OPS)})" + did_you_mean(op, MATCH_OPS),
                rid, code="E-UNKNOWN-OPERATOR",
            )  # fmt: skip
            return None
        if isinstance(value, str) and value.startswith("$") and NAME.match(value[1:]):
            ref = value[1:]
            self._used.add(ref)
            if op not in _LIST_OPS:
                bad(f"a list reference ({value}) works with {', '.join(_LIST_OPS)} only", "E-BAD-LIST-REF")
                return None
            if ref not in self.lists:
                bad(f"undefined list {value}" + did_you_mean(ref, list(self.lists), show="${}"), "E-UNDEFINED-LIST")
                return None
            value = self.lists[ref]
            if not value and OPERATORS[op].empty_list_never_holds:
                self._warn(
                    f, pos, f"{fld}: list ${ref} is empty, so {op} never holds and the rule can never fire",
                    rid, code="W-EMPTY-LIST",
                )  # fmt: skip
        try:
            operand = OPERATORS[op].check(value, "a value" if bare else op)
        except BadOperand as exc:
            bad(exc.message, exc.code)
            return None
        return Condition(fld, op, operand.value, pos, operand.arg)

    def _when(self, f: FileDoc, path: Path, when: Any, rid: str | None) -> tuple[str, Schedule] | bool | None:
        if when is None:
            return None
        wpath: Path = (*path, "when")
        if not isinstance(when, dict) or len(when) != 1:
            self._report(f, f.doc.where(wpath), "when must be {inside: SCHEDULE} or {outside: SCHEDULE}", rid, code="E-BAD-WHEN")
            return False
        ((kind, name),) = when.items()
        if kind not in ("inside", "outside"):
            self._report(
                f, f.doc.key_at((*wpath, kind)),
                f"when: unknown key {kind!r} (inside or outside)" + did_you_mean(kind, ("inside", "outside")),
                rid, code="E-UNKNOWN-KEY",
            )  # fmt: skip
            return False
        where = f.doc.where((*wpath, kind))
        if isinstance(name, str) and name in self._broken:
            self._report(f, where, f"when: schedule {name!r} has errors", rid, code="E-BROKEN-SCHEDULE")
            return False
        if not isinstance(name, str) or name not in self.schedules:
            hint = did_you_mean(name, list(self.schedules)) if isinstance(name, str) else ""
            self._report(f, where, f"when: undefined schedule {name!r}{hint}", rid, code="E-UNDEFINED-SCHEDULE")
            return False
        schedule = self.schedules[name]
        if not schedule.ranges or not schedule.days:
            empty = "hours" if not schedule.ranges else "days"
            always = "never holds" if kind == "inside" else "always holds"
            self._warn(
                f, where, f"when: schedule {name!r} has no {empty}, so {kind} {always}", rid, code="W-EMPTY-SCHEDULE"
            )
        return (kind, schedule)
