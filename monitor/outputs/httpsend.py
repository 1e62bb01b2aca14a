"""One HTTP attempt for the paging outputs, and what it came to.

PagerDuty, Slack and webhooks differ only in which answers mean "done", "try again" or
"never again", so each output passes its own ``classify`` and this module makes the
one POST. Waiting and trying again is not here: the shared retry machinery
(``monitor.retry``, issue 8) owns backoff and honours :attr:`Attempt.retry_after`;
an :class:`Attempt` carries the same fields as its ``Outcome`` (verdict, reason,
detail, retry_after), so adapting one to the other is a field-by-field copy.

Also here, so the three output configs share it: :class:`HttpOutputConfig`, the keys
every HTTP output has.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import aiohttp
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from monitor.retry import parse_retry_after
from monitor.timeparse import parse_duration

Verdict = Literal["done", "retry", "reject"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one POST. ``reason`` is a low-cardinality metric label (``http_429``,
    ``network``, ``timeout``); ``detail`` is for the log line (the receiver's answer)."""

    verdict: Verdict
    reason: str
    detail: str = ""
    retry_after: float | None = None


Classify = Callable[[int, Mapping[str, str], str, float], Attempt]


def answer(verdict: Verdict, status: int, body: str, headers: Mapping[str, str], now: float) -> Attempt:
    """An :class:`Attempt` for an HTTP answer; a retry carries the receiver's Retry-After."""
    reason = "success" if verdict == "done" else f"http_{status}"
    detail = f"HTTP {status}: {body[:300]}" if body else f"HTTP {status}"
    # one Retry-After reading for every receiver: monitor.retry's
    after = parse_retry_after(headers.get("Retry-After"), now) if verdict == "retry" else None
    return Attempt(verdict, reason, detail, after)


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: Mapping[str, str],
               timeout: float, classify: Classify,
               clock: Callable[[], float] = time.time) -> Attempt:  # fmt: skip
    """POST ``body`` once and classify the answer; no answer at all is always a retry,
    since the receiver never said no."""
    try:
        async with asyncio.timeout(timeout):
            async with session.post(url, data=body, headers=dict(headers)) as resp:
                text = await resp.text(errors="replace")
                return classify(resp.status, resp.headers, text, clock())
    except TimeoutError:
        return Attempt("retry", "timeout", f"no answer within {timeout:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        # A Slack webhook URL is a secret: an error that quotes it must not log it.
        text = f"{type(exc).__name__}: {exc}".replace(url, "<url>")
        return Attempt("retry", "network", text[:300])


def _seconds(v: object) -> float:
    return parse_duration(v) / 1000


Seconds = Annotated[float, BeforeValidator(_seconds)]


class HttpOutputConfig(BaseModel):
    """What every HTTP output's config has: the metric label and the attempt timeout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None  # the metric label; defaults to the type
    send_timeout: Seconds = Field(default=10.0, gt=0)

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type", "output"))
