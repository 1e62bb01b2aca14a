"""Process-wide settings for the long-running commands (replay, demo, run)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Make the cyclic garbage collector run rarely.

    Events are acyclic dicts that reference counting frees on its own, but each one
    counts as three container allocations: with the default thresholds the collector
    runs every few hundred events and its older generations walk all window state,
    which measured at half of replay's time. Objects alive at start (rules, modules)
    are frozen out of collection altogether.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
