"""Slack incoming webhooks: a message a person reads in three seconds, paced, never dropped.

Each alert becomes a ``text`` fallback (notifications, screen readers) and Block Kit
``blocks``: a header with severity and rule, who did it, what (the value against the
threshold in the rule's unit), when (the window in UTC and, where the rule's schedule has
one, its time zone), the runbook. A resolution says plainly that it is over.

Slack accepts about one message a second per webhook and answers 429 beyond that. The
output sends at most one message per ``interval``; whatever arrives in between is sent as
one digest (counts per rule, the top groups), so a burst of 200 alerts is a few messages
and every alert is accounted for in exactly one of them. A message that fails is sent
again, no sooner than the webhook's ``Retry-After``.

Answers (Slack's documented codes): only 200 is success; 429 and 5xx (and 408) are
retried, honouring ``Retry-After``; any other answer (400 ``invalid_payload``, 403
``action_prohibited``, 404 ``channel_not_found``, 410 ``channel_is_archived``) is parked.
The webhook URL is a secret (it is the credential) and never appears in logs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.configtypes import Duration
from monitor.outputs.base import Record
from monitor.outputs.httpsend import HttpOutput, HttpOutputConfig, http_url
from monitor.secrets import resolve_secret
from monitor.units import limit_sentence

# Block Kit limits (api.slack.com/reference/block-kit/blocks)
MAX_BLOCKS = 50
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
CONTEXT_ELEMENTS_MAX = 10
TEXT_MAX = 4000  # Slack truncates top-level text beyond 40,000; keep fallbacks short
DIGEST_RULES_MAX = 40  # section blocks for rules in a digest; the rest are summed up

SEVERITY_ICON = {"critical": ":rotating_light:", "high": ":red_circle:", "medium": ":large_orange_circle:",
                 "low": ":large_yellow_circle:", "info": ":information_source:"}  # fmt: skip


class SlackConfig(HttpOutputConfig):
    type: Literal["slack"]
    webhook_url: SecretStr | None = None  # https://hooks.slack.com/services/...: a credential
    webhook_url_file: Path | None = None
    interval: Duration = 1000  # at most one message per interval
    top_groups: int = Field(default=5, gt=0)  # groups named per rule in a digest

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive duration")
        return v

    @model_validator(mode="after")
    def _secret(self) -> SlackConfig:
        resolve_secret(self, "webhook_url", required=True)
        assert self.webhook_url is not None
        if not http_url(self.webhook_url.get_secret_value()):
            raise ValueError("webhook_url: not an http(s) URL with a host (the URL is a secret: not shown)")
        return self


def escape(text: str) -> str:
    """Slack's three control characters, so event text cannot forge links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut(text, HEADER_MAX), "emoji": True}}


def _section(mrkdwn: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(mrkdwn, SECTION_TEXT_MAX)}}


def _context(*mrkdwn: str) -> dict[str, Any]:
    elements = [{"type": "mrkdwn", "text": _cut(t, SECTION_TEXT_MAX)} for t in mrkdwn]
    return {"type": "context", "elements": elements[:CONTEXT_ELEMENTS_MAX]}


def _who(group: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in group.items()) or "all events"


def _instant(iso: str, zone: ZoneInfo | None = None) -> datetime:
    dt = datetime.fromisoformat(iso)
    return dt.astimezone(zone) if zone else dt


def span(start: str, end: str, timezone: str | None = None) -> str:
    """``2026-11-18 09:00 to 09:10 UTC``, and the same in ``timezone`` after a slash."""

    def one(zone: ZoneInfo | None) -> str:
        a, b = _instant(start, zone), _instant(end, zone)
        label = b.tzname() or "UTC"
        b_text = f"{b:%H:%M}" if a.date() == b.date() else f"{b:%Y-%m-%d %H:%M}"
        return f"{a:%Y-%m-%d %H:%M} to {b_text} {label}"

    text = one(None)
    if timezone:
        text += f" / {one(ZoneInfo(timezone))} ({timezone})"
    return text


