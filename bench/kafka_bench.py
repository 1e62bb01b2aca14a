"""The daemon against a real broker: its rate next to a bare consumer's, and its latency.

    python bench/kafka_bench.py [--events 1000000] [--partitions 3] [--rate 5000] [--seconds 30]

Needs a broker: KAFKA_BOOTSTRAP, or one started here with scripts/kafka-local.

1. Rate. About a million simulated events are produced (keyed by actor id) into a fresh
   topic. Then, one after the other over the same topic and with the same fetch
   settings: a bare aiokafka ``getmany`` loop that only ``orjson.loads`` each record, and
   the daemon (config → Kafka source → decoder → engine with the bundled rule pack →
   outputs → commits), each in its own consumer group from the earliest offset. Both
   rates are measured from the first record to the last; the ratio is the goal (>= 0.6).
   Then the daemon again with one rule more, grouped by ``customer_id``: counted after
   repartitioning (forwarded to the internal topic and read back), until the last
   forwarded event is counted; its rate against the pack alone is what repartitioning costs.
2. Latency. A producer process sends the shop's traffic at a steady ``--rate`` events per
   second for ``--seconds``, with a probe event every 100 events that stamps its send
   time; a probe rule (added to the bundled pack) fires on each. Latency is from the
   probe's send to its alert reaching the daemon's output: p50 and p99 (goal p99 < 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app import Daemon  # noqa: E402
from monitor.config import Config  # noqa: E402
from monitor.engine import snapshot  # noqa: E402
from monitor.outputs.base import Output  # noqa: E402
from monitor.produce import create_topic, produce  # noqa: E402
from monitor.runtime import tune_gc  # noqa: E402
from monitor.simulate import generate  # noqa: E402
from monitor.timeparse import format_ts  # noqa: E402

FETCH = {"max_partition_fetch_bytes": 4 * 1024 * 1024, "fetch_max_bytes": 50 * 1024 * 1024}
PROBE_RULE = """\
rules:
  - id: latency-probe
    description: Fires on every probe event; the Kafka benchmark measures produce-to-alert time.
    severity: info
    match: {action: probe}
    group_by: [id]
    annotations: {sent_at: "{sent_at}"}
"""


class Recorder(Output):
    """An output that notes when each alert arrived, for the latency measurement."""

    kind = "recorder"

    def __init__(self) -> None:
        super().__init__("recorder")
        self.arrivals: list[tuple[Mapping[str, Any], float]] = []

    async def _open(self) -> None:
        pass

    async def _send(self, records: Sequence[Mapping[str, Any]]) -> None:
        now = time.time()
        self.arrivals.extend((r, now) for r in records if r.get("type") == "alert")

    async def _flush(self) -> None:
        pass

    async def _close(self) -> None:
        pass


def start_broker(workdir: Path) -> tuple[str, Path | None]:
    if os.environ.get("KAFKA_BOOTSTRAP"):
        return os.environ["KAFKA_BOOTSTRAP"], None
    run_dir = workdir / "kafka"
    out = subprocess.run(
        [str(ROOT / "scripts" / "kafka-local"), "start", "--dir", str(run_dir)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1], run_dir


async def bare_rate(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False, **FETCH,
    )  # fmt: skip
    await consumer.start()
    loads = orjson.loads
    seen = 0
    first = 0.0
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                if not first:
                    first = time.perf_counter()
                for r in records:
                    loads(r.value)
                seen += len(records)
        return seen / (time.perf_counter() - first)
    finally:
        await consumer.stop()


CHECKPOINT_INTERVAL = "10s"  # --checkpoint-interval
# One rule grouped by something other than the producers' key: counted after repartitioning.
REPARTITIONED_RULE = """\
rules:
  - id: customer-read-by-many
    description: Several accounts read one customer's data within the hour (repartitioned by customer_id).
    severity: high
    match: {resource.name: {in: [customers, customer_addresses, payment_cards]}, action: select,
            customer_id: {exists: true}}
    group_by: [customer_id]
    window: 1h
    aggregate: {distinct: actor.id}
    threshold: {gte: 3}
