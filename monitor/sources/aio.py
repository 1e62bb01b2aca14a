"""Bounded waits for :mod:`monitor.sources.kafka`: a lock taken only if it comes in time,
a sleep a stop cuts short, and an await whose failure does not matter.

Split from the Kafka source because they are plain asyncio, with nothing of Kafka in
them, and read better on their own than at the end of the source's life cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any


@contextlib.asynccontextmanager
async def locked(lock: asyncio.Lock, timeout: float) -> AsyncIterator[bool]:
    """Hold ``lock`` if it can be had within ``timeout``; yields whether it is held."""
    try:
        async with asyncio.timeout(timeout):
            await lock.acquire()
    except TimeoutError:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


async def wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def quietly(aw: Awaitable[Any], timeout: float | None = None) -> None:
    """Await, ignoring failure: closing a client that never fully started, or giving up.

    aiokafka's ``stop()`` can raise CancelledError from its own cancelled internals when
    the broker is down; that is a failure to ignore too, unless this task itself is
    being cancelled, which must go on."""
    try:
        async with asyncio.timeout(timeout):
            await aw
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # the caller is shutting down either way
        pass