def _runbook(record: Mapping[str, Any]) -> str | None:
    a = record.get("annotations") or {}
    url = a.get("runbook") or a.get("runbook_url")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None


def alert_message(record: Mapping[str, Any], *, unit: str | None = None,
                  timezone: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The message for one alert record (``Alert.to_dict``, masked already)."""
    unit = unit or record.get("unit") or "events"
    severity = str(record.get("severity", "unknown"))
    group = record.get("group") or {}
    what = limit_sentence(record["value"], record.get("threshold") or {}, unit, record.get("window"))
    text = f"{severity.upper()} {record['rule']}: {_who(group)}: {what}"
    blocks: list[dict[str, Any]] = [
        _header(f"{SEVERITY_ICON.get(severity, '')} {severity.upper()}: {record['rule']}".strip()),
    ]
    if record.get("summary"):
        blocks.append(_section(escape(str(record["summary"]))))
    lines = [f"*Who:* {escape(_who(group))}", f"*What:* {escape(what)}"]
    if record.get("window_start") and record.get("window_end"):
        lines.append(f"*When:* {span(record['window_start'], record['window_end'], timezone)}")
    runbook = _runbook(record)
    if runbook:
        lines.append(f"*Runbook:* <{escape(runbook)}|open the runbook>")
    blocks.append(_section("\n".join(lines)))
    blocks.append(_context(f"alert `{escape(str(record['id']))}` · fired {record.get('fired_at', '?')} · exfil-monitor"))
    return {"text": _cut(text, TEXT_MAX), "blocks": blocks}


def resolution_message(record: Mapping[str, Any], *, timezone: str | None = None) -> dict[str, Any]:
    """The message saying an episode is over."""
    group = record.get("group") or {}
    at = str(record.get("resolved_at", "?"))
    text = f"RESOLVED {record['rule']}: {_who(group)}: over since {at}"
    when = at
    if timezone and at != "?":
        when = f"{at} / {_instant(at, ZoneInfo(timezone)):%Y-%m-%d %H:%M %Z} ({timezone})"
    blocks = [
        _header(f":white_check_mark: RESOLVED: {record['rule']}"),
        _section(f"*Who:* {escape(_who(group))}\n*Over since:* {escape(when)}\nNothing more has held since; no action is needed for this episode."),
        _context("exfil-monitor"),
    ]
    return {"text": _cut(text, TEXT_MAX), "blocks": blocks}


def digest_message(records: Sequence[Mapping[str, Any]], top_groups: int = 5) -> dict[str, Any]:
    """One message for many records: per rule, how many fired and resolved, and the
    groups that fired most. Every record is counted once."""
    fired: Counter[str] = Counter()
    resolved: Counter[str] = Counter()
    groups: dict[str, Counter[str]] = {}
    severity: dict[str, str] = {}
    for r in records:
        rule = str(r["rule"])
        if r.get("type") == "resolved":
            resolved[rule] += 1
            continue
        fired[rule] += 1
        severity.setdefault(rule, str(r.get("severity", "unknown")))
        groups.setdefault(rule, Counter())[_who(r.get("group") or {})] += 1
    rules = sorted(set(fired) | set(resolved), key=lambda x: (-fired[x], -resolved[x], x))
    n_fired, n_resolved = sum(fired.values()), sum(resolved.values())
    head = f"{n_fired} alert{'s' * (n_fired != 1)}, {n_resolved} resolved, {len(rules)} rule{'s' * (len(rules) != 1)}"
    blocks: list[dict[str, Any]] = [_header(f":bell: Digest: {head}")]
    fallback = []
    for rule in rules[:DIGEST_RULES_MAX]:
        parts = [f"*{escape(rule)}*" + (f" ({severity[rule]})" if rule in severity else "")]
        parts.append(f"{fired[rule]} fired, {resolved[rule]} resolved")
        fallback.append(f"{rule} {fired[rule]}+{resolved[rule]}")
        if rule in groups:
            top = groups[rule].most_common(top_groups)
            shown = ", ".join(f"{escape(g)} ({n})" for g, n in top)
            rest = len(groups[rule]) - len(top)
            parts.append(f"top: {shown}" + (f" and {rest} more" if rest > 0 else ""))
        blocks.append(_section(" · ".join(parts)))
    if len(rules) > DIGEST_RULES_MAX:
        more = rules[DIGEST_RULES_MAX:]
        blocks.append(_section(f"and {len(more)} more rules: {sum(fired[r] for r in more)} fired, "
                               f"{sum(resolved[r] for r in more)} resolved"))  # fmt: skip
    blocks.append(_context("sent as a digest: alerts came faster than one message a second · exfil-monitor"))
    return {"text": _cut(f"Digest: {head}: " + ", ".join(fallback), TEXT_MAX), "blocks": blocks}


def validate(message: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the block when ``message`` breaks a Block Kit limit."""
    if not isinstance(message.get("text"), str) or not message["text"]:
        raise ValueError("message: text (the fallback) is missing")
    blocks = message.get("blocks", [])
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"message: {len(blocks)} blocks, Slack takes at most {MAX_BLOCKS}")
    for i, b in enumerate(blocks):
        where = f"blocks[{i}] ({b.get('type')})"
        if b.get("type") == "header":
            t = b["text"]
            if t.get("type") != "plain_text" or not 0 < len(t["text"]) <= HEADER_MAX:
                raise ValueError(f"{where}: a header is plain_text of 1 to {HEADER_MAX} characters")
        elif b.get("type") == "section":
            if "text" not in b and "fields" not in b:
                raise ValueError(f"{where}: a section needs text or fields")
            if "text" in b and not 0 < len(b["text"]["text"]) <= SECTION_TEXT_MAX:
                raise ValueError(f"{where}: section text is 1 to {SECTION_TEXT_MAX} characters")
            fields = b.get("fields", [])
            if len(fields) > FIELDS_MAX or any(len(f["text"]) > FIELD_MAX for f in fields):
                raise ValueError(f"{where}: at most {FIELDS_MAX} fields of {FIELD_MAX} characters")
        elif b.get("type") == "context":
            if not 0 < len(b["elements"]) <= CONTEXT_ELEMENTS_MAX:
                raise ValueError(f"{where}: a context has 1 to {CONTEXT_ELEMENTS_MAX} elements")
        else:
            raise ValueError(f"{where}: not a block type this output sends")


