"""An engine's state as bytes and back: what a checkpoint holds for one partition.

A checkpoint must restore exactly what the engine would have had, or re-processing the
events after it gives other alerts than an uninterrupted run. So everything that decides
an alert is here: every rule's groups in their recency order (the group cap evicts the
least recently used), their buckets, running totals, distinct sets and sketches,
remembered fires (suppression), samples, the evicted-group summary, the sweep clock, and
the episode table with the alerts that opened the episodes. Counters the telemetry reads
are not: they count this process's work.

The format is plain data (orjson, tagged where JSON has no type of its own: tuples, sets,
integers past 64 bits, infinities, the JSON keys of :class:`~monitor.event.JsonKey`,
sketches), compressed, behind a header of magic, format version and SHA-256, so a torn
or foreign file is refused rather than half-restored. :data:`FORMAT_VERSION` goes up
when the layout changes; :func:`decode` keeps reading every earlier version
(``tests/engine/data/`` holds one checkpoint of each, which the tests restore).

A rule's state is restored only into a rule of the same **shape** (kind, group_by,
window, resolution, aggregate): state made under another shape would be read wrongly.
Thresholds, conditions, suppression and labels may differ: they apply from the next
event on, as a reload does.

The codec reads and writes the engine's private fields on purpose: it is the one place
that knows the state's layout, so the hot path keeps its plain attributes.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import zlib
from array import array
from collections import OrderedDict
from dataclasses import fields
from typing import Any

import orjson

from monitor.engine.alert import Alert
from monitor.engine.engine import Engine
from monitor.engine.episodes import Episode, Resolution
from monitor.engine.evicted import Evicted
from monitor.engine.group import Group
from monitor.engine.hll import HLL
from monitor.engine.windows import RuleState
from monitor.event import JsonKey
from monitor.rules.model import RuleSpec

FORMAT_VERSION = 1
MAGIC = b"XMCK"
_HEADER = struct.Struct(">4sH32s")  # magic, version, sha256 of the compressed payload
_INT_MAX = 2**63 - 1
_ALERT_FIELDS = tuple(f.name for f in fields(Alert))


class SnapshotError(Exception):
    """The bytes are not a snapshot this daemon can read (torn, foreign, from the future)."""


# -- values --------------------------------------------------------------------------


def pack(v: Any) -> Any:
    """``v`` as JSON-safe data; dicts only ever appear as tags, so tags are unambiguous."""
    cls = v.__class__
    if cls is str or v is None or cls is bool:
        return v
    if cls is int:
        return v if -_INT_MAX <= v <= _INT_MAX else {"i": str(v)}
    if cls is float:
        return v if math.isfinite(v) else {"f": repr(v)}
    if cls is list:
        return [pack(x) for x in v]
    if cls is JsonKey:
        return {"j": v[0]}
    if cls is tuple:
        return {"t": [pack(x) for x in v]}
    if cls is set or cls is frozenset:
        return {"s": [pack(x) for x in v]}
    if cls is dict or cls is OrderedDict:
        return {"d": [[pack(k), pack(x)] for k, x in v.items()]}
    if cls is HLL:
        return {"h": base64.b64encode(bytes(v.registers)).decode()}
    raise TypeError(f"cannot snapshot a {cls.__name__}")


def unpack(v: Any) -> Any:
    cls = v.__class__
    if cls is list:
        return [unpack(x) for x in v]
    if cls is not dict:
        return v
    ((tag, x),) = v.items()
    if tag == "t":
        return tuple(unpack(y) for y in x)
    if tag == "s":
        return {unpack(y) for y in x}
    if tag == "d":
        return {unpack(k): unpack(y) for k, y in x}
    if tag == "j":
        return JsonKey((x,))
    if tag == "i":
        return int(x)
    if tag == "f":
        return float(x)
    if tag == "h":
        return HLL(bytearray(base64.b64decode(x)))
    raise SnapshotError(f"unknown tag {tag!r}")


# -- the engine's parts ----------------------------------------------------------------


def shape(spec: RuleSpec) -> list[Any]:
    """What a rule's state means: state is only ever restored into the same shape."""
    return [spec.aggregate, list(spec.group_by), spec.window_ms, spec.resolution_ms, spec.aggregate_field]


def _group(g: Group) -> list[Any]:
    buckets = [[b, pack(bk[0]), bk[1], bk[2]] for b, bk in g.buckets.items()]
    return [g.newest, g.cur, buckets, pack(g.total), g.count, list(g.fires), pack(g.samples),
            pack(g.refs), pack(g.sketch), g.stored, g.seeded]  # fmt: skip


def _ungroup(d: list[Any]) -> Group:
    newest, cur, buckets, total, count, fires, samples, refs, sketch, stored, seeded = d
    g = Group(newest, cur, unpack(total), unpack(refs))
    g.buckets = {b: [unpack(v), n, t] for b, v, n, t in buckets}
    g.count, g.fires, g.samples = count, (list(fires) if fires else ()), unpack(samples)
    g.sketch, g.stored, g.seeded = unpack(sketch), stored, seeded
    return g


