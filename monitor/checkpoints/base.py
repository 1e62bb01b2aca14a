"""What a checkpoint is, and what every store promises.

A checkpoint is one partition's engine snapshot (:mod:`monitor.engine.snapshot`) with the
offset it reflects: the first record the state has not seen. Restoring means loading the
state and reading on from that offset, so the checkpoint, not the committed offset, is
where a partition starts. A store writes each checkpoint whole or not at all and keeps the
previous good one, so that a write torn by a crash, or bytes corrupted at rest, fall back
to it instead of to an empty state: :class:`Loaded` says when that happened.

A checkpoint on the wire or on disk is a JSON header line and the snapshot::

    {"v": 1, "offset": 1234, "written_at": 1796000000000, "sha256": "<hex of the snapshot>"}\\n<snapshot>
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

VERSION = 1


class CheckpointError(Exception):
    """A checkpoint exists but cannot be read, and no earlier good one either."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    offset: int  # the first record the state has not seen
    state: bytes  # monitor.engine.snapshot.encode
    written_at_ms: int
    position: Any = None  # a file source's follow positions (plain data): its "offset"

    def to_bytes(self) -> bytes:
        header = {"v": VERSION, "offset": self.offset, "written_at": self.written_at_ms,
                  "sha256": hashlib.sha256(self.state).hexdigest()}  # fmt: skip
        if self.position is not None:
            header["position"] = self.position
        return orjson.dumps(header) + b"\n" + self.state

    @classmethod
    def from_bytes(cls, blob: bytes) -> Checkpoint:
        head, sep, state = blob.partition(b"\n")
        if not sep:
            raise ValueError("no header line")
        try:
            h = orjson.loads(head)
            version, offset, written, digest = h["v"], h["offset"], h["written_at"], h["sha256"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable header: {exc}") from None
        if not isinstance(version, int) or not isinstance(digest, str):
            raise ValueError(f"unreadable header: version {version!r}")
        if version > VERSION:
            raise ValueError(f"checkpoint version {version} is newer than this daemon's ({VERSION})")
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"bad offset {offset!r}")
        if hashlib.sha256(state).hexdigest() != digest:
            raise ValueError("checksum mismatch: torn or corrupted")
        return cls(offset, state, written, h.get("position"))


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a store found for one partition: the newest good checkpoint (None: there was
    never one), and why an unreadable newer one was passed over, if it was."""

    checkpoint: Checkpoint | None
    fell_back: str | None = None
    error: str | None = None  # set (checkpoint None) when no checkpoint of the key is readable


class Store(Protocol):
    """Checkpoints by key (``<topic>.<partition>``, or a file source's name)."""

    name: str

    async def start(self) -> None: ...

    async def load(self, keys: list[str]) -> dict[str, Loaded]:
        """Each key's newest good checkpoint; a key whose checkpoints are all unreadable
        has :attr:`Loaded.error`. Raises :class:`CheckpointError` when the store itself
        cannot be read (nothing is known of any key then)."""
        ...

    async def save(self, checkpoints: Mapping[str, Checkpoint]) -> int:
        """Write them durably (fsynced, or acknowledged by every in-sync replica) before it
        returns; the bytes written."""
        ...

    async def stop(self) -> None: ...


def key_of(topic: str, partition: int) -> str:
    """A Kafka partition's checkpoint key: unambiguous, the partition being the number
    after the last dot."""
    return f"{topic}.{partition}"
