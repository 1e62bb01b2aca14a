"""Where events come from: files for replay; Kafka or followed log files for the daemon.

The ``sources:`` list of the config names each source by ``type:``; :data:`REGISTRY` is the
one place a type is declared, with its config model (beside the source) and its builder.
The Kafka source is configured by the ``kafka:`` section instead (exactly one of the two).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from monitor.sources.base import Source
from monitor.sources.logfile import FileSource, FileSourceConfig
from monitor.telemetry import Telemetry

__all__ = ["REGISTRY", "SOURCE_MODELS", "Source", "SourceConfig", "SourceContext", "build_source"]


@dataclass(frozen=True)
class SourceContext:
    """What a source may need beyond its own section."""

    telemetry: Telemetry
    state_dir: Path
    before_commit: Callable[[Any], Awaitable[bool]] | None = None  # checkpoint with these positions
    commit_interval: float = 10.0  # seconds: checkpoint.interval


Builder = Callable[[Any, SourceContext], Source]

def _file(c: FileSourceConfig, ctx: SourceContext) -> Source:
    return FileSource(c, ctx.telemetry, ctx.state_dir, before_commit=ctx.before_commit,
                      commit_interval=ctx.commit_interval)


REGISTRY: dict[str, tuple[type[Any], Builder]] = {
    "file": (FileSourceConfig, _file),
}

# One type for now; a second joins the union here and in REGISTRY.
SourceConfig = Annotated[FileSourceConfig, Field(discriminator="type")]
SOURCE_MODELS: dict[str, type[Any]] = {t: model for t, (model, _) in REGISTRY.items()}


def build_source(config: Any, context: SourceContext) -> Source:
    return REGISTRY[config.type][1](config, context)
