"""What the paging outputs share: one POST judged by the failure policy, and pacing.

PagerDuty, Slack and webhooks differ only in what they send and which answers mean
"done" (202 for PagerDuty, 200 for Slack, any 2xx for a webhook); the rest of the policy
is :func:`monitor.retry.classify_status`, the one every HTTP output uses, and waiting and
trying again is the drain's (:mod:`monitor.outputs.drain`). So :meth:`HttpOutput.post`
returns when the receiver took the body and raises
:class:`~monitor.outputs.base.RetryLater` or :class:`~monitor.outputs.base.Rejected`
otherwise.

Receivers rate-limit per key or webhook (PagerDuty about 120 events a minute, Slack one
message a second). An output with ``min_interval`` tells the drain how long to wait before
it takes the next records (:meth:`HttpOutput.ready_in`), so what arrives meanwhile goes
out together (Slack's digest), and :meth:`HttpOutput.post` itself never sends sooner, not
even on a retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping

import aiohttp
import yarl

from monitor.configtypes import Duration
from monitor.outputs.base import Output, OutputConfigBase, Rejected, RetryLater, raise_for
from monitor.retry import classify_status


def http_url(text: str) -> bool:
    """An absolute http(s) URL with a host and a valid port: what ``post`` can reach."""
    try:
        url = yarl.URL(text)
        port = url.port  # raises for a port out of range
    except ValueError:
        return False
    return url.scheme in ("http", "https") and bool(url.host) and port is not None and 0 < port < 65536


class HttpOutputConfig(OutputConfigBase):
    """What every paging output's config has besides ``name`` and ``match``."""

    send_timeout: Duration = 10_000


class HttpOutput(Output):
    """An output that POSTs to one URL, at most once per ``min_interval`` seconds."""

    success: Collection[int] | None = None  # the answers that mean done; None: any 2xx

    def __init__(self, name: str, *, send_timeout: float = 10.0, min_interval: float = 0.0,
                 session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        super().__init__(name, send_timeout=send_timeout)
        self.min_interval = min_interval
        self.session = session
        self._own_session = session is None
        self.clock = clock
        self.monotonic = monotonic
        self._next_at = float("-inf")

    def ready_in(self) -> float:
        return max(0.0, self._next_at - self.monotonic())

    async def _open(self) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession()

    async def _close(self) -> None:
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """POST ``body`` once, no sooner than the pace allows, and judge the answer."""
        assert self.session is not None, "post before start"
        wait = self.ready_in()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_at = self.monotonic() + self.min_interval
        try:
            async with self.session.post(url, data=body, headers={"Content-Type": "application/json", **headers}) as r:
                status, answer = r.status, r.headers
                text = "" if self._done(status) else (await r.text(errors="replace"))[:300]
        except (aiohttp.ClientError, OSError) as exc:
            # A Slack webhook URL is the credential: an error that quotes it must not log it.
            raise RetryLater("network", f"{type(exc).__name__}: {exc}".replace(url, "<url>")[:300]) from None
        if self._done(status):
            return
        if 200 <= status < 300:  # a 2xx that is not this receiver's success: a wrong URL
            raise Rejected(f"HTTP {status}: {text}" if text else f"HTTP {status}", None, f"http_{status}")
        raise_for(classify_status(status, answer, text, now=self.clock()))

    def _done(self, status: int) -> bool:
        return 200 <= status < 300 if self.success is None else status in self.success
