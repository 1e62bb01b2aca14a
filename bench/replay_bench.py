"""Replay speed against a bare decode loop, measured in the same run.

    python bench/replay_bench.py [--events 1000000] [--rules rules/]

Simulates about a million events of shop traffic (cached under bench/out/), then times:
  * baseline: read the file and ``orjson.loads`` each line, nothing else;
  * replay: the same lines through the decoder and the engine with the rule pack, and the
    per-batch telemetry, as ``exfil-monitor replay`` runs them.
The two run interleaved, batch by batch of the replay command's own file source, each
batch read once and timed for both: this machine's speed drifts by tens of percent within seconds,
and only measurements taken side by side can be compared. Rates are CPU time of this
process. It also runs ``run_replay`` over the whole file once, as the command does, and
prints the share of events that hit a windowed rule and the memory per active group.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.decode import Decoder  # noqa: E402
from monitor.engine import Alert, Engine  # noqa: E402
from monitor.event import getter  # noqa: E402
from monitor.replay import run_replay  # noqa: E402
from monitor.rules.loader import CompiledRule, load_rules  # noqa: E402
from monitor.runtime import tune_gc  # noqa: E402
from monitor.simulate import generate, write_jsonl  # noqa: E402
from monitor.sources.files import FileSource  # noqa: E402
from monitor.telemetry import Metrics, RateLimiter, Telemetry, configure_logging  # noqa: E402


def dataset(events: int, seed: int) -> Path:
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"shop-{events}-{seed}.jsonl"
    if not path.exists():
        t0 = time.process_time()
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            # generate() spreads `events` over the day; a million events is a big shop's day
            n = write_jsonl(generate(seed=seed, events=events), f)
        tmp.rename(path)
        print(f"simulated {n:,} events in {time.process_time() - t0:.1f}s -> {path}")
    return path


def baseline(path: Path) -> tuple[int, float]:
    loads = orjson.loads
    n = 0
    t0 = time.process_time()
    with path.open("rb") as f:
        for line in f:
            loads(line)
            n += 1
    return n, time.process_time() - t0


def replay(path: Path, rules: Path) -> tuple[int, float, int, Engine]:
    """The replay command's own loop (run_replay), alerts counted instead of printed."""
    engine = Engine(load_rules(rules))
    telemetry = Telemetry(Metrics(), configure_logging("console", "error"), limiter=RateLimiter(1, lambda: 0.0))
    alerts: list[Alert] = []
    tune_gc()  # as `exfil-monitor replay` does
    t0 = time.process_time()
    stats = run_replay(FileSource([str(path)]), Decoder(), engine, alerts.append, telemetry)
    return stats.events, time.process_time() - t0, len(alerts), engine


def interleaved(path: Path, rules: Path) -> tuple[int, float, float, int]:
    """(events, bare seconds, replay seconds, alerts) with the two timed block by block."""
    loads = orjson.loads
    engine = Engine(load_rules(rules))
    decoder = Decoder()
    telemetry = Telemetry(Metrics(), configure_logging("console", "error"), limiter=RateLimiter(1, lambda: 0.0))
    tune_gc()
    clock = time.process_time
    n = alerts = 0
    bare = full = 0.0
    batches = FileSource([str(path)]).batches()  # the replay command's own batches
    while True:
        t0 = clock()
        batch = next(batches, None)
        if batch is None:
            break
        lines = batch.lines
        t1 = clock()
        for line in lines:
            loads(line)
        t2 = clock()
        good, _bad = decoder.decode(lines)
        t3 = clock()
        alerts += len(engine.process(good))
        telemetry.batch_done(engine, clock() - t3, None, None)
        del good
        t4 = clock()
        bare += (t1 - t0) + (t2 - t1)
        full += (t1 - t0) + (t4 - t2)
        n += len(lines)
    return n, bare, full, alerts


def windowed_share(path: Path, rules: Path, limit: int = 200_000) -> float:
    """Share of events that match at least one windowed rule (the state-touching path)."""
    windowed = [r for r in load_rules(rules).enabled if r.spec.window_ms]
    index_get = {r.id: getter(r.index.path) for r in windowed if r.index is not None}

    def hits(r: CompiledRule, e: dict[str, Any], ts: int) -> bool:
        if r.index is not None:
            v = index_get[r.id](e)
            if not (v == r.index.value if r.index.op == "eq" else v in r.index.value):
                return False
        return r.test(e, ts)

    with path.open("rb") as f:
        lines = [line for _, line in zip(range(limit), f, strict=False)]
    good, _ = Decoder().decode(lines)
    hit = sum(any(hits(r, e, ts) for r in windowed) for e, ts in good)
    return hit / max(len(good), 1)


def bytes_per_group(path: Path, rules: Path, events: int = 300_000) -> tuple[float, int]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = Engine(load_rules(rules))
    decoder = Decoder()
    seen = 0
    for batch in FileSource([str(path)]).batches():
        good, _ = decoder.decode(batch.lines)
        engine.process(good)
        seen += len(batch.lines)
        if seen >= events:
            break
    del good, batch
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    groups = sum(len(s.groups) for s in engine.states)
    return (after - before) / max(groups, 1), groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rules", type=Path, default=ROOT / "rules")
    args = ap.parse_args()
    path = dataset(args.events, args.seed)
    n, bare_s, full_s, alerts = interleaved(path, args.rules)
    whole = replay(path, args.rules)
    share = windowed_share(path, args.rules)
    per_group, groups = bytes_per_group(path, args.rules)
    print(f"events:               {n:,}")
    print(f"bare orjson loop:     {n / bare_s:,.0f} events/s")
    print(f"replay (rule pack):   {n / full_s:,.0f} events/s, {alerts} alerts")
    print(f"ratio replay/bare:    {bare_s / full_s:.3f}   (goal >= 0.25; block by block)")
    print(f"run_replay, whole:    {whole[0] / whole[1]:,.0f} events/s, {whole[2]} alerts (one pass, as the command)")
    print(f"windowed-rule hits:   {share:.1%} of events (first 200k)")
    print(f"memory per group:     {per_group:,.0f} bytes over {groups:,} active groups (after 300k events)")


if __name__ == "__main__":
    main()
