"""Text cut to a size budget, shared by alerts and unit formatting.

Apart from the engine on purpose: :mod:`monitor.units` formats values for rules while
the rules are still being validated, before any engine module may be imported.
"""

from __future__ import annotations

VALUE_MAX_BYTES = 1024


def truncate(text: str, limit: int = VALUE_MAX_BYTES) -> str:
    """``text`` cut to ``limit`` bytes of UTF-8, marked with its full length when cut."""
    if len(text) * 4 <= limit:  # no need to encode: cannot be over
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + f"...[truncated, {len(data)} bytes]"
