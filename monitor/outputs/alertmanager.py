"""The Alertmanager output: API v2 payloads, and a sender with one queue per URL.

Alertmanager identifies an alert by its label set, so the payload functions here are
pure and derive the labels from the alert record alone: the first send, every re-send
and the resolution carry the identical set (a resolve with a different set never matches,
alertmanager issue 4554). ``endsAt`` is a lease from the moment of sending, as
Prometheus does: an open alert is re-sent every ``resend_interval`` and stays active
while the lease runs; if the daemon dies, Alertmanager resolves it when the lease ends.

Every URL gets every alert (Alertmanager instances deduplicate notifications among
themselves), each through its own queue and task, so one instance that is down or slow
never holds back another. A queue keeps only the newest state of each alert (by label
set): a long outage costs one entry per open alert, not one per re-send.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import aiohttp
import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from monitor.outputs.routing import MatchSpec
from monitor.retry import Abandoned, Outcome, RetryPolicy, Verdict, classify_status, retry
from monitor.timeparse import format_ts, parse_duration, parse_ts

__all__ = [
    "WATCHDOG",
    "AlertmanagerConfig",
    "AlertmanagerSender",
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

Duration = Annotated[int, BeforeValidator(parse_duration)]  # milliseconds


class AlertmanagerConfig(BaseModel):
    """``type: alertmanager`` under ``outputs:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["alertmanager"]
    name: str | None = None  # the metric label; defaults to the type
    urls: list[str] = Field(min_length=1)
    resend_interval: Duration = 60_000
    generator_url: str | None = None
    match: MatchSpec | None = None
    watchdog: bool = False
    timeout: Duration = 10_000

    @property
    def label(self) -> str:
        return self.name or self.type

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not re.match(r"https?://[^/\s]+", url):
                raise ValueError(f"not an http(s) URL: {url!r}")
        if len(set(v)) != len(v):
            raise ValueError("a URL is listed twice: every URL gets every alert already")
        return [u.rstrip("/") for u in v]

    @field_validator("resend_interval", "timeout")
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


Key = tuple[tuple[str, str], ...]


def _key(payload: Mapping[str, Any]) -> Key:
    return tuple(sorted(payload["labels"].items()))


@dataclass(eq=False)
class _Ticket:
    """One submission's completion at one URL: done once each of its alerts is."""

    remaining: int
    future: asyncio.Future[Outcome]
    worst: Outcome | None = None

    def done(self, outcome: Outcome) -> None:
        if outcome.verdict is Verdict.REJECT:
            self.worst = outcome
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result(self.worst or outcome)


@dataclass(eq=False)
class _Item:
    payload: dict[str, Any]
    tickets: list[_Ticket] = field(default_factory=list)
    sending: bool = False


ResultHook = Callable[[str, Outcome, int], None]  # url, outcome, alerts; for metrics and logs


