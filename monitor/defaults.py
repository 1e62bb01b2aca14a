"""The engine's defaults, declared once.

The CLI's flags and help, the config model, the engine and the decoder all read them
from here, so ``replay`` and ``run`` cannot drift apart on what an unset knob means.
"""

from __future__ import annotations

TIME_FIELD = "ts"
ALLOWED_LATENESS_MS = 60_000
MAX_FUTURE_SKEW_MS = 300_000
MAX_GROUPS_PER_RULE = 100_000
DISTINCT_EXACT_LIMIT = 4096
# A rule's resolve_after when it gives none (and its suppress is shorter): an episode is
# over after this long without a hold, in event time.
RESOLVE_AFTER_MS = 15 * 60_000


def duration_text(ms: int) -> str:
    """A default as the CLI help shows it (60s, 5m)."""
    if ms and ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"
# How producers place a record key on a partition (monitor.warmup): murmur2 is the Java
# client's and aiokafka's default, crc32 librdkafka's.
PARTITIONERS = ("murmur2", "crc32")
