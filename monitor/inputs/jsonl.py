"""``jsonl``: the canonical JSON lines this project already reads, passed through.

| canonical field | from |
|---|---|
| every field | the same field of the line (already canonical) |

No ``raw.`` copy: the line *is* the canonical event. The Decoder checks ``ts`` as before.
"""

from __future__ import annotations

import orjson

from monitor.inputs.base import LineFormat, Result, invalid


class Jsonl(LineFormat):
    name = "jsonl"

    def decode(self, raw: bytes) -> Result:
        try:
            e = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return [invalid("invalid_json")]
        if e.__class__ is not dict:
            return [invalid("not_an_object")]
        return [e]