"""


def daemon_config(bootstrap: str, topic: str, rules: Path, state_dir: Path) -> Config:
    """The daemon as deployed: checkpoints on (a compacted topic, every 10 s by default)."""
    return Config.model_validate({
        "kafka": {"bootstrap_servers": [bootstrap], "topics": [topic], "group_id": f"daemon-{uuid.uuid4().hex[:8]}",
                  "auto_offset_reset": "earliest", **FETCH},
        "rules": {"path": str(rules)},
        "state": {"dir": str(state_dir)},
        "checkpoint": {"interval": CHECKPOINT_INTERVAL},
        "http": {"listen": "127.0.0.1:0"},
        "log": {"format": "json", "level": "error"},
    })  # fmt: skip


@dataclass
class DaemonRun:
    rate: float
    alerts: int
    checkpoints: int  # writes (each of every partition that changed)
    checkpoint_seconds: float  # mean time of one, snapshot and write
    checkpoint_bytes: int  # the last full checkpoint of every partition
    groups: int  # window groups held at the end
    forwarded: int = 0  # events forwarded to the internal topic (and counted there)


def pack_with(folder: Path, name: str, text: str) -> Path:
    """The bundled pack's rules (not its tests) and one file more."""
    folder.mkdir(exist_ok=True)
    for f in (ROOT / "rules").glob("*.yaml"):
        if not f.name.endswith(".test.yaml"):
            shutil.copy(f, folder / f.name)
    (folder / name).write_text(text)
    return folder


async def daemon_rate(bootstrap: str, topic: str, n: int, workdir: Path, rules: Path = ROOT / "rules") -> DaemonRun:
    """From the first event read to the last one counted: with repartitioned rules, the
    last forwarded event read back from the internal topic."""
    recorder = Recorder()
    tune_gc()  # as `exfil-monitor run` does
    registry = CollectorRegistry()
    daemon = Daemon(daemon_config(bootstrap, topic, rules, workdir / f"state-{uuid.uuid4().hex[:6]}"),
                    registry=registry, outputs=[recorder], stderr=open(os.devnull, "w"))  # noqa: SIM115  # fmt: skip

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(f"exfil_monitor_{name}", labels) or 0.0

    task = asyncio.create_task(daemon.run())
    first = 0.0
    while daemon.events_total < n or sample("repartition_counted_total") < sample("repartition_forwarded_total"):
        if task.done():
            raise RuntimeError(f"daemon exited early with {task.result()}")
        if not first and daemon.events_total:
            first = time.perf_counter()
        await asyncio.sleep(0.005)
    rate = daemon.events_total / (time.perf_counter() - first)
    daemon.request_stop()
    await task
    engines = daemon.engine
    assert engines is not None

    count = sample("checkpoint_seconds_count")
    return DaemonRun(
        rate, len(recorder.arrivals), int(sample("checkpoints_total", outcome="saved")),
        sample("checkpoint_seconds_sum") / count if count else 0.0,
        sum(len(snapshot.encode(slot.engine)) for _, slot in engines),
        sum(len(st.groups) for st in engines.states), int(sample("repartition_forwarded_total")),
    )


def traffic_with_probes(seconds: float, rate: float) -> Iterator[dict[str, Any]]:
    """The shop's traffic with a probe every 100 events, all stamped with the wall time."""
    n = int(seconds * rate)
    for i, e in enumerate(generate(seed=11, events=n, incidents=False)):
        if i >= n:
            return
        if i % 100 == 0:
            yield {"id": f"probe-{i}", "actor": {"id": f"probe-{i % 7}", "type": "service"}, "action": "probe"}
        else:
            yield e


def stamp(e: dict[str, Any]) -> dict[str, Any]:
    now = time.time()
    e = dict(e)
    e["ts"] = format_ts(int(now * 1000))  # event time = send time, as in a live shop
    if e.get("action") == "probe":
        e["sent_at"] = now
    return e


def produce_main(bootstrap: str, topic: str, seconds: float, rate: float) -> None:
    asyncio.run(produce(traffic_with_probes(seconds, rate), bootstrap=bootstrap, topic=topic, rate=rate, stamp=stamp))


