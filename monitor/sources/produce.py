"""The one retry loop for records the daemon produces itself (dead letters, forwarded events).

A batch is not processed until the broker has every record it produced: the records not
acknowledged are sent again, with backoff, for as long as it takes; a stop while waiting
(for the backoff, or for more than :data:`STOP_GRACE` for the broker's answer) raises
:class:`~monitor.retry.Abandoned`, so the batch is not marked processed and is read
again after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from monitor.retry import Abandoned, Backoff, wait_or_stop
from monitor.telemetry import Telemetry

T = TypeVar("T")
STOP_GRACE = 10.0  # seconds a send in hand may still take once the daemon is stopping


async def _settled(work: Awaitable[list[BaseException | None]],
                   stopping: asyncio.Event | None) -> list[BaseException | None] | None:  # fmt: skip
    """``work``'s answer; None if the daemon is stopping and it has not answered within
    :data:`STOP_GRACE` of that (a broker away: the producer would wait for ever)."""
    task = asyncio.ensure_future(work)
    if stopping is None:
        return await task
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=STOP_GRACE)  # the batch in hand may still finish
    finally:
        stop.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()


async def until_acknowledged(items: Sequence[T], send: Callable[[list[T]], Awaitable[list[BaseException | None]]],
                             sent: Callable[[list[T]], None], *, what: str, telemetry: Telemetry,
                             backoff: Backoff, stopping: asyncio.Event | None) -> None:  # fmt: skip
    """``send(items)`` gives, per item, None once it is settled (acknowledged, or given up
    on for good and said so), else the error to retry it after; ``sent`` gets each
    round's settled items."""
    pending = list(items)
    while pending:
        errors = await _settled(send(pending), stopping)
        if errors is None:
            raise Abandoned(f"stopping; {len(pending)} {what}s not acknowledged within {STOP_GRACE:.0f}s")
        sent([item for item, e in zip(pending, errors, strict=True) if e is None])
        failed = [item for item, e in zip(pending, errors, strict=True) if e is not None]
        if failed:
            error = next(e for e in errors if e is not None)
            telemetry.source_error(what.replace(" ", "_"), f"{len(failed)} {what}s not acknowledged: {error!r}")
            if await wait_or_stop(stopping, backoff.next()):
                raise Abandoned(f"stopping; {len(failed)} {what}s not acknowledged: {error!r}")
        pending = failed
