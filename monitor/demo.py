"""``exfil-monitor demo``: a shop's day with a breach in it, and what the rules made of it.

It runs the real pipeline (simulator, file source, then :mod:`monitor.pipeline`) on a temporary file,
then tells the story incident by incident, so a newcomer sees in one command what the
monitor catches, how fast, and that ordinary traffic stays quiet.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TextIO

from monitor.decode import Decoder
from monitor.engine import Alert, Engine
from monitor.replay import run_replay
from monitor.rules.loader import RuleSet
from monitor.simulate import generate, incidents_for, parse_start, write_jsonl
from monitor.sources.files import FileSource
from monitor.telemetry import quiet_telemetry
from monitor.timeparse import format_ts, parse_ts

START = "2026-11-27T00:00:00Z"  # Black Friday, the day after Thanksgiving
HOURS = 24.0


def run_demo(ruleset: RuleSet, *, seed: int, out: TextIO) -> int:
    w = out.write
    w(f"exfil-monitor demo: one simulated day of an online shop, from {START} (Black Friday), seed {seed}\n\n")
    with tempfile.TemporaryDirectory(prefix="exfil-demo-") as tmp:
        path = Path(tmp) / "day.jsonl"
        t0 = time.perf_counter()
        with path.open("wb") as f:
            n = write_jsonl(generate(seed=seed, start=START, hours=HOURS), f)
        w(f"  simulated {n:,} data-access events in {time.perf_counter() - t0:.1f}s\n")
        alerts: list[Alert] = []
        stats = run_replay(FileSource([str(path)]), Decoder(), Engine(ruleset), alerts.append, quiet_telemetry())
    rate = stats.events / stats.seconds if stats.seconds else 0.0
    w(f"  replayed them through {len(ruleset.enabled)} rules in {stats.seconds:.1f}s ({rate:,.0f} events/s)\n")
    w(f"  {len(alerts)} alert(s)\n\n")

    incidents = incidents_for(parse_start(START), HOURS)
    claimed: set[str] = set()
    w("What happened, and what fired:\n\n")
    for i, inc in enumerate(incidents, 1):
        start_ms = parse_ts(inc.start) or 0
        w(f"{i}. {inc.start[11:16]} UTC  {inc.name}: {inc.description}\n")
        mine = [a for a in alerts if a.group.get("actor.id") == inc.actor and a.fired_at_ms >= start_ms]
        if not mine:
            w("     (no alert: a gap in the rules)\n")
        for a in mine:
            claimed.add(a.id)
            delay = (a.fired_at_ms - start_ms) / 60_000
            w(f"     ALERT {a.severity:<8} {a.rule:<34} {format_ts(a.fired_at_ms)[11:19]} "
              f"(+{delay:.0f} min)\n       {a.summary}\n")  # fmt: skip
        w("\n")
    others = [a for a in alerts if a.id not in claimed]
    w(f"Alerts on ordinary traffic (false positives): {len(others)}\n")
    for a in others:
        w(f"     {a.severity:<8} {a.rule:<34} {format_ts(a.fired_at_ms)}  {a.summary}\n")
    w(
        "\nEach alert is one JSON object with a stable id; `replay --format json` shows them in full.\n"
        "Try it yourself:\n"
        f"  exfil-monitor simulate --seed {seed} -o /tmp/day.jsonl\n"
        "  exfil-monitor replay --format table /tmp/day.jsonl\n"
    )
    return 0
