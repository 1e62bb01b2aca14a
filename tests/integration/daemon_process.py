"""Running ``python -m monitor run`` as a separate process for end-to-end tests.

A separate process because that is how it runs in production: signals, exit codes, the
HTTP port and standard output are the interface, and nothing is shared with the test's
event loop. Every wait has a deadline and reports the daemon's log when it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from monitor.kafka_client import describe_partitions

REPO = Path(__file__).resolve().parents[2]
PREFIX = "exfil_monitor_"


class Metrics(dict[tuple[str, tuple[tuple[str, str], ...]], float]):
    """A scrape: (name without prefix and ``_created``, sorted labels) -> value."""

    def v(self, name: str, **labels: str) -> float:
        return self.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str) -> float:
        return sum(value for (n, _), value in self.items() if n == name)

    def by(self, name: str, label: str) -> dict[str, float]:
        return {dict(labels)[label]: value for (n, labels), value in self.items() if n == name}


class DaemonProcess:
    def __init__(self, workdir: Path, *, bootstrap: str, topic: str, group: str | None = None,
                 rules: Path = REPO / "rules", alerts_topic: str | None = None,
                 dead_letter_topic: str | None = None, max_batch: int = 5000,
                 session_timeout: str = "10s", http: dict[str, Any] | None = None,
                 rlimit_nofile: int | None = None, outputs: Sequence[dict[str, Any]] = (),
                 extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config = workdir / "monitor.yaml"
        self.stdout_path = workdir / "stdout.jsonl"
        self.stderr_path = workdir / "stderr.log"
        outputs = [{"type": "stdout"}, *outputs]  # more outputs beside stdout; extra: more sections
        self.group = group or f"daemon-{workdir.name}-{os.getpid()}-{time.monotonic_ns()}"
        if alerts_topic:
            outputs.append({"type": "kafka", "topic": alerts_topic})
        kafka: dict[str, Any] = {
            "bootstrap_servers": [bootstrap], "topics": [topic],
            "group_id": self.group,
            "auto_offset_reset": "earliest", "max_batch": max_batch, "poll_timeout": "200ms",
            "retry_backoff": "200ms", "retry_backoff_max": "2s",
            "session_timeout": session_timeout, "heartbeat_interval": "2s", "request_timeout": "10s",
        }  # fmt: skip
        if dead_letter_topic:
            kafka["dead_letter_topic"] = dead_letter_topic
        config = {"kafka": kafka, "rules": {"path": str(rules)}, "outputs": outputs,
                  "state": {"dir": str(workdir / "state")},  # its own: daemons of a group run at once
                  "http": {"listen": "127.0.0.1:0", **(http or {})}, "log": {"format": "json", "level": "info"},
                  "checkpoint": {"interval": "200ms"}, **(extra or {})}  # fmt: skip
        self.config.write_bytes(orjson.dumps(config))  # JSON is YAML
        self.rlimit_nofile = rlimit_nofile
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self._listened = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXFIL_MONITOR_")}
        listened = sum(1 for e in self.log_events() if e.get("event") == "http_listening")
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--config", str(self.config)],
                stdout=out, stderr=err, cwd=REPO, env=env, preexec_fn=self._limits,
            )  # fmt: skip
        self.port = None
        self._listened = listened  # a restart appends to the same log: only later ports count

    def _limits(self) -> None:
        """In the child before exec: ``ulimit -n`` as an operator would set it."""
        if self.rlimit_nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.rlimit_nofile, self.rlimit_nofile))

    def send_signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for a graceful exit; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"daemon did not stop within {timeout}s:\n{self.stderr_tail()}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    # ------------------------------------------------------------ what it said

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stderr_tail(self, n: int = 40) -> str:
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def log_events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr_text().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):  # a half-written last line
                out.append(orjson.loads(line))
        return out

    def log_event(self, event: str) -> dict[str, Any]:
        found = [e for e in self.log_events() if e.get("event") == event]
        assert found, f"no {event!r} in the daemon's log:\n{self.stderr_tail()}"
        return found[-1]

    def stdout_records(self) -> list[dict[str, Any]]:
        """Every record the stdout output wrote: alerts and resolutions."""
        return [orjson.loads(line) for line in self.stdout_path.read_bytes().splitlines() if line.strip()]

    def stdout_alerts(self) -> list[dict[str, Any]]:
        return [r for r in self.stdout_records() if r["type"] == "alert"]

    # ------------------------------------------------------------ over HTTP

    async def _port(self, deadline: float) -> int:
        while self.port is None:
            self._check_alive()
            ports = [e["port"] for e in self.log_events() if e.get("event") == "http_listening"][self._listened :]
            if ports:
                self.port = ports[-1]
                break
            self._check_deadline(deadline, "the HTTP server")
            await asyncio.sleep(0.05)
        return self.port

    async def get(self, path: str, deadline: float) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{await self._port(deadline)}{path}"
        async with aiohttp.ClientSession() as s, s.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.text())

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while (await self.get("/readyz", deadline))[0] != 200:
            self._check_deadline(deadline, "/readyz to answer 200")
            await asyncio.sleep(0.1)

    async def wait_not_ready(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.get("/readyz", deadline)
            if status == 503:
                return str(body["reason"])
            self._check_deadline(deadline, "/readyz to answer 503")
            await asyncio.sleep(0.2)

    async def metrics(self, deadline: float) -> Metrics:
        _, text = await self.get("/metrics", deadline)
        out = Metrics()
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.startswith(PREFIX) and not s.name.endswith("_created"):
                    out[(s.name[len(PREFIX):], tuple(sorted(s.labels.items())))] = s.value
        return out

    async def wait_metrics(self, predicate: Callable[[Metrics], bool], timeout: float = 60.0) -> Metrics:
        deadline = time.monotonic() + timeout
        while True:
            m = await self.metrics(deadline)
            if predicate(m):
                return m
            totals = {f"{n}{dict(labels)}": v for (n, labels), v in m.items() if n.endswith("_total")}
            self._check_deadline(deadline, f"metrics (last scrape: {totals})")
            await asyncio.sleep(0.1)

    def _check_alive(self) -> None:
        if not self.alive():
            code = None if self.proc is None else self.proc.poll()
            raise AssertionError(f"daemon exited ({code}):\n{self.stderr_tail()}")

    def _check_deadline(self, deadline: float, what: str) -> None:
        self._check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{self.stderr_tail()}")


# ---------------------------------------------------------------- Kafka helpers


async def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]],
                  timestamps: Sequence[int] | None = None) -> list[tuple[int, int]]:  # fmt: skip
    """Produce keyed messages in order and wait for all acks; returns (partition, offset)
    each. ``timestamps``: the records' CreateTime (default: when sent)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=262_144)
    await producer.start()
    try:
        stamps = list(timestamps) if timestamps is not None else [None] * len(messages)
        futures = [await producer.send(topic, value=v, key=k, timestamp_ms=t)
                   for (k, v), t in zip(messages, stamps, strict=True)]  # fmt: skip
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(md.partition, md.offset) for md in sent]


