"""Checkpoints in a compacted Kafka topic, so a partition's state follows the partition.

Whichever instance the group gives a partition to reads its checkpoint from the topic
(``checkpoint.topic``, default ``<group_id>.checkpoints``, created compacted with one
partition when missing). A partition's state can exceed a message's size limit, so each
checkpoint is written as chunks under a manifest:

* chunk records keyed ``<key>#<slot>#<n>``, each at most ``chunk_bytes``;
* then the manifest, keyed ``<key>``: the slot, the chunk count, size and SHA-256 of the
  whole, and the previous manifest.

Two slots, ``a`` and ``b``, alternate: a save writes the slot the current manifest does
not name, so the previous checkpoint's chunks stay whole until the save after next, and a
torn save (chunks written, no manifest; or a manifest whose chunks were lost) falls back
to the previous one. Compaction keeps the newest record per key, which is all a load reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from monitor.checkpoints.base import Checkpoint, CheckpointError, Loaded
from monitor.kafka_client import KafkaConfig, TopicError, describe_partitions, ensure_topic, explain

CHUNK_BYTES = 512 * 1024  # well under Kafka's default message.max.bytes (1 MiB)
TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "3600000"}


class KafkaStore:
    name = "kafka"

    def __init__(self, config: KafkaConfig, topic: str, *, replication_factor: int = -1,
                 chunk_bytes: int = CHUNK_BYTES) -> None:  # fmt: skip
        """``replication_factor`` of the topic when this store creates it; -1: the number of
        brokers, at most 3."""
        self.config = config
        self.topic = topic
        self.replication_factor = replication_factor
        self.chunk_bytes = chunk_bytes
        self._producer: AIOKafkaProducer | None = None
        self._manifests: dict[str, dict[str, Any]] = {}  # what this instance last wrote or read

    async def start(self) -> None:
        """Raises :class:`CheckpointError` saying what is wrong (the broker unreachable, a
        refused login, a topic that is not compacted), for the daemon to log and retry."""
        options = self.config.client_options()
        try:
            await self._ensure_topic()
            producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True,
                                        max_request_size=self.chunk_bytes + 65536)  # fmt: skip
            await producer.start()
            # The topic's metadata now, not at the first save: that save would otherwise
            # hold the daemon's loop for the metadata round trips.
            await producer.partitions_for(self.topic)
        except CheckpointError:
            raise
        except Exception as exc:  # aiokafka's many error kinds: said as the source says them
            raise CheckpointError(await explain(exc, options)) from exc
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _ensure_topic(self) -> None:
        admin = AIOKafkaAdminClient(**self.config.client_options())
        await admin.start()
        try:
            if await ensure_topic(admin, self.topic, partitions=1, replication_factor=self.replication_factor,
                                  configs=TOPIC_CONFIG, what="checkpoint topic"):  # fmt: skip
                await self._check_compacted(admin)
        except TopicError as exc:
            raise CheckpointError(str(exc)) from None
        finally:
            await admin.close()

    async def _check_compacted(self, admin: AIOKafkaAdminClient) -> None:
        """A topic made by hand with ``cleanup.policy=delete`` loses every checkpoint older
        than its retention, silently: refuse it at start instead."""
        [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, self.topic)])
        configs = {name: value for name, value, *_ in described.resources[0][4]}
        policy = configs.get("cleanup.policy") or ""
        policies = {p.strip() for p in policy.split(",")}
        # A partition that stays idle is not written again: with deletion its checkpoint
        # would expire, and the partition silently restart empty.
        if "compact" not in policies or ("delete" in policies and configs.get("retention.ms") != "-1"):
            raise CheckpointError(f"the checkpoint topic {self.topic} has cleanup.policy={policy or '?'}: it must be "
                                  "compact (or compact,delete with retention.ms=-1), or idle partitions' checkpoints "
                                  "are deleted (alter it, or set checkpoint.topic)")  # fmt: skip

    async def _partitions(self) -> list[int]:
        """The topic's partitions as the broker says now: "no checkpoint" must never mean
        "not looked"."""
        parts, error = await describe_partitions(self.config.client_options(), self.topic)
        if error or not parts:
            raise CheckpointError(f"the checkpoint topic {self.topic} cannot be read (error code {error})")
        return parts

    # -------------------------------------------------------------------- save

    async def save(self, checkpoints: Mapping[str, Checkpoint]) -> int:
        producer = self._producer
        assert producer is not None, "save before start"
        sends = []
        manifests = {}
        written = 0
        for key, cp in checkpoints.items():
            blob = cp.to_bytes()
            previous = self._manifests.get(key)
            slot = "b" if previous is not None and previous["slot"] == "a" else "a"
            chunks = [blob[i : i + self.chunk_bytes] for i in range(0, len(blob), self.chunk_bytes)] or [b""]
            for n, chunk in enumerate(chunks):
                sends.append(await producer.send(self.topic, chunk, key=f"{key}#{slot}#{n}".encode()))
            manifest = {"v": 1, "slot": slot, "chunks": len(chunks), "size": len(blob),
                        "sha256": hashlib.sha256(blob).hexdigest(), "offset": cp.offset,
                        "prev": _without_prev(previous)}  # fmt: skip
            manifests[key] = manifest
            written += len(blob)
        await asyncio.gather(*sends)  # every chunk acknowledged before any manifest names it
        acks = [await producer.send(self.topic, orjson.dumps(m), key=k.encode()) for k, m in manifests.items()]
        await asyncio.gather(*acks)
        self._manifests.update(manifests)
        return written

    # -------------------------------------------------------------------- load

    async def load(self, keys: list[str]) -> dict[str, Loaded]:
        records = await self._read_all()
        out = {}
        for key in keys:
            raw = records.get(key.encode())
            if raw is None:
                out[key] = Loaded(None)
                continue
            try:
                out[key] = self._assemble(key, raw, records)
            except CheckpointError as exc:
                out[key] = Loaded(None, error=str(exc))
            except Exception as exc:  # a manifest that parses but is not one: corrupt, never "unavailable"
                out[key] = Loaded(None, error=f"checkpoint {key}: malformed manifest: {exc!r}")
        return out

    def _assemble(self, key: str, raw: bytes, records: dict[bytes, bytes]) -> Loaded:
        try:
            manifest = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint {key}: unreadable manifest: {exc}") from None
        problems = []
        for m in (manifest, manifest.get("prev")):
            if m is None:
                continue
            blob = b"".join(records.get(f"{key}#{m['slot']}#{n}".encode(), b"") for n in range(m["chunks"]))
            if len(blob) != m["size"] or hashlib.sha256(blob).hexdigest() != m["sha256"]:
                problems.append(f"slot {m['slot']}: chunks missing or altered")
                continue
            try:
                cp = Checkpoint.from_bytes(blob)
            except ValueError as exc:
                problems.append(f"slot {m['slot']}: {exc}")
                continue
            self._manifests[key] = manifest if m is manifest else {**m, "prev": None}
            return Loaded(cp, f"checkpoint {key}: " + "; ".join(problems) if problems else None)
        raise CheckpointError(f"no readable checkpoint for {key} in topic {self.topic}: " + "; ".join(problems))

    async def _read_all(self) -> dict[bytes, bytes]:
        """The newest value of every key in the topic (a tombstone removes it)."""
        consumer = AIOKafkaConsumer(**self.config.client_options(), group_id=None, enable_auto_commit=False,
                                    isolation_level="read_committed",
                                    max_partition_fetch_bytes=self.chunk_bytes + 65536)  # fmt: skip
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in await self._partitions()]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            values: dict[bytes, bytes] = {}
            stall = self.config.request_timeout / 1000  # no record for this long: say so, be retried
            last = time.monotonic()
            while behind := [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                batch = await consumer.getmany(timeout_ms=1000)
                if batch:
                    last = time.monotonic()
                elif time.monotonic() - last > stall:
                    raise CheckpointError(f"reading the checkpoint topic {self.topic} stalled "
                                          f"(partitions {[tp.partition for tp in behind]} behind their end)")  # fmt: skip
                for recs in batch.values():
                    for r in recs:
                        if r.key is None:
                            continue
                        if r.value is None:
                            values.pop(r.key, None)
                        else:
                            values[r.key] = r.value
            return values
        finally:
            await consumer.stop()


def _without_prev(m: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if m is None else {k: v for k, v in m.items() if k != "prev"}
