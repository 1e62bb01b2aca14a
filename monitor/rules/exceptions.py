"""Exceptions with an end: ``exceptions: [{match: {...}, until: 2026-12-24, reason: ...}]``.

A standing allowlist entry outlives the reason it was written for ("the migration runs
this week"), and nobody remembers to take it out; then the rule is blind for good. So an
exception must say until when and why: events it matches are not counted by the rule
while their event time is before ``until``, and from then on the exception no longer
applies, by itself. Event time, not wall time, so ``replay`` of last month's log sees the
exceptions as they were then; ``check`` (and the daemon at load) warns about expired
ones (``W-EXPIRED-EXCEPTION``) so they get cleaned up.

``until`` is a date or an RFC 3339 time. A date means through that day in UTC
(``until: 2026-12-24`` still applies on the 24th and ends at 2026-12-25T00:00Z), which is
what "until the 24th" means when people say it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.event import Event, Tally
from monitor.rules.compile import compile_condition
from monitor.rules.conditions import ConditionChecks
from monitor.rules.context import FileDoc
from monitor.rules.errors import Pos
from monitor.rules.model import Condition
from monitor.rules.yamlpos import Path
from monitor.timeparse import format_ts, parse_ts

__all__ = ["DAY_MS", "ExceptionChecks", "RuleException", "compile_exceptions", "parse_until"]

DAY_MS = 86_400_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_KEYS = ("match", "until", "reason")


@dataclass(frozen=True)
class RuleException:
    conditions: tuple[Condition, ...]
    until_ms: int  # the first event time the exception no longer applies to
    reason: str
    pos: Pos


def parse_until(value: Any) -> int | None:
    """Epoch ms the exception ends at, or ``None`` when ``value`` is neither a date nor a time."""
    if not isinstance(value, str):
        return None
    if _DATE.match(value):
        start = parse_ts(value + "T00:00:00Z")
        return None if start is None else start + DAY_MS
    return parse_ts(value)


class ExceptionChecks(ConditionChecks):
    """Validates a rule's ``exceptions``; mixed into the validator beside the match checks."""

    def _exceptions(self, f: FileDoc, path: Path, value: Any, rid: str | None) -> tuple[RuleException, ...]:
        if value is None:
            return ()
        doc = f.doc
        epath: Path = (*path, "exceptions")
        if not isinstance(value, list):
            self._report(f, doc.where(epath), "exceptions must be a list of {match, until, reason}", rid, code="E-BAD-EXCEPTION")
            return ()
        out: list[RuleException] = []
        for i, raw in enumerate(value):
            ipath: Path = (*epath, i)
            if not isinstance(raw, dict):
                self._report(f, doc.where(ipath), "each exception must be a mapping with match, until and reason", rid, code="E-BAD-EXCEPTION")
                continue
            bad = False
            for key in raw:
                if key not in _KEYS:
                    self._report(f, doc.key_at((*ipath, key)), f"exception: unknown key {key!r} (expected match, until, reason)", rid, code="E-UNKNOWN-KEY")
                    bad = True
            for key in _KEYS:
                if key not in raw:
                    self._report(f, doc.where(ipath), f"exception: {key} is required (an exception says what it lets through, until when, and why)", rid, code="E-BAD-EXCEPTION")
                    bad = True
            if bad:
                continue
            before = len(self.problems)
            match = raw["match"]
            conditions = self._match(f, ipath, match, rid)
            if isinstance(match, dict) and not match:
                self._report(f, doc.where((*ipath, "match")), "exception: an empty match would let every event through", rid, code="E-BAD-EXCEPTION")
            until = parse_until(raw["until"])
            if until is None:
                self._report(f, doc.where((*ipath, "until")), f"exception: until must be a date (2026-12-24) or an RFC 3339 time, got {raw['until']!r}", rid, code="E-BAD-EXCEPTION")
            reason = raw["reason"]
            if not isinstance(reason, str) or not reason.strip():
                self._report(f, doc.where((*ipath, "reason")), "exception: reason must be text saying why", rid, code="E-BAD-EXCEPTION")
            if len(self.problems) > before or until is None:
                continue
            pos = doc.where(ipath)
            if until <= self.now_ms:
                self._warn(f, pos, f"exception ({reason}) expired at {format_ts(until)}: it no longer applies; remove it", rid, code="W-EXPIRED-EXCEPTION")
            out.append(RuleException(tuple(conditions), until, reason, pos))
        return tuple(out)


def compile_exceptions(exceptions: tuple[RuleException, ...], mismatch: Tally) -> Callable[[Event, int], bool] | None:
    """True when an exception lets the event through (the rule does not count it)."""
    if not exceptions:
        return None
    compiled = tuple((ex.until_ms, tuple(compile_condition(c, mismatch) for c in ex.conditions)) for ex in exceptions)

    def excepted(e: Event, ts: int) -> bool:
        return any(ts < until and all(c(e) for c in checks) for until, checks in compiled)

    return excepted