class _Destination:
    """One Alertmanager URL: the newest state of each alert, and the task that posts them."""

    def __init__(self, url: str, sender: AlertmanagerSender) -> None:
        self.url = url
        self.endpoint = url + API_PATH
        self.sender = sender
        self.pending: dict[Key, _Item] = {}
        self.wake = asyncio.Event()
        self.failing: str | None = None
        self.task: asyncio.Task[None] | None = None

    def put(self, payload: dict[str, Any], ticket: _Ticket) -> None:
        key = _key(payload)
        item = self.pending.get(key)
        if item is not None and not item.sending:
            item.payload = payload  # superseded before it went out: the newer state only
            item.tickets.append(ticket)
        else:
            self.pending[key] = _Item(payload, [ticket])
        self.wake.set()

    async def run(self) -> None:
        s = self.sender
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                batch = [
                    item for _, item in zip(range(s.max_batch), self.pending.values(), strict=False)
                ]
                for item in batch:
                    item.sending = True
                try:
                    outcome = await self._deliver(batch)
                except Abandoned:
                    for item in batch:
                        item.sending = False
                    return
                self.failing = None if outcome.verdict is Verdict.DONE else outcome.detail
                s.on_result(self.url, outcome, len(batch))
                for item in batch:
                    key = _key(item.payload)
                    if self.pending.get(key) is item:
                        del self.pending[key]
                    for t in item.tickets:
                        t.done(outcome)

    async def _deliver(self, batch: list[_Item]) -> Outcome:
        body = orjson.dumps([item.payload for item in batch])
        n = len(batch)

        def retrying(outcome: Outcome, _delay: float) -> None:
            self._retrying(outcome, n)

        return await retry(lambda: self._post(body), self.sender.policy,
                           stopping=self.sender.stopping, on_retry=retrying)  # fmt: skip

    def _retrying(self, outcome: Outcome, n: int) -> None:
        self.failing = outcome.detail or outcome.reason
        self.sender.on_result(self.url, outcome, n)

    async def _post(self, body: bytes) -> Outcome:
        s = self.sender
        assert s.session is not None
        async with s.session.post(
            self.endpoint, data=body, headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=s.timeout),
        ) as resp:  # fmt: skip
            text = "" if 200 <= resp.status < 300 else (await resp.text(errors="replace"))[:300]
            return classify_status(resp.status, resp.headers, text, now=s.clock())


class AlertmanagerSender:
    """Posts alert payloads to every URL, each URL on its own.

    :meth:`submit` queues a batch for every URL and returns one future per URL, which
    completes with the outcome there (done, or rejected with the receiver's answer) once
    each alert of the batch (or a newer state of it) got there. Failures that may pass
    (408, 429, 5xx, network) are retried by :func:`monitor.retry.retry` until they do or
    :meth:`stop` is called; a stop leaves the unfinished futures pending.
    """

    def __init__(self, urls: Sequence[str], *, policy: RetryPolicy | None = None,
                 timeout: float = 10.0, max_batch: int = 500,
                 on_result: ResultHook | None = None,
                 session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.max_batch = max_batch
        self.on_result: ResultHook = on_result or (lambda url, outcome, n: None)
        self.clock = clock
        self.session = session
        self._own_session = session is None
        self.stopping = asyncio.Event()
        self.destinations = [_Destination(u.rstrip("/"), self) for u in urls]
        self._state = "new"

    @classmethod
    def from_config(cls, config: AlertmanagerConfig, **kw: Any) -> AlertmanagerSender:
        return cls(config.urls, timeout=config.timeout / 1000, **kw)

    @property
    def failing(self) -> dict[str, str]:
        """URL → the last failure, for ``/readyz`` and people; empty when all deliver."""
        return {d.url: d.failing for d in self.destinations if d.failing is not None}

    def queued(self) -> dict[str, int]:
        """URL → alerts waiting to go there."""
        return {d.url: len(d.pending) for d in self.destinations}

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError("the Alertmanager sender was already started")
        if self.session is None:
            self.session = aiohttp.ClientSession()
        for d in self.destinations:
            d.task = asyncio.create_task(d.run(), name=f"alertmanager {d.url}")
        self._state = "started"

    def submit(self, payloads: Sequence[dict[str, Any]]) -> list[asyncio.Future[Outcome]]:
        if self._state != "started":
            raise RuntimeError("the Alertmanager sender is not started")
        loop = asyncio.get_running_loop()
        futures = []
        for d in self.destinations:
            f: asyncio.Future[Outcome] = loop.create_future()
            futures.append(f)
            if not payloads:
                f.set_result(Outcome(Verdict.DONE, "success"))
                continue
            ticket = _Ticket(len(payloads), f)
            for p in payloads:
                d.put(p, ticket)
        return futures

    async def stop(self) -> None:
        """Stop every URL's task (an attempt in flight is cancelled); idempotent."""
        previous, self._state = self._state, "stopped"
        if previous != "started":
            return
        self.stopping.set()
        for d in self.destinations:
            d.wake.set()
        tasks = [d.task for d in self.destinations if d.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_session and self.session is not None:
            await self.session.close()
