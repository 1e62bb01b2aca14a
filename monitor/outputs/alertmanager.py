"""The Alertmanager output: API v2 payloads, and one output per URL.

Alertmanager identifies an alert by its label set, so the payload functions here are
pure and derive the labels from the alert record alone: the first send, every re-send
and the resolution carry the identical set (a resolve with a different set never matches,
alertmanager issue 4554). ``endsAt`` is a lease from the moment of sending, as
Prometheus does: an open alert is re-sent every ``resend_interval`` and stays active
while the lease runs; if the daemon dies, Alertmanager resolves it when the lease ends.

Every URL gets every alert (Alertmanager instances deduplicate notifications among
themselves), each as an output of its own with its own spool and drain
(:mod:`monitor.outputs.drain`), so one instance that is down or slow never holds back
another. Re-sends come from the engine's open episodes, not from the spool, so a long
outage costs the spool nothing beyond the first send and the resolution of each alert.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import Field, field_validator

from monitor.configtypes import Duration
from monitor.outputs.base import Output, OutputConfigBase, Record, raise_for
from monitor.retry import classify_status
from monitor.timeparse import format_ts, parse_ts

__all__ = [
    "WATCHDOG",
    "AlertmanagerConfig",
    "AlertmanagerOutput",
    "alert_annotations",
    "alert_labels",
    "firing",
    "label_name",
    "lease_ms",
    "resolved",
    "watchdog",
]

API_PATH = "/api/v2/alerts"
WATCHDOG = "ExfilMonitorWatchdog"
_NOT_LABEL = re.compile(r"[^a-zA-Z0-9_]")



class AlertmanagerConfig(OutputConfigBase):
    """``type: alertmanager`` under ``outputs:``."""

    type: Literal["alertmanager"]
    urls: list[str] = Field(min_length=1)
    resend_interval: Duration = 60_000
    generator_url: str | None = None
    watchdog: bool = False
    send_timeout: Duration = 10_000

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not re.match(r"https?://[^/\s]+", url):
                raise ValueError(f"not an http(s) URL: {url!r}")
        if len(set(v)) != len(v):
            raise ValueError("a URL is listed twice: every URL gets every alert already")
        return [u.rstrip("/") for u in v]

    @field_validator("resend_interval", "send_timeout")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be a positive duration")
        return v

    @field_validator("generator_url")
    @classmethod
    def _generator(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"https?://", v):
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v


# -- payloads (pure) ------------------------------------------------------------------


def label_name(path: str) -> str:
    """A group_by path as a label name: ``actor.id`` → ``actor_id``."""
    return _NOT_LABEL.sub("_", path)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()


def alert_labels(record: Mapping[str, Any]) -> dict[str, str]:
    """The identity of the alert in Alertmanager: rule id, severity, the rule's labels and
    the group values. Nothing that changes between sends (value, times) goes here."""
    labels = {str(k): str(v) for k, v in (record.get("labels") or {}).items()}
    for path, value in (record.get("group") or {}).items():
        labels[label_name(path)] = _text(value)
    labels["alertname"] = str(record["rule"])
    labels["severity"] = str(record["severity"])
    return labels


def _threshold(t: Mapping[str, Any]) -> str:
    return ", ".join(f"{op} {_text(n)}" for op, n in t.items())


def alert_annotations(record: Mapping[str, Any]) -> dict[str, str]:
    out = {str(k): str(v) for k, v in (record.get("annotations") or {}).items()}
    out["summary"] = str(record.get("summary") or out.get("summary") or record["rule"])
    if record.get("description"):
        out["description"] = str(record["description"])
    out["alert_id"] = str(record["id"])
    if "value" in record:
        out["value"] = _text(record["value"])
    if record.get("threshold"):
        out["threshold"] = _threshold(record["threshold"])
    return out


def lease_ms(resend_interval_ms: int, max_future_skew_ms: int) -> int:
    """How long an alert stays active without a re-send: four missed re-sends, and never
    less than the future skew the engine accepts."""
    return max(4 * resend_interval_ms, max_future_skew_ms)


def _fired_ms(record: Mapping[str, Any], now_ms: int) -> int:
    fired = parse_ts(record.get("fired_at"))
    return now_ms if fired is None else min(fired, now_ms)


def _generator(template: str | None, alert_id: str) -> str | None:
    return None if template is None else template.replace("{id}", alert_id)


def firing(record: Mapping[str, Any], *, now_ms: int, lease: int,
           generator_url: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One open alert as sent now: ``startsAt`` never in the future, ``endsAt`` a lease."""
    out: dict[str, Any] = {
        "labels": alert_labels(record),
        "annotations": alert_annotations(record),
        "startsAt": format_ts(_fired_ms(record, now_ms)),
        "endsAt": format_ts(now_ms + lease),
    }
    url = _generator(generator_url, str(record["id"]))
    if url is not None:
        out["generatorURL"] = url
    return out