async def latency(bootstrap: str, topic: str, seconds: float, rate: float, workdir: Path) -> list[float]:
    rules = pack_with(workdir / "rules", "latency-probe.yaml", PROBE_RULE)
    recorder = Recorder()
    config = daemon_config(bootstrap, topic, rules, workdir / "state-latency")
    tune_gc()
    daemon = Daemon(config, registry=CollectorRegistry(), outputs=[recorder], stderr=open(os.devnull, "w"))  # noqa: SIM115
    task = asyncio.create_task(daemon.run())
    while not daemon.healthy.report().ready:
        await asyncio.sleep(0.05)
    producer = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--produce", bootstrap, topic, str(seconds), str(rate)
    )
    await producer.wait()
    await asyncio.sleep(1.0)  # the last alerts
    daemon.request_stop()
    await task
    return sorted(
        (t - float(a["annotations"]["sent_at"])) * 1000
        for a, t in recorder.arrivals
        if a["rule"] == "latency-probe"
    )


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


async def main_async(args: argparse.Namespace, bootstrap: str, workdir: Path) -> None:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, topic, args.partitions)
    t0 = time.perf_counter()
    n = await produce(generate(seed=7, events=args.events), bootstrap=bootstrap, topic=topic)
    print(f"produced {n:,} events into {topic} ({args.partitions} partitions) in {time.perf_counter() - t0:.0f}s")
    bare = await bare_rate(bootstrap, topic, n)
    run = await daemon_rate(bootstrap, topic, n, workdir)
    print(f"bare getmany + orjson:  {bare:,.0f} events/s")
    print(f"daemon (rule pack, checkpoints every {CHECKPOINT_INTERVAL} to a compacted topic): "
          f"{run.rate:,.0f} events/s, {run.alerts} alerts")  # fmt: skip
    print(f"ratio daemon/bare:      {run.rate / bare:.3f}   (goal >= 0.6)")
    per_group = run.checkpoint_bytes / run.groups if run.groups else 0.0
    print(f"checkpoints: {run.checkpoints} written, {run.checkpoint_seconds * 1000:.1f} ms each on average; "
          f"the last of all partitions {run.checkpoint_bytes / 1024:,.0f} KiB for {run.groups:,} groups "
          f"({per_group:,.0f} bytes per group)")  # fmt: skip
    moved = await daemon_rate(bootstrap, topic, n, workdir, pack_with(workdir / "rules-repartitioned", "zz-repartitioned.yaml", REPARTITIONED_RULE))
    print(f"daemon (rule pack + one rule repartitioned by customer_id, {moved.forwarded:,} events forwarded, "
          f"{moved.forwarded / n:.0%}): {moved.rate:,.0f} events/s, ratio to the pack alone {moved.rate / run.rate:.3f}, "
          f"to bare {moved.rate / bare:.3f}")  # fmt: skip
    if args.skip_latency:
        return
    ltopic = f"latency-{uuid.uuid4().hex[:8]}"
    await create_topic(bootstrap, ltopic, args.partitions)
    lat = await latency(bootstrap, ltopic, args.seconds, args.rate, workdir)
    if lat:
        print(f"latency at {args.rate:,.0f} events/s over {args.seconds:.0f}s ({len(lat)} probes): "
              f"p50 {percentile(lat, 0.5):.1f} ms, p99 {percentile(lat, 0.99):.1f} ms   (goal p99 < 100 ms)")  # fmt: skip
    else:
        print("latency: no probe alert arrived")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--produce":
        _, _, bootstrap, topic, seconds, rate = sys.argv
        produce_main(bootstrap, topic, float(seconds), float(rate))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--checkpoint-interval", default="10s", help="checkpoint.interval (default 10s)")
    args = ap.parse_args()
    global CHECKPOINT_INTERVAL
    CHECKPOINT_INTERVAL = args.checkpoint_interval
    with tempfile.TemporaryDirectory(prefix="exfil-kafka-bench-") as tmp:
        workdir = Path(tmp)
        bootstrap, run_dir = start_broker(workdir)
        try:
            asyncio.run(main_async(args, bootstrap, workdir))
        finally:
            if run_dir is not None:
                subprocess.run([str(ROOT / "scripts" / "kafka-local"), "stop", "--dir", str(run_dir)], check=False)


if __name__ == "__main__":
    main()
