"""The last rule set that loaded, kept under ``state.dir``: what a daemon runs when it is
started on a broken one.

A bad edit pushed while no daemon runs (a deploy, a node drain) would otherwise keep every
restarted instance down, blind, until someone fixes the files. So every set that loads is
written to ``state.dir/rules/last-good.json``: each file's name and text, the set's
digest and when it was loaded. The names are the original ones, so the set read back has
the same digest and its rules name the same files; the digest is checked on reading, so a
damaged copy is refused rather than half used. One file written whole (a temporary file,
fsynced, renamed over the old one), so a crash leaves the old copy or the new, never a mix.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from monitor.rules.errors import RuleLoadError
from monitor.rules.loader import RuleSet, load_texts, sources_digest
from monitor.timeparse import format_ts, parse_ts

FORMAT = 1
FILE = Path("rules") / "last-good.json"


class LastGoodUnusable(Exception):
    """The kept copy exists but cannot be used: unreadable, damaged, or no longer loads."""


@dataclass(frozen=True)
class Kept:
    ruleset: RuleSet
    loaded_at_ms: int  # when that set was loaded, by the daemon that kept it
    path: str  # the rules.path it was loaded from


class LastGood:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE

    def save(self, rs: RuleSet, *, loaded_at_ms: int, origin: str) -> None:
        """Keep ``rs``; an :class:`OSError` is the caller's to report (nothing is lost
        but the fallback)."""
        doc = {
            "format": FORMAT, "digest": rs.digest, "loaded_at": format_ts(loaded_at_ms), "path": origin,
            "files": [{"name": name, "text": raw.decode("utf-8")} for name, raw in rs.sources],
        }  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            with contextlib.suppress(OSError):  # not every file system syncs a folder
                os.fsync(fd)
        finally:
            os.close(fd)

    def load(self) -> Kept | None:
        """The kept set compiled again; None if none was kept. A copy that exists but
        cannot be used raises :class:`LastGoodUnusable` saying why."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LastGoodUnusable(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        try:
            doc = orjson.loads(raw)
            if doc.get("format") != FORMAT:
                raise LastGoodUnusable(f"{self.path}: format {doc.get('format')!r}, expected {FORMAT}")
            sources = [(f["name"], f["text"].encode("utf-8")) for f in doc["files"]]
            loaded_at = parse_ts(doc["loaded_at"])
            origin = str(doc["path"])
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise LastGoodUnusable(f"{self.path}: damaged ({exc})") from None
        if sources_digest(sources) != doc["digest"] or loaded_at is None:
            raise LastGoodUnusable(f"{self.path}: damaged (the files do not match the digest kept with them)")
        try:
            rs = load_texts(sources)
        except RuleLoadError as exc:  # kept by an older version that accepted more
            raise LastGoodUnusable(f"{self.path}: no longer loads: {exc.problems[0]}") from None
        return Kept(rs, loaded_at, origin)
