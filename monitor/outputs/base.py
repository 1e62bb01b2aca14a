"""What every output shares: the lifecycle and the contract of one attempt.

An output never sees the consumer. :class:`monitor.outputs.delivery.Delivery` fsyncs each
record into the spool of every output it is routed to (that is what the offset commit
waits for) and a drain task per output hands the spool's oldest records to :meth:`send`.
So an output only has to say, for one attempt, what became of the records it was given:

- it returns: the receiver has all of them (written, acknowledged);
- it raises :class:`Rejected`: the receiver refused one of them for good (a 4xx other than
  408 and 429, a record too large for the broker). Those before it were taken; the
  refused one is parked (kept on disk with the answer, counted, logged) and never retried,
  so a misconfigured receiver cannot fill the spool and stop detection;
- it raises :class:`RetryLater` or anything else: nothing counts as taken and the drain
  tries the same records again with backoff (``Retry-After`` honoured).

Records are plain dicts, ``Alert.to_dict`` or ``Resolution.to_dict`` as masked by the
daemon, with ``type`` ``"alert"`` or ``"resolved"``: the same bytes the spool holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from monitor.configtypes import Duration, Model
from monitor.outputs.routing import Match, MatchSpec
from monitor.retry import Outcome, Verdict

Record = Mapping[str, Any]


class OutputConfigBase(Model):
    """What every output's config section has besides its ``type``."""

    name: str | None = None  # the metric label and the spool's folder; defaults to the type
    send_timeout: Duration = 30_000
    match: MatchSpec | None = None  # which alerts this output takes (monitor.outputs.routing)

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type", "output"))


class Rejected(Exception):
    """The receiver refused ``records[index]`` for good; those before it were taken.

    ``index`` None: the receiver refused the batch as a whole without saying which record
    (Alertmanager answers one 400 for an array); the drain then sends those records one
    at a time, so only the bad one is parked.
    """

    def __init__(self, answer: str, index: int | None = 0, reason: str = "rejected") -> None:
        super().__init__(answer)
        self.answer = answer
        self.index = index
        self.reason = reason


class RetryLater(Exception):
    """Nothing was taken, and trying again may work (408, 429, 5xx, a broker down).
    ``delay`` is what the receiver asked for (``Retry-After``), in seconds."""

    def __init__(self, reason: str, detail: str = "", delay: float | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason
        self.delay = delay


def raise_for(outcome: Outcome) -> None:
    """One HTTP answer as :func:`monitor.retry.classify_status` judged it, as the contract
    above says it: return when done, raise otherwise."""
    if outcome.verdict is Verdict.RETRY:
        raise RetryLater(outcome.reason, outcome.detail, outcome.retry_after)
    if outcome.verdict is Verdict.REJECT:
        raise Rejected(outcome.detail, index=None, reason=outcome.reason)


class Output(ABC):
    """One destination. Subclasses implement one attempt of each step.

    ``start`` twice is a bug and raises; ``stop`` may be called any number of times, also
    on an output that never started. ``max_batch`` bounds the records of one ``send``.
    An output with ``resend_interval`` (seconds) also gets :meth:`resend` with the open
    episodes' alert records that often (Alertmanager's lease); others ignore it.
    """

    kind: ClassVar[str]
    max_batch: int = 100
    resend_interval: float | None = None

    def __init__(self, name: str, *, send_timeout: float = 30.0) -> None:
        self.name = name
        self.send_timeout = send_timeout
        self.match: Match | None = None  # set from the config by build_outputs
        self._state = "new"

    @property
    def started(self) -> bool:
        return self._state == "started"

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"output {self.name!r} was already started")
        await self._open()  # a failure leaves it "new", so start can be tried again
        self._state = "started"

    async def send(self, records: Sequence[Record]) -> None:
        if self._state != "started":
            raise RuntimeError(f"output {self.name!r} is not started")
        if records:
            await self._send(records)

    def ready_in(self) -> float:
        """Seconds until this output may send again (a receiver's rate limit); the drain
        waits that long before it takes records, so what comes meanwhile goes together."""
        return 0.0

    async def resend(self, open_records: Sequence[Record]) -> None:
        """Re-send what is still open (one attempt; the next interval is the retry)."""
        if self._state == "started":
            await self._resend(open_records)

    async def flush(self) -> None:
        if self._state == "started":
            await self._flush()

    async def stop(self) -> None:
        previous, self._state = self._state, "stopped"
        if previous == "started":
            await self._close()

    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _send(self, records: Sequence[Record]) -> None: ...

    async def _resend(self, open_records: Sequence[Record]) -> None:
        return None

    async def _flush(self) -> None:
        return None

    async def _close(self) -> None:
        await self._flush()
