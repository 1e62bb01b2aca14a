"""Who is who: ``actor.type`` from account-name patterns, because no log knows it.

A database log says ``hvac_vendor`` read a table; only the shop knows that account is a
vendor's. The ``actors:`` table of the rule files says so once, as glob patterns per type
(``vendor: ["*_vendor", "vendor-*"]``), and :meth:`ActorTable.fill` applies it to every
event after its input format has mapped it, whichever path the event came by (the daemon,
``replay``, ``test``, ``explain``: all through :meth:`monitor.pipeline.Pipeline.decode`).

| canonical field | from |
|---|---|
| ``actor.type`` | kept when the event has one; else the first type (in table order) one of whose patterns matches ``actor.id`` in full; else ``unknown`` |
| ``actor.kind`` | never touched: the source's own identity type (CloudTrail's ``AssumedRole``) |

Events without a text ``actor.id`` are left as they are: there is no account to judge.
Patterns are case-sensitive globs (``*`` any text, ``?`` one character, ``[abc]`` and
``[!abc]`` one of a set), matched with RE2 so an attacker-chosen account name costs
linear time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.event import Event
from monitor.rules.operators import compile_regex

ACTOR_TYPES = ("employee", "service", "vendor", "customer", "unknown")
UNKNOWN = "unknown"
CACHE_MAX = 65_536  # account names repeat: most events are answered from here


class BadPattern(ValueError):
    pass


def glob_regex(pattern: str) -> str:
    """The RE2 expression of a glob; :class:`BadPattern` for an empty one, an unclosed
    ``[`` or a reversed range (``[z-a]``), which fnmatch would silently drop."""
    if not pattern:
        raise BadPattern("a pattern must not be empty")
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":  # a ']' first is a member, as in fnmatch
                j += 1
            end = pattern.find("]", j)
            if end < 0:
                raise BadPattern(f"unclosed '[' at character {i}")
            body = pattern[i:end]
            negate = body.startswith("!")
            members = body[1:] if negate else body
            for k in range(1, len(members) - 1):
                if members[k] == "-" and members[k - 1] > members[k + 1]:
                    raise BadPattern(f"reversed range {members[k - 1 : k + 2]!r} in [{body}]")
            escaped = "".join("\\" + ch if ch in "\\^[]" else ch for ch in members)
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = end + 1
        else:
            out.append("\\" + c if not c.isalnum() and c != "_" else c)
    return "".join(out)


@dataclass
class ActorTable:
    """Patterns per actor type, in the order the rule files give the types."""

    patterns: dict[str, tuple[str, ...]]
    _compiled: list[tuple[str, Any]] = field(default_factory=list, repr=False)
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._compiled = [
            (kind, compile_regex("(?s)(?:" + "|".join(glob_regex(p) for p in pats) + ")"))
            for kind, pats in self.patterns.items()
            if pats
        ]

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def type_of(self, account: str) -> str:
        hit = self._cache.get(account)
        if hit is not None:
            return hit
        kind = next((k for k, rx in self._compiled if rx.fullmatch(account) is not None), UNKNOWN)
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[account] = kind
        return kind

    def fill(self, event: Event) -> None:
        """Sets ``actor.type`` where the event has none and has an account to judge."""
        actor = event.get("actor")
        if actor.__class__ is not dict or actor.get("type") is not None:
            return
        account = actor.get("id")
        if account.__class__ is str:
            actor["type"] = self.type_of(account)