TimezoneOf = Callable[[str], str | None]  # rule id -> its schedule's time zone, if any


def message(records: Sequence[Mapping[str, Any]], *, top_groups: int = 5,
            timezone_of: TimezoneOf | None = None) -> dict[str, Any]:  # fmt: skip
    """One record as its own message; more as one digest that counts every one."""
    if len(records) > 1:
        return digest_message(records, top_groups)
    r = records[0]
    tz = timezone_of(str(r["rule"])) if timezone_of else None
    if r.get("type") == "resolved":
        return resolution_message(r, timezone=tz)
    return alert_message(r, timezone=tz)


class SlackOutput(HttpOutput):
    """One webhook, at most one message per ``interval``.

    The drain waits out the interval before it takes records (:meth:`ready_in`), so
    whatever arrived meanwhile, up to :attr:`max_batch`, is one digest: a burst of 200
    alerts is a handful of messages, and every alert is counted in exactly one that Slack
    accepted (a failed message is sent again whole).
    """

    kind = "slack"
    max_batch = 500
    success = frozenset({200})

    def __init__(self, config: SlackConfig, *, timezone_of: TimezoneOf | None = None, **kw: Any) -> None:
        super().__init__(config.label, send_timeout=config.send_timeout / 1000,
                         min_interval=config.interval / 1000, **kw)  # fmt: skip
        self.config = config
        self.timezone_of = timezone_of

    async def _send(self, records: Sequence[Record]) -> None:
        assert self.config.webhook_url is not None  # the validator guarantees it
        m = message(records, top_groups=self.config.top_groups, timezone_of=self.timezone_of)
        await self.post(self.config.webhook_url.get_secret_value(), orjson.dumps(m), {})
