"""PagerDuty Events API v2: ``trigger`` when an episode opens, ``resolve`` when it ends.

The dedup key is what makes one episode one incident: it is a function of (rule, group,
episode start), the same for every re-send of an episode and for its resolve, and new for
a later episode (PagerDuty opens a new alert for a trigger after a resolve of the same
key). It is the alert id of the alert that opened the episode
(:func:`monitor.engine.alert.alert_id`), so it names no customer or actor in clear.

Records are an alert (``Alert.to_dict``, whose ``episode_start`` is the start of the
episode it belongs to) and a resolution (``Resolution.to_dict``: ``type: resolved``,
the rule, group and ``episode_start`` of the episode it ends).
Masking (``monitor.privacy``) is applied to the record before it comes here.

Answers (PagerDuty's documented codes): 202 is success; 400 is an invalid event and is
parked; 429 (over about 120 events a minute per routing key) and 5xx are retried, and
``min_interval`` paces events to stay under the limit; any other answer (401, 403, 404
from a wrong URL, 413, a 200 from something that is not PagerDuty) is parked too, since
sending it again gets the same answer.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import SecretStr, field_validator, model_validator

from monitor.configtypes import Duration
from monitor.engine.alert import alert_id
from monitor.outputs.base import Record
from monitor.outputs.httpsend import HttpOutput, HttpOutputConfig, http_url
from monitor.secrets import resolve_secret
from monitor.timeparse import parse_ts
from monitor.units import limit_sentence

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024  # payload.summary
DEDUP_KEY_MAX = 255
MIN_INTERVAL_MS = 500  # between events per routing key: 120 a minute
SAMPLE_IDS_MAX = 20
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}


class PagerDutyConfig(HttpOutputConfig):
    type: Literal["pagerduty"]
    routing_key: SecretStr | None = None  # the integration key (32 characters)
    routing_key_file: Path | None = None
    url: str = DEFAULT_URL  # the EU host, events.eu.pagerduty.com, or a test server
    source: str | None = None  # the monitor instance; None: the host name
    generator_url: str | None = None  # "https://monitor.example/alerts/{id}"
    # PagerDuty takes about 120 events a minute per routing key; the output waits this
    # long between events so it never meets the 429 in the first place.
    min_interval: Duration = MIN_INTERVAL_MS

    @field_validator("url", "generator_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not http_url(v.replace("{id}", "id")):
            raise ValueError(f"expected an http:// or https:// URL with a host, got {v!r}")
        return v

    @field_validator("min_interval")
    @classmethod
    def _not_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError("must not be negative")
        return v

    @model_validator(mode="after")
    def _secret(self) -> PagerDutyConfig:
        resolve_secret(self, "routing_key", required=True)
        return self


def dedup_key(record: Mapping[str, Any]) -> str:
    """``exfil-monitor/<rule>/<id of the episode's first alert>``."""
    start = record.get("episode_start") or record.get("fired_at")
    start_ms = parse_ts(start)
    if start_ms is None:
        raise ValueError(f"record of rule {record.get('rule')!r} has no episode_start or fired_at")
    group = record.get("group") or {}
    key = f"exfil-monitor/{record['rule']}/{alert_id(record['rule'], list(group.values()), start_ms)}"
    return key[:DEDUP_KEY_MAX]


def _who(group: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in group.items()) or "all events"


def _runbook(record: Mapping[str, Any]) -> str | None:
    annotations = record.get("annotations") or {}
    url = annotations.get("runbook") or annotations.get("runbook_url")
    return url if isinstance(url, str) and url else None


def summary(record: Mapping[str, Any], unit: str) -> str:
    """One line a person reads on a phone: rule, who, and the plain limit sentence."""
    what = limit_sentence(record["value"], record.get("threshold") or {}, unit, record.get("window"))
    text = f"{record['rule']} ({record.get('severity', 'unknown')}): {_who(record.get('group') or {})}: {what}"
    extra = record.get("summary")
    if isinstance(extra, str) and extra and extra not in text:
        text += f" - {extra}"
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def trigger(record: Mapping[str, Any], config: PagerDutyConfig, *, source: str,
            unit: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The Events API v2 ``trigger`` event for an alert record."""
    assert config.routing_key is not None  # the validator guarantees it
    unit = unit or record.get("unit") or "events"
    group = record.get("group") or {}
    runbook = _runbook(record)
    generator = config.generator_url.format(id=record["id"]) if config.generator_url else None
    details: dict[str, Any] = {
        "value": record["value"],
        "unit": unit,
        "threshold": record.get("threshold"),
        "window": record.get("window"),
        "window_start": record.get("window_start"),
        "window_end": record.get("window_end"),
        "fired_at": record.get("fired_at"),
        "group": group,
        "alert_id": record["id"],
        "sample_event_ids": list(record.get("sample_event_ids") or [])[:SAMPLE_IDS_MAX],
        "description": record.get("description"),
        "runbook": runbook,
    }
    payload: dict[str, Any] = {
        "summary": summary(record, unit),
        "source": config.source or source,
        "severity": SEVERITY.get(str(record.get("severity")), "error"),
        "timestamp": record.get("detected_at") or record.get("fired_at"),
        "component": _who(group),
        "class": record["rule"],
        "custom_details": {k: v for k, v in details.items() if v is not None},
    }
    team = (record.get("labels") or {}).get("team")
    if team:
        payload["group"] = team
    links = [{"href": runbook, "text": "Runbook"}] if runbook else []
    if generator:
        links.append({"href": generator, "text": "Alert in exfil-monitor"})
    event: dict[str, Any] = {
        "routing_key": config.routing_key.get_secret_value(),
        "event_action": "trigger",
        "dedup_key": dedup_key(record),
        "payload": {k: v for k, v in payload.items() if v is not None},
        "client": "exfil-monitor",
    }
    if generator:
        event["client_url"] = generator
    if links:
        event["links"] = links
    return event


def resolve(record: Mapping[str, Any], config: PagerDutyConfig) -> dict[str, Any]:
    """The ``resolve`` event for a resolution record: only the key is needed."""
    assert config.routing_key is not None
    return {
        "routing_key": config.routing_key.get_secret_value(),
        "event_action": "resolve",
        "dedup_key": dedup_key(record),
    }


def event(record: Mapping[str, Any], config: PagerDutyConfig, *, source: str) -> dict[str, Any]:
    """``trigger`` or ``resolve``, by the record's ``type``."""
    if record.get("type") == "resolved":
        return resolve(record, config)
    return trigger(record, config, source=source)


class PagerDutyOutput(HttpOutput):
    """One routing key: every record is one event, POSTed in order, paced to the limit."""

    kind = "pagerduty"
    max_batch = 1  # an event per request; a retry never repeats one PagerDuty already took
    success = frozenset({202})

    def __init__(self, config: PagerDutyConfig, **kw: Any) -> None:
        super().__init__(config.label, send_timeout=config.send_timeout / 1000,
                         min_interval=config.min_interval / 1000, **kw)  # fmt: skip
        self.config = config
        self.source = config.source or socket.gethostname()

    async def _send(self, records: Sequence[Record]) -> None:
        for r in records:
            await self.post(self.config.url, orjson.dumps(event(r, self.config, source=self.source)), {})
