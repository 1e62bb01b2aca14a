"""Where alerts go. Each output type declared in the config (``type:``) maps to a class here.

Adding an output takes a config model in :mod:`monitor.config` (the ``OutputConfig``
union) and one line in :data:`BUILDERS`; delivery, retries and metrics come from
:mod:`monitor.outputs.base` and need nothing from the new output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from monitor.config import KafkaConfig, OutputConfig
from monitor.outputs.base import Backoff, Delivery, Output
from monitor.outputs.file import FileOutput
from monitor.outputs.kafka import KafkaOutput
from monitor.outputs.stdout import StdoutOutput

__all__ = ["BUILDERS", "Backoff", "Delivery", "Output", "OutputContext", "build_outputs"]


@dataclass(frozen=True)
class OutputContext:
    """What outputs may need beyond their own section: the source's Kafka settings."""

    kafka: KafkaConfig
    stdout: IO[Any] | None = None


BUILDERS: dict[str, Callable[[Any, OutputContext], Output]] = {
    "stdout": lambda c, ctx: StdoutOutput.from_config(c, ctx.stdout),
    "file": lambda c, ctx: FileOutput.from_config(c),
    "kafka": lambda c, ctx: KafkaOutput.from_config(c, ctx.kafka),
}


def build_outputs(configs: Sequence[OutputConfig], context: OutputContext) -> list[Output]:
    return [BUILDERS[c.type](c, context) for c in configs]