async def read_topic(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[tuple[bytes, bytes, list[Any]]]:
    """(key, value, headers) of the first ``n`` messages, in offset order per partition."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[tuple[bytes, bytes, list[Any]]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < n:
            assert time.monotonic() < deadline, f"{topic}: got {len(got)} of {n} messages"
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend((r.key, r.value, list(r.headers)) for r in records)
    finally:
        await consumer.stop()
    return got


async def committed_offsets(bootstrap: str, topic: str, group: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return {p: (await consumer.committed(TopicPartition(topic, p))) or 0 for p in range(partitions)}
    finally:
        await consumer.stop()


async def settled(bootstrap: str, topic: str, group: str, produced: int, *runs: DaemonProcess, partitions: int,
                  timeout: float = 120.0) -> None:  # fmt: skip
    """Until ``group`` has committed every event of ``topic`` and everything forwarded to
    its internal topic: all processed, checkpointed, then committed (a commit of the
    events comes only after their forwarding was acknowledged)."""
    internal = f"{group}.repartition"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            parts, _ = await describe_partitions({"bootstrap_servers": [bootstrap]}, internal)
            ends = await consumer.end_offsets([TopicPartition(internal, p) for p in parts]) if parts else {}
            source = sum((await committed_offsets(bootstrap, topic, group, partitions)).values())
            inner = await committed_offsets(bootstrap, internal, group, len(parts)) if parts else {}
            if parts and source >= produced and all(inner.get(tp.partition, 0) >= end for tp, end in ends.items()):
                return
            for d in runs:
                assert d.alive(), d.stderr_tail()
            assert time.monotonic() < deadline, f"not settled: {source}/{produced}, {inner} < {ends}"
            await asyncio.sleep(0.25)
    finally:
        await consumer.stop()
