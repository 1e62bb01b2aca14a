"""Masking of free text that leaves the daemon: card numbers, e-mail addresses, fields.

An alert about stolen card data must not itself spread card numbers and e-mail
addresses into chat, logs and dashboards. This runs on what leaves (alerts, log lines,
``/alerts``), never on the per-event path, so it may cost a regular expression per text.

The forms, chosen so a person still knows what was there and a second pass changes
nothing (masking is idempotent):

- a payment card number, 13 to 19 digits with single spaces or dashes anywhere between
  them (``4111 1111 1111 1111``, ``4111-1111-1111-1111``), passing the Luhn check, becomes
  ``[card ****1111]``, keeping the last four as receipts do. Digit runs failing Luhn
  (order ids, phone numbers) stay as they are; so does a longer run, which is not a card.
- an e-mail address becomes its first character, ``***`` and the domain:
  ``j***@example.com``.
- a field under ``privacy.mask_fields`` (a dotted path into an event sample) becomes
  ``[masked]`` wholesale, whatever it holds.

Group values (who did it) are left as they are, since on-call must act on them, unless
``privacy.hash_group_values`` asks for a keyed hash: ``anon:`` and the first 16 hex digits
of HMAC-SHA256 under ``privacy.hash_key``, stable for a key, so one actor keeps one name
across alerts, and not reversible without the key (a plain hash of an e-mail is). The
alert id, a plain hash of the group values, is then recomputed over the hashed values, or
hashing guesses of an address with the record's rule and ``fired_at`` would confirm one.

Where it runs: the daemon masks each alert once, as the engine hands it over
(:meth:`Masker.mask_alert`), before it is logged, kept for ``/alerts`` or given to any
output, so no output can forget; a record made later from an unmasked alert (a
resolution) goes through :meth:`Masker.alert`, the same masking over the record's dict.
Its log lines pass :meth:`Masker.log_processor`. ``replay``, ``test`` and ``demo`` print
to the analyst who holds the events already and do not mask.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import SecretStr, model_validator

from monitor.configtypes import Model, RelPath
from monitor.engine.alert import FIELD_MASK, Alert, alert_id, bounded_value
from monitor.secrets import resolve_secret
from monitor.timeparse import parse_ts

CARD_MASK = "[card ****{last4}]"
EMAIL_MASK = "{first}***@{domain}"
HASH_PREFIX = "anon:"

# 13-19 digits, each pair at most one space or dash apart, not inside a longer digit run.
_CARD = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9][A-Za-z0-9._%+-]*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)"
)
# A cheap first look: 13 or more digits and separators in a row. Most text has none, and
# this scans it about four times faster than _CARD, which tries every digit it meets.
_CANDIDATE = re.compile(r"[0-9][0-9 -]{11,}[0-9]")


class PrivacyConfig(Model):
    """``privacy:`` in the daemon's config. Masking is on by default."""

    mask_cards: bool = True
    mask_emails: bool = True
    mask_fields: tuple[str, ...] = ()
    hash_group_values: bool = False
    hash_key: SecretStr | None = None
    hash_key_file: RelPath | None = None

    @model_validator(mode="after")
    def _key(self) -> PrivacyConfig:
        resolve_secret(self, "hash_key", required=self.hash_group_values)
        return self


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(m: re.Match[str]) -> str:
    digits = m.group(0).replace(" ", "").replace("-", "")
    if not luhn_ok(digits):
        return m.group(0)
    return CARD_MASK.format(last4=digits[-4:])


def _email(m: re.Match[str]) -> str:
    return EMAIL_MASK.format(first=m.group(1)[0], domain=m.group(2))


