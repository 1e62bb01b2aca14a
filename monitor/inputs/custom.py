"""Custom mappings: a named format built from another one by renaming fields, for
sources whose JSON is close to canonical but not quite.

    inputs:
      shop-api:
        from: jsonl
        fields: {actor.id: user.name, ts: time}
        constants: {resource.kind: api}

| canonical field | from |
|---|---|
| each key of ``fields`` | the dotted path it names in the base format's event (for ``jsonl``, the line) |
| each key of ``constants`` | that constant, on every event |
| ``raw.*`` | the base event as it was |

Fields not named are kept as the base format gave them. A field whose source is missing
is left out (not set to null), so a rule's ``exists`` sees the truth.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from monitor.event import Event
from monitor.inputs.base import Format, Result, get, put


class CustomInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    base: str = Field(alias="from")
    fields: dict[str, str] = {}
    constants: dict[str, Any] = {}


class Custom:
    def __init__(self, name: str, base: Format, spec: CustomInput) -> None:
        self.name = name
        self.base = base
        self.spec = spec

    def frame(self, data: bytes, final: bool) -> tuple[list[bytes], int]:
        return self.base.frame(data, final)

    def decode(self, raw: bytes) -> Result:
        out: Result = []
        for e in self.base.decode(raw):
            if not isinstance(e, dict):
                out.append(e)
                continue
            mapped: Event = {k: v for k, v in e.items() if k != "raw"}
            for target, source in self.spec.fields.items():
                put(mapped, target, get(e, source))
            for target, value in self.spec.constants.items():
                put(mapped, target, value)
            mapped["raw"] = e.get("raw", e)
            out.append(mapped)
        return out
