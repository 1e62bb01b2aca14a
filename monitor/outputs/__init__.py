"""Where alerts go: each output ``type:`` registered once, with its config model and builder.

Adding an output takes its module (the class, and its config model beside it) and one
entry in :data:`REGISTRY` plus the :data:`OutputConfig` union; delivery, retries and
metrics come from :mod:`monitor.outputs.base` and need nothing from the new output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Annotated, Any

from pydantic import Field

from monitor.kafka_client import KafkaConfig
from monitor.outputs.base import Backoff, Delivery, Output, OutputConfigBase
from monitor.outputs.file import FileOutput, FileOutputConfig
from monitor.outputs.kafka import KafkaOutput, KafkaOutputConfig
from monitor.outputs.stdout import StdoutOutput, StdoutOutputConfig

__all__ = ["BUILDERS", "OUTPUT_MODELS", "REGISTRY", "Backoff", "Delivery", "Output", "OutputConfig",
           "OutputContext", "build_outputs"]  # fmt: skip


@dataclass(frozen=True)
class OutputContext:
    """What outputs may need beyond their own section: the source's Kafka settings (none
    with a file source; the config then allows no Kafka output)."""

    kafka: KafkaConfig | None
    stdout: IO[Any] | None = None


Builder = Callable[[Any, OutputContext], Output]

# type -> (config model, builder): the one place an output type is declared.
REGISTRY: dict[str, tuple[type[OutputConfigBase], Builder]] = {
    "stdout": (StdoutOutputConfig, lambda c, ctx: StdoutOutput.from_config(c, ctx.stdout)),
    "file": (FileOutputConfig, lambda c, ctx: FileOutput.from_config(c)),
    "kafka": (KafkaOutputConfig, lambda c, ctx: KafkaOutput.from_config(c, _kafka(ctx))),
}
# The same models as a union pydantic picks from by `type` (a static type, so mypy sees it;
# tests/outputs/test_registry.py checks that it names exactly the registry's models).
OutputConfig = Annotated[StdoutOutputConfig | FileOutputConfig | KafkaOutputConfig, Field(discriminator="type")]
OUTPUT_MODELS: dict[str, type[OutputConfigBase]] = {t: model for t, (model, _) in REGISTRY.items()}
BUILDERS: dict[str, Builder] = {t: build for t, (_, build) in REGISTRY.items()}


def _kafka(ctx: OutputContext) -> KafkaConfig:
    if ctx.kafka is None:
        raise ValueError("a kafka output needs the kafka: section's brokers and security settings")
    return ctx.kafka


def build_outputs(configs: Sequence[Any], context: OutputContext) -> list[Output]:
    return [BUILDERS[c.type](c, context) for c in configs]