class Masker:
    """The masking a :class:`PrivacyConfig` asks for, ready to apply."""

    def __init__(self, config: PrivacyConfig | None = None) -> None:
        c = config or PrivacyConfig()
        self.config = c
        self._fields = [tuple(p.split(".")) for p in c.mask_fields]
        self._paths = frozenset(c.mask_fields)
        key = c.hash_key.get_secret_value().encode() if c.hash_key is not None else None
        self._key = key if c.hash_group_values else None

    def text(self, s: str) -> str:
        """``s`` with card numbers and e-mail addresses masked."""
        if self.config.mask_cards and _CANDIDATE.search(s):
            s = _CARD.sub(_card, s)
        if self.config.mask_emails and "@" in s:
            s = _EMAIL.sub(_email, s)
        return s

    def value(self, v: Any) -> Any:
        """Every string inside ``v`` (dicts, lists, keys included) masked."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            return {self.value(k) if isinstance(k, str) else k: self.value(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [self.value(x) for x in v]
        return v

    def field(self, path: str, v: Any) -> Any:
        """An event field as an alert's template may show it: ``[masked]`` when under
        ``mask_fields``, else its text masked (the engine's ``template_field`` hook)."""
        if v is None:
            return None  # the placeholder stays as written
        return FIELD_MASK if path in self._paths else self.value(v)

    def sample(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """An event sample for an alert: ``mask_fields`` blanked wholesale, text masked.

        A path matches nested objects (``customer.email`` in ``{"customer": {"email": …}}``)
        and a flat key spelt with the dots (``{"customer.email": …}``), as rules read both.
        """
        out: dict[str, Any] = dict(event)
        for path in self._fields:
            out = _blank(out, path)
        masked: dict[str, Any] = self.value(out)
        return masked

    def log_processor(self, _logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        """A structlog processor masking every value of a log line (``invalid_event``
        samples quote raw events); put it last before the renderer."""
        masked: dict[str, Any] = self.value(event)
        return masked

    def hash_group(self, v: Any) -> Any:
        """A group value as shown: itself, or its keyed hash when the policy asks."""
        if self._key is None:
            return v
        raw = v if isinstance(v, str) else orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
        if raw.startswith(HASH_PREFIX):
            return raw  # already hashed: idempotent
        digest = hmac.new(self._key, raw.encode(), hashlib.sha256).hexdigest()[:16]
        return HASH_PREFIX + digest

    def alert(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """An alert (or resolution) record as it may leave the daemon.

        Free text (summary, description, annotations, labels, samples) is masked; group
        values are hashed when the policy asks, and their spelling in the text with them,
        or the hash would hide nothing; so is the id (see the module's docstring).
        """
        fired = record.get("fired_at")
        return self._masked(record, parse_ts(fired) if isinstance(fired, str) else None)

    def mask_alert(self, alert: Alert) -> Alert:
        """``alert`` with what :meth:`alert` masks masked, for everything that takes an
        :class:`Alert`. It masks the full texts, before :meth:`Alert.to_dict` cuts them to
        the size budget, so a cut never leaves half a card number unmasked."""
        fields = {"rule": alert.rule, "id": alert.id, "group": alert.group, "summary": alert.summary,
                  "description": alert.description, "labels": alert.labels, "annotations": alert.annotations,
                  "sample_event_ids": alert.sample_event_ids}  # fmt: skip
        m = self._masked(fields, alert.fired_at_ms)
        return dataclasses.replace(alert, **{k: m[k] for k in fields if k != "rule"})

    def _masked(self, record: Mapping[str, Any], fired_at_ms: int | None) -> dict[str, Any]:
        out = dict(record)
        group = record.get("group")
        replace: list[tuple[str, str]] = []
        if isinstance(group, Mapping) and self._key is not None:
            # Hashed as the record shows them (cut to the size budget), so an alert and a
            # record made from it later agree.
            bounded = {k: bounded_value(v) for k, v in group.items()}
            hashed = {k: self.hash_group(v) for k, v in bounded.items()}
            spellings = {(str(v), str(hashed[k])) for src in (group, bounded) for k, v in src.items()
                         if isinstance(v, str | int) and not isinstance(v, bool) and str(v)}  # fmt: skip
            replace = sorted(spellings, key=lambda p: (-len(p[0]), p))
            # Whole spellings only: a group value 7 must not turn "1,700 rows" into garbage.
            spelt = re.compile("|".join(f"(?<![A-Za-z0-9]){re.escape(raw)}(?![A-Za-z0-9])" for raw, _ in replace))
            names = dict(replace)
            out["group"] = hashed
            if fired_at_ms is not None and isinstance(record.get("rule"), str) and "id" in record:
                out["id"] = alert_id(record["rule"], list(hashed.values()), fired_at_ms)

        def text(s: str) -> str:
            if replace:
                s = spelt.sub(lambda m: names[m.group(0)], s)
            return self.text(s)

        for key in ("summary", "description"):
            if isinstance(out.get(key), str):
                out[key] = text(out[key])
        for key in ("annotations", "labels"):
            if isinstance(out.get(key), Mapping):
                out[key] = {k: text(v) if isinstance(v, str) else self.value(v) for k, v in out[key].items()}
        if isinstance(out.get("samples"), list):
            out["samples"] = [self.sample(e) if isinstance(e, Mapping) else self.value(e) for e in out["samples"]]
        if "sample_event_ids" in out:
            out["sample_event_ids"] = [text(v) if isinstance(v, str) else self.value(v)
                                       for v in out["sample_event_ids"]]  # fmt: skip
        return out


def _blank(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``obj`` with the value at ``path`` replaced by :data:`FIELD_MASK`."""
    flat = ".".join(path)
    if flat in obj:
        obj = {**obj, flat: FIELD_MASK}
    head, rest = path[0], path[1:]
    if head in obj:
        if not rest:
            obj = {**obj, head: FIELD_MASK}
        elif isinstance(obj[head], Mapping):
            obj = {**obj, head: _blank(dict(obj[head]), rest)}
    return obj
