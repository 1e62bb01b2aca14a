"""The vocabulary every config model is written in: strict models, durations, paths.

Each component's config model lives beside the component (an output's in its module, the
Kafka settings in :mod:`monitor.kafka_client`); they all build on these, and
:mod:`monitor.config` composes them into the file's top level.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from monitor.timeparse import parse_duration


class KeyProblem(ValueError):
    """A model validator's error about a key below the model: ``path`` is relative to
    the model, so the message is positioned at that key rather than at the section."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        super().__init__(message)


def _relative(v: Path | None, info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base")
    if v is None or base is None or v.is_absolute():
        return v
    return Path(os.path.normpath(Path(base) / v))


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"\s*(\d+)\s*([a-zA-Z]*)\s*")


def parse_size(v: Any) -> Any:
    """``256MiB``, ``1GB`` or a number of bytes; anything else is left for pydantic to refuse."""
    if isinstance(v, str):
        m = _SIZE.fullmatch(v)
        if m is None or m.group(2).lower() not in _UNITS:
            raise ValueError(f"expected a size such as 256MiB, 1GB or 1048576 (bytes), got {v!r}")
        return int(m.group(1)) * _UNITS[m.group(2).lower()]
    return v


def _comma_list(v: Any) -> Any:
    if isinstance(v, str):
        return [part.strip() for part in v.split(",") if part.strip()]
    return v


def _zone(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (an IANA name such as UTC or Europe/Berlin)") from None
    return v


Duration = Annotated[int, BeforeValidator(parse_duration)]  # milliseconds
TimeZone = Annotated[str, AfterValidator(_zone)]  # an IANA name, for timestamps without a zone
RelPath = Annotated[Path, AfterValidator(_relative)]
TextList = Annotated[list[str], BeforeValidator(_comma_list)]
PositiveInt = Annotated[int, Field(gt=0)]


def _replicas(v: int) -> int:
    if v == 0 or v < -1:
        raise ValueError("give a number of replicas (1 or more), or -1 for as many as the cluster has brokers, up to 3")
    return v


Replicas = Annotated[int, AfterValidator(_replicas)]  # of a topic the daemon creates; -1: min(3, brokers)
ByteSize = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
