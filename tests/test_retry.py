"""The one retry policy: what is retried, how long it waits, and how a stop ends it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.retry import (
    Abandoned,
    Backoff,
    Outcome,
    RetryPolicy,
    Verdict,
    classify_exception,
    classify_status,
    parse_retry_after,
    retry,
    wait_or_stop,
)

NOW = 1_795_000_000.0


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_done(status: int) -> None:
    assert classify_status(status).verdict is Verdict.DONE


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_408_429_and_5xx_are_retried(status: int) -> None:
    o = classify_status(status, body="busy")
    assert o.verdict is Verdict.RETRY
    assert o.reason == f"http_{status}"
    assert "busy" in o.detail


@pytest.mark.parametrize("status", [300, 400, 401, 403, 404, 409, 413, 422, 451])
def test_other_answers_are_rejected_never_retried(status: int) -> None:
    o = classify_status(status, body="bad label")
    assert o.verdict is Verdict.REJECT
    assert o.detail == f"HTTP {status}: bad label"


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    date = format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)
    assert parse_retry_after(date, NOW) == pytest.approx(90)
    past = format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True)
    assert parse_retry_after(past, NOW) == 0.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37", NOW) == 0.0  # zone-less: GMT, past


@pytest.mark.parametrize("bad", [None, "", "soon", "-5", "1.5", "١٢", "Mon, 99 Foo 2026"])
def test_an_unusable_retry_after_leaves_it_to_the_backoff(bad: str | None) -> None:
    assert parse_retry_after(bad, NOW) is None


def test_429_carries_the_receivers_retry_after() -> None:
    o = classify_status(429, {"Retry-After": "7"}, now=NOW)
    assert o.retry_after == 7.0
    assert classify_status(400, {"Retry-After": "7"}).retry_after is None


def test_network_errors_and_timeouts_are_retried() -> None:
    assert classify_exception(ConnectionRefusedError("refused")).reason == "network"
    assert classify_exception(aiohttp.ServerDisconnectedError()).reason == "network"
    assert classify_exception(TimeoutError()).reason == "timeout"
    assert classify_exception(ValueError("x")).verdict is Verdict.RETRY


def test_backoff_grows_to_its_maximum_with_bounded_jitter() -> None:
    b = Backoff(1.0, 8.0, rng=lambda: 0.5)
    assert [b.next() for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    b.reset()
    assert b.next() == 1.0


@given(st.floats(0, 1), st.integers(0, 20))
def test_jitter_stays_within_its_band(r: float, steps: int) -> None:
    b = Backoff(0.5, 30.0, jitter=0.2, rng=lambda: r)
    for _ in range(steps):
        b.next()
    base = min(30.0, 0.5 * 2**steps)
    assert 0.8 * base - 1e-9 <= b.next() <= 1.2 * base + 1e-9


def test_policy_waits_at_least_what_the_receiver_asks_and_caps_it() -> None:
    p = RetryPolicy(initial=1.0, jitter=0.0, max_retry_after=60.0)
    b = p.backoff()
    assert p.delay(b, Outcome(Verdict.RETRY, "http_429", retry_after=10.0)) == 10.0
    assert p.delay(b, Outcome(Verdict.RETRY, "http_429", retry_after=0.0)) == 2.0
    assert p.delay(b, Outcome(Verdict.RETRY, "http_429", retry_after=1e12)) == 60.0


async def test_retry_until_done_reporting_each_retry() -> None:
    answers = [
        classify_status(503),
        classify_status(429, {"Retry-After": "3"}, now=0.0),
        classify_status(200),
    ]
    waits: list[float] = []
    seen: list[str] = []

    async def attempt() -> Outcome:
        return answers.pop(0)

    async def sleep(s: float) -> None:
        waits.append(s)

    out = await retry(attempt, RetryPolicy(initial=0.5, jitter=0.0), sleep=sleep,
                      on_retry=lambda o, d: seen.append(o.reason))  # fmt: skip
    assert out.verdict is Verdict.DONE
    assert seen == ["http_503", "http_429"]
    assert waits == [0.5, 3.0]


async def test_a_rejection_ends_retrying_at_once() -> None:
    calls = 0

    async def attempt() -> Outcome:
        nonlocal calls
        calls += 1
        return classify_status(400, body="invalid label")

    out = await retry(attempt, RetryPolicy())
    assert (out.verdict, calls) == (Verdict.REJECT, 1)


async def test_an_exception_is_retried_a_cancel_is_not() -> None:
    calls = 0

    async def attempt() -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("reset by peer")
        return classify_status(200)

    async def sleep(s: float) -> None:
        return None

    assert (await retry(attempt, RetryPolicy(), sleep=sleep)).verdict is Verdict.DONE

    async def cancelled() -> Outcome:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retry(cancelled, RetryPolicy(), sleep=sleep)


async def test_a_stop_cuts_the_wait_short_and_abandons() -> None:
    stopping = asyncio.Event()

    async def attempt() -> Outcome:
        return classify_status(503)

    task = asyncio.create_task(retry(attempt, RetryPolicy(initial=60.0), stopping=stopping))
    await asyncio.sleep(0.05)
    stopping.set()
    async with asyncio.timeout(2):
        with pytest.raises(Abandoned, match="HTTP 503"):
            await task
    with pytest.raises(Abandoned):  # already stopping: one attempt, no wait
        await retry(attempt, RetryPolicy(initial=60.0), stopping=stopping)


async def test_wait_or_stop() -> None:
    stopping = asyncio.Event()
    assert await wait_or_stop(stopping, 0.01) is False
    assert await wait_or_stop(None, 0.0) is False
    stopping.set()
    assert await wait_or_stop(stopping, 60) is True
