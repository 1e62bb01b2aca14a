"""Engine state as bytes that survive the process: a versioned, checksummed envelope.

State written by one run is read by another, perhaps of a newer (or, after a rollback,
an older) monitor, perhaps from a disk that tore the write. So every snapshot says what
it is and how it was written, in a header line before its payload::

    {"kind":"episodes","version":1,"bytes":1234,"sha256":"…"}\\n
    <payload: the plain data as JSON, exactly ``bytes`` long>

A snapshot that is not whole, whose checksum does not match, of another kind, or of a
version this monitor cannot read is refused with :class:`SnapshotError`, never half
used: the caller decides what starting without it means. An older version is read
through the :class:`Schema`'s upgrades (one function per step, ``n`` to ``n + 1``), so a
format change is one new function and one version bump.

The envelope knows no engine type; :data:`EPISODES` and :func:`encode_episodes` /
:func:`decode_episodes` put the episode table in it. The per-partition checkpoint to
come is meant to be another schema in the same envelope, holding the same
:func:`episode_data` items.

Pure: bytes in, bytes out; the files are :mod:`monitor.episodestore`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.engine.alert import Alert
from monitor.engine.episodes import Episode
from monitor.event import key_of

__all__ = [
    "EPISODES",
    "Schema",
    "SnapshotError",
    "decode_episodes",
    "encode_episodes",
    "episode_data",
    "episode_from_data",
    "seal",
    "unseal",
]


class SnapshotError(ValueError):
    """A snapshot that cannot be used: not whole, damaged, of another kind or version."""


Upgrade = Callable[[Any], Any]


@dataclass(frozen=True)
class Schema:
    """What a snapshot holds (``kind``), its current ``version``, and how to read older
    ones: ``upgrades[n]`` turns version ``n``'s payload into version ``n + 1``'s."""

    kind: str
    version: int
    upgrades: Mapping[int, Upgrade] = field(default_factory=dict)

    @property
    def oldest(self) -> int:
        """The oldest version this schema still reads."""
        v = self.version
        while v - 1 in self.upgrades:
            v -= 1
        return v


def seal(schema: Schema, data: Any) -> bytes:
    """``data`` (plain: dicts, lists, text, numbers) as a snapshot of ``schema``'s version."""
    payload = orjson.dumps(data)
    header = {"kind": schema.kind, "version": schema.version, "bytes": len(payload),
              "sha256": hashlib.sha256(payload).hexdigest()}  # fmt: skip
    return orjson.dumps(header) + b"\n" + payload


def unseal(schema: Schema, blob: bytes) -> Any:
    """The plain data of a snapshot of ``schema``, upgraded to its current version."""
    head, sep, payload = blob.partition(b"\n")
    try:
        header = orjson.loads(head) if sep else None
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or not {"kind", "version", "bytes", "sha256"} <= header.keys():
        raise SnapshotError("not a snapshot: no header line")
    if header["kind"] != schema.kind:
        raise SnapshotError(f"a snapshot of {header['kind']!r}, not of {schema.kind!r}")
    if len(payload) != header["bytes"]:
        raise SnapshotError(f"not whole: {len(payload)} of {header['bytes']} bytes")
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise SnapshotError("damaged: the checksum does not match")
    version = header["version"]
    if not isinstance(version, int) or version > schema.version:
        raise SnapshotError(f"version {version!r} was written by a newer monitor; this one reads "
                            f"{schema.kind} versions {schema.oldest} to {schema.version}")  # fmt: skip
    if version < schema.oldest:
        raise SnapshotError(f"version {version} is older than this monitor reads "
                            f"({schema.kind} versions {schema.oldest} to {schema.version})")  # fmt: skip
    try:
        data = orjson.loads(payload)
        for v in range(version, schema.version):
            data = schema.upgrades[v](data)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"damaged: {exc}") from None
    return data


# ---------------------------------------------------------------- the episode table

# Version 1: a list of episode_data items.
EPISODES = Schema("episodes", 1)

_ALERT_FIELDS = tuple(f.name for f in dataclasses.fields(Alert))


def episode_data(ep: Episode) -> dict[str, Any]:
    """One open episode as plain data. The group key is not written: it is derived
    again from the opening alert's group values (:func:`monitor.event.key_of`), as the
    rule's state derives it from an event."""
    a = ep.alert
    return {"rule": ep.rule, "start_ms": ep.start_ms, "last_hold_ms": ep.last_hold_ms,
            "resolve_after_ms": ep.resolve_after_ms,
            "alert": {name: getattr(a, name) for name in _ALERT_FIELDS}}  # fmt: skip


def episode_from_data(d: Any) -> Episode:
    """The episode :func:`episode_data` made; :class:`SnapshotError` for anything else."""
    try:
        alert = dict(d["alert"])
        if set(alert) != set(_ALERT_FIELDS):
            raise SnapshotError(f"damaged: an alert with fields {sorted(set(alert) ^ set(_ALERT_FIELDS))} amiss")
        a = Alert(**alert)
        ints = (d["start_ms"], d["last_hold_ms"], d["resolve_after_ms"])
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in ints):
            raise SnapshotError("damaged: an episode whose times are not whole milliseconds")
        if not isinstance(d["rule"], str) or not isinstance(a.group, dict):
            raise SnapshotError("damaged: an episode without a rule id or group")
        return Episode(d["rule"], key_of(list(a.group.values())), *ints, alert=a)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SnapshotError):
            raise
        raise SnapshotError(f"damaged: an episode that does not read: {exc!r}") from None


def encode_episodes(episodes: Iterable[Episode]) -> bytes:
    return seal(EPISODES, [episode_data(ep) for ep in episodes])


def decode_episodes(blob: bytes) -> list[Episode]:
    data = unseal(EPISODES, blob)
    if not isinstance(data, list):
        raise SnapshotError("damaged: the episodes are not a list")
    return [episode_from_data(d) for d in data]