def _evicted(e: Evicted | None) -> Any:
    if e is None:
        return None
    return {"spans": [[c, base64.b64encode(a.tobytes()).decode()] for c, a in e.spans.items()]}


def _unevict(d: Any, state: RuleState) -> Evicted | None:
    if d is None:
        return None
    e = Evicted(state.kind, state.nb, state.lateness // state.res + 1)
    for c, data in d["spans"]:
        cells = array("d")
        cells.frombytes(base64.b64decode(data))
        e.spans[c] = cells
    return e


def _alert(a: Alert) -> list[Any]:
    return [pack(getattr(a, name)) for name in _ALERT_FIELDS]


def _unalert(d: list[Any]) -> Alert:
    return Alert(**{name: unpack(v) for name, v in zip(_ALERT_FIELDS, d, strict=True)})


def _episode(ep: Episode) -> list[Any]:
    return [ep.rule, pack(ep.key), ep.start_ms, ep.last_hold_ms, ep.resolve_after_ms, _alert(ep.alert)]


def _resolution(r: Resolution) -> list[Any]:
    return [r.rule, pack(r.key), r.start_ms, r.last_hold_ms, r.resolved_at_ms, _alert(r.alert)]


# -- the whole -------------------------------------------------------------------------


def to_data(engine: Engine) -> dict[str, Any]:
    """The engine's state as plain data (see the module docstring for what is in it)."""
    table = engine.episodes
    return {
        "newest": engine.newest,
        "last_sweep": engine._last_sweep,
        "rules": [
            {
                "id": s.id,
                "shape": shape(s.spec),
                "cap_scan": s._cap_scan,
                "groups": [[pack(k), _group(g)] for k, g in s.groups.items()],
                "evicted": _evicted(s.evicted),
            }
            for s in engine.states
        ],
        "episodes": [_episode(ep) for ep in table._open.values()],
        "final": [_resolution(r) for r in table._final],
    }


def restore_data(engine: Engine, data: dict[str, Any]) -> list[str]:
    """Put ``data`` into a fresh ``engine``; the ids of rules whose saved state did not fit
    (gone, or of another shape) are returned: those start empty. Their open episodes are
    dropped with them only when the rule is gone: an episode of a rule whose shape changed
    is kept, so it still resolves."""
    engine.newest = data["newest"]
    engine._last_sweep = data["last_sweep"]
    by_id = {s.id: s for s in engine.states}
    misfits = []
    for saved in data["rules"]:
        s = by_id.get(saved["id"])
        if s is None or saved["shape"] != shape(s.spec):
            misfits.append(saved["id"])
            continue
        s.groups.clear()
        s.groups.update((unpack(k), _ungroup(g)) for k, g in saved["groups"])
        s.evicted = _unevict(saved["evicted"], s)
        s._cap_scan = saved["cap_scan"]
    table = engine.episodes
    resolve_after = {s.id: s.spec.resolve_after_ms for s in engine.states}
    for rule, key, start, last, after, alert in data["episodes"]:
        if rule in resolve_after:
            k = unpack(key)
            table._open[(rule, k)] = Episode(rule, k, start, last, after, _unalert(alert))
    for rule, key, start, last, resolved, alert in data["final"]:
        table._final.append(Resolution(rule, unpack(key), start, last, resolved, _unalert(alert)))
    table._due = min((ep.resolved_at_ms for ep in table._open.values()), default=table._due)
    return misfits


def encode(engine: Engine) -> bytes:
    payload = zlib.compress(orjson.dumps(to_data(engine)), 1)
    return _HEADER.pack(MAGIC, FORMAT_VERSION, hashlib.sha256(payload).digest()) + payload


def decode(blob: bytes) -> dict[str, Any]:
    """The plain data of a snapshot, of this format version or an earlier one."""
    if len(blob) < _HEADER.size:
        raise SnapshotError(f"{len(blob)} bytes: shorter than a snapshot's header")
    magic, version, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise SnapshotError("not an exfil-monitor snapshot (wrong magic)")
    if version > FORMAT_VERSION:
        raise SnapshotError(f"format version {version} is newer than this daemon's ({FORMAT_VERSION})")
    payload = blob[_HEADER.size :]
    if hashlib.sha256(payload).digest() != digest:
        raise SnapshotError("checksum mismatch: the snapshot is torn or corrupted")
    try:
        data: dict[str, Any] = orjson.loads(zlib.decompress(payload))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"unreadable payload: {exc}") from None
    return data


def restore(engine: Engine, blob: bytes) -> list[str]:
    """:func:`decode` then :func:`restore_data`."""
    return restore_data(engine, decode(blob))
