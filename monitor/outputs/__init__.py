"""Where alerts go: each output ``type:`` registered once, with its config model and builder.

Adding an output takes its module (the class, and its config model beside it) and one
entry in :data:`REGISTRY` plus the :data:`OutputConfig` union; delivery, retries and
metrics come from :mod:`monitor.outputs.delivery` and need nothing from the new output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Annotated, Any

from pydantic import Field

from monitor import defaults
from monitor.kafka_client import KafkaConfig
from monitor.outputs.alertmanager import AlertmanagerConfig, AlertmanagerOutput
from monitor.outputs.base import Output, OutputConfigBase
from monitor.outputs.delivery import Delivery
from monitor.outputs.file import FileOutput, FileOutputConfig
from monitor.outputs.kafka import KafkaOutput, KafkaOutputConfig
from monitor.outputs.pagerduty import PagerDutyConfig, PagerDutyOutput
from monitor.outputs.slack import SlackConfig, SlackOutput, TimezoneOf
from monitor.outputs.stdout import StdoutOutput, StdoutOutputConfig
from monitor.outputs.webhook import WebhookConfig, WebhookOutput

__all__ = ["BUILDERS", "OUTPUT_MODELS", "REGISTRY", "Delivery", "Output", "OutputConfig", "OutputContext",
           "build_outputs"]  # fmt: skip


@dataclass(frozen=True)
class OutputContext:
    """What outputs may need beyond their own section: the source's Kafka settings (none
    with a file source; the config then allows no Kafka output), the engine's future skew
    (Alertmanager's lease is never shorter), and each rule's schedule time zone (Slack
    shows the window in it; asked per message, so a reloaded rule set is seen)."""

    kafka: KafkaConfig | None
    stdout: IO[Any] | None = None
    max_future_skew_ms: int = defaults.MAX_FUTURE_SKEW_MS
    timezone_of: TimezoneOf | None = None


# A builder makes one output, or several (Alertmanager: one per URL, each its own spool).
Builder = Callable[[Any, OutputContext], Output | list[Output]]

# type -> (config model, builder): the one place an output type is declared.
REGISTRY: dict[str, tuple[type[OutputConfigBase], Builder]] = {
    "stdout": (StdoutOutputConfig, lambda c, ctx: StdoutOutput.from_config(c, ctx.stdout)),
    "file": (FileOutputConfig, lambda c, ctx: FileOutput.from_config(c)),
    "kafka": (KafkaOutputConfig, lambda c, ctx: KafkaOutput.from_config(c, _kafka(ctx))),
    "alertmanager": (AlertmanagerConfig, lambda c, ctx: list(AlertmanagerOutput.from_config(c, ctx.max_future_skew_ms))),
    "pagerduty": (PagerDutyConfig, lambda c, ctx: PagerDutyOutput(c)),
    "slack": (SlackConfig, lambda c, ctx: SlackOutput(c, timezone_of=ctx.timezone_of)),
    "webhook": (WebhookConfig, lambda c, ctx: WebhookOutput(c)),
}
# The same models as a union pydantic picks from by `type` (a static type, so mypy sees it;
# tests/outputs/test_registry.py checks that it names exactly the registry's models).
OutputConfig = Annotated[
    StdoutOutputConfig | FileOutputConfig | KafkaOutputConfig | AlertmanagerConfig | PagerDutyConfig | SlackConfig
    | WebhookConfig,
    Field(discriminator="type"),
]
OUTPUT_MODELS: dict[str, type[OutputConfigBase]] = {t: model for t, (model, _) in REGISTRY.items()}
BUILDERS: dict[str, Builder] = {t: build for t, (_, build) in REGISTRY.items()}


def _kafka(ctx: OutputContext) -> KafkaConfig:
    if ctx.kafka is None:
        raise ValueError("a kafka output needs the kafka: section's brokers and security settings")
    return ctx.kafka


def build_outputs(configs: Sequence[Any], context: OutputContext) -> list[Output]:
    """The outputs of ``configs``, each with its config's ``match:`` (routing is here, in
    one place, so no output can forget it)."""
    out: list[Output] = []
    for c in configs:
        built = BUILDERS[c.type](c, context)
        for o in built if isinstance(built, list) else [built]:
            o.match = c.match
            out.append(o)
    return out
