"""The one retry policy: backoff with jitter, ``Retry-After``, and waits a stop cuts short.

Sources and outputs both retry (a broker that is down, a receiver answering 503), and
each used to have its own loop. This module holds the pieces once: :class:`Backoff`,
:func:`wait_or_stop` and :class:`Abandoned` (the names ``outputs/base.py`` has today, with
the same behaviour), :func:`parse_retry_after`, the HTTP failure policy every HTTP
output shares (:func:`classify_status`, :func:`classify_exception`), and
:func:`retry`, the loop that uses them.

The failure policy: 2xx is done; 408, 429, 5xx and network errors are retried with
backoff and jitter (429 and 503 honouring ``Retry-After``); any other answer is final,
so the alert is parked as rejected. A receiver that refuses what it is sent will refuse
it again, and retrying it forever would fill the spool and stop detection.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = [
    "Abandoned",
    "Backoff",
    "Outcome",
    "RetryPolicy",
    "Verdict",
    "classify_exception",
    "classify_status",
    "parse_retry_after",
    "retry",
    "wait_or_stop",
]

RETRIED_STATUSES = frozenset({408, 429})


class Abandoned(Exception):
    """A stop was requested while retrying: the work in hand was not acknowledged."""


async def wait_or_stop(stopping: asyncio.Event | None, seconds: float) -> bool:
    """Wait ``seconds``, or less if ``stopping`` is set; True if it is set."""
    if stopping is None:
        await asyncio.sleep(seconds)
        return False
    if not stopping.is_set():
        try:
            async with asyncio.timeout(seconds):
                await stopping.wait()
        except TimeoutError:
            pass
    return stopping.is_set()


class Backoff:
    """Exponential backoff with jitter, so many daemons do not retry in step."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0,
                 jitter: float = 0.2, rng: Callable[[], float] = random.random) -> None:  # fmt: skip
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.rng = rng
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay * (1 - self.jitter + 2 * self.jitter * self.rng())

    def reset(self) -> None:
        self._next = self.initial


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date).

    None when there is no usable value (absent, malformed): the caller's backoff decides
    then. A date in the past means "now" (0).
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read so too
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


class Verdict(enum.Enum):
    DONE = "done"
    RETRY = "retry"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to. ``reason`` is a low-cardinality metric label
    (``http_503``, ``network``, ``timeout``); ``detail`` is for the log line."""

    verdict: Verdict
    reason: str
    detail: str = ""
    retry_after: float | None = None


DONE = Outcome(Verdict.DONE, "success")


def classify_status(status: int, headers: Mapping[str, str] | None = None, body: str = "",
                    now: float = 0.0) -> Outcome:  # fmt: skip
    """The failure policy for one HTTP answer."""
    if 200 <= status < 300:
        return DONE
    reason = f"http_{status}" if 100 <= status <= 599 else "http_other"
    detail = f"HTTP {status}: {body[:300]}" if body else f"HTTP {status}"
    if status in RETRIED_STATUSES or 500 <= status <= 599:
        after = parse_retry_after((headers or {}).get("Retry-After"), now)
        return Outcome(Verdict.RETRY, reason, detail, after)
    return Outcome(Verdict.REJECT, reason, detail)


def classify_exception(exc: BaseException) -> Outcome:
    """A failure without an answer (refused, reset, timed out) is always retried: the
    receiver never said no."""
    text = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
    if isinstance(exc, TimeoutError):
        return Outcome(Verdict.RETRY, "timeout", text)
    if isinstance(exc, OSError) or _is_client_error(exc):
        return Outcome(Verdict.RETRY, "network", text)
    return Outcome(Verdict.RETRY, "error", text)


def _is_client_error(exc: BaseException) -> bool:
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        return False
    return isinstance(exc, aiohttp.ClientError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to wait between attempts. ``max_retry_after`` caps what a receiver may
    ask for, so a hostile or broken ``Retry-After: 99999999`` cannot park an output."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    max_retry_after: float = 600.0

    def backoff(self, rng: Callable[[], float] = random.random) -> Backoff:
        return Backoff(self.initial, self.maximum, self.factor, self.jitter, rng)

    def delay(self, backoff: Backoff, outcome: Outcome) -> float:
        """The next wait: the backoff's, or longer if the receiver asked for longer."""
        wait = backoff.next()
        after = outcome.retry_after
        if after is not None and math.isfinite(after):
            wait = max(wait, min(after, self.max_retry_after))
        return wait


async def retry(attempt: Callable[[], Awaitable[Outcome]], policy: RetryPolicy, *,
                stopping: asyncio.Event | None = None,
                on_retry: Callable[[Outcome, float], None] | None = None,
                sleep: Callable[[float], Awaitable[None]] | None = None,
                rng: Callable[[], float] = random.random) -> Outcome:  # fmt: skip
    """Try until the attempt is done or rejected, and return that outcome.

    An exception from the attempt is classified by :func:`classify_exception` (so it is
    retried); cancellation is not. ``on_retry(outcome, delay)`` is called before each wait,
    for the metric and the log line. Once ``stopping`` is set, a failed attempt is not
    retried: :class:`Abandoned` is raised, so the caller never counts it as delivered.
    """
    backoff = policy.backoff(rng)
    while True:
        try:
            outcome = await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = classify_exception(exc)
        if outcome.verdict is not Verdict.RETRY:
            return outcome
        delay = policy.delay(backoff, outcome)
        if on_retry is not None:
            on_retry(outcome, delay)
        if stopping is not None and stopping.is_set():
            raise Abandoned(f"stopping; last attempt: {outcome.detail or outcome.reason}")
        if sleep is not None:
            await sleep(delay)
        elif await wait_or_stop(stopping, delay):
            raise Abandoned(f"stopping; last attempt: {outcome.detail or outcome.reason}")
