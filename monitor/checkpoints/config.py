"""The ``checkpoint:`` section, and the one place that turns it into a store.

Checkpoints are always on: there is no key to turn them off, because a daemon without
them forgets every window and suppression at each restart. What can be chosen is where
they go (``store``), how often (``interval``: offsets are committed right after each
checkpoint, so this is the commit cadence too) and what an unreadable one means
(``on_corrupt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from monitor.checkpoints.base import Store
from monitor.checkpoints.directory import DirectoryStore
from monitor.checkpoints.kafka import KafkaStore
from monitor.configtypes import Duration, Model, Replicas
from monitor.kafka_client import KafkaConfig

DIRECTORY = "checkpoints"  # under state.dir


class CheckpointConfig(Model):
    # kafka: a compacted topic, so state follows a partition to any instance (the default
    # with a kafka: source); directory: files under state.dir (one instance, or a file source).
    store: Literal["kafka", "directory"] | None = None
    topic: str | None = None  # default: <kafka.group_id>.checkpoints
    interval: Duration = Field(default=10_000, gt=0)
    on_corrupt: Literal["stop", "start_empty"] = "stop"
    replication_factor: Replicas = -1  # of a topic the daemon creates; -1: min(3, brokers)

    def store_kind(self, kafka: KafkaConfig | None) -> str:
        return self.store or ("kafka" if kafka is not None else "directory")

    def topic_for(self, kafka: KafkaConfig) -> str:
        return self.topic or f"{kafka.group_id}.checkpoints"


def build_store(config: CheckpointConfig, kafka: KafkaConfig | None, state_dir: Path) -> Store:
    if config.store_kind(kafka) == "kafka":
        assert kafka is not None  # Config refuses store: kafka without a kafka: section
        return KafkaStore(kafka, config.topic_for(kafka), replication_factor=config.replication_factor)
    return DirectoryStore(Path(state_dir) / DIRECTORY)