def resolved(record: Mapping[str, Any], *, resolved_wall_ms: int, now_ms: int,
             generator_url: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The alert of ``record`` (the one that fired) resolved at ``resolved_wall_ms``."""
    out = firing(record, now_ms=now_ms, lease=0, generator_url=generator_url)
    start = min(_fired_ms(record, now_ms), resolved_wall_ms)
    out["startsAt"] = format_ts(start)
    out["endsAt"] = format_ts(max(start, resolved_wall_ms))
    return out


def watchdog(*, started_ms: int, now_ms: int, lease: int,
             labels: Mapping[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The always-firing alert that proves the paging path: a dead-man's switch fires when
    it stops arriving."""
    return {
        "labels": {**(labels or {}), "alertname": WATCHDOG, "severity": "none"},
        "annotations": {
            "summary": "exfil-monitor is running and its alerts reach Alertmanager",
            "description": "Always firing while the daemon runs. Route it to a dead man's "
            "switch: when it stops arriving, the monitor or its paging path is broken.",
        },
        "startsAt": format_ts(min(started_ms, now_ms)),
        "endsAt": format_ts(now_ms + lease),
    }


# -- sending ---------------------------------------------------------------------------


class AlertmanagerOutput(Output):
    """One Alertmanager URL. The config's ``urls`` make one of these each, so every URL
    has its own spool and drain, and one instance that is down never holds back another.

    Records from the spool are the first send of an alert and its resolution; the open
    episodes come back every ``resend_interval`` through :meth:`resend`, with the
    watchdog, and each send renews their lease.
    """

    kind = "alertmanager"
    max_batch = 500

    def __init__(self, name: str, url: str, *, resend_interval: float = 60.0, lease_ms: int = 240_000,
                 generator_url: str | None = None, watchdog: bool = False, send_timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        super().__init__(name, send_timeout=send_timeout)
        self.url = url.rstrip("/")
        self.endpoint = self.url + API_PATH
        self.resend_interval = resend_interval
        self.lease_ms = lease_ms
        self.generator_url = generator_url
        self.watchdog = watchdog
        self.clock = clock
        self.session = session
        self._own_session = session is None
        self._started_ms = int(clock() * 1000)

    @classmethod
    def from_config(cls, config: AlertmanagerConfig, max_future_skew_ms: int) -> list[AlertmanagerOutput]:
        """One output per URL, named ``<label>`` for one URL, ``<label>-<n>`` for several."""
        many = len(config.urls) > 1
        return [
            cls(f"{config.label}-{i}" if many else config.label, url,
                resend_interval=config.resend_interval / 1000,
                lease_ms=lease_ms(config.resend_interval, max_future_skew_ms),
                generator_url=config.generator_url, watchdog=config.watchdog,
                send_timeout=config.send_timeout / 1000)
            for i, url in enumerate(config.urls)
        ]

    def payload(self, record: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        if record.get("type") == "resolved":
            detected = parse_ts(record.get("detected_at"))
            return resolved(record, resolved_wall_ms=now_ms if detected is None else detected, now_ms=now_ms,
                            generator_url=self.generator_url)  # fmt: skip
        return firing(record, now_ms=now_ms, lease=self.lease_ms, generator_url=self.generator_url)

    async def _open(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        self._started_ms = int(self.clock() * 1000)

    async def _send(self, records: Sequence[Record]) -> None:
        now = int(self.clock() * 1000)
        await self._post([self.payload(r, now) for r in records])

    async def _resend(self, open_records: Sequence[Record]) -> None:
        now = int(self.clock() * 1000)
        payloads = [firing(r, now_ms=now, lease=self.lease_ms, generator_url=self.generator_url)
                    for r in open_records if r.get("type", "alert") == "alert"]  # fmt: skip
        if self.watchdog:
            payloads.append(watchdog(started_ms=self._started_ms, now_ms=now, lease=self.lease_ms))
        for i in range(0, len(payloads), self.max_batch):
            await self._post(payloads[i : i + self.max_batch])

    async def _post(self, payloads: list[dict[str, Any]]) -> None:
        if not payloads:
            return
        assert self.session is not None
        async with self.session.post(self.endpoint, data=orjson.dumps(payloads),
                                     headers={"Content-Type": "application/json"}) as resp:  # fmt: skip
            text = "" if 200 <= resp.status < 300 else (await resp.text(errors="replace"))[:300]
            raise_for(classify_status(resp.status, resp.headers, text, now=self.clock()))

    async def _close(self) -> None:
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None
