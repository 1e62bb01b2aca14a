"""Sums that never raise: exact float sums, saturated at the float range.

Apart from the window state because it is arithmetic, not state: the windows, the
engine (which marks saturated alerts) and the tests read it from here.
"""

from __future__ import annotations

import math
import sys
from typing import Any

# A sum whose exact value leaves the float range is reported at this bound, saturated.
SUM_BOUND = sys.float_info.max
_INF = float("inf")


def saturating_sum(values: list[Any]) -> tuple[Any, bool]:
    """(the exact float sum of ``values`` rounded once, whether it was saturated).

    ``math.fsum`` raises on an intermediate overflow and on inf + -inf (a bucket whose
    own running sum overflowed); neither may stop the monitor. The exact sum of finite
    floats is then computed with integers (every float is an integer times a power of
    two) and saturated at +-SUM_BOUND; a window holding an overflowed bucket is at the
    bound of that bucket's sign (+ when both signs overflowed: err towards alerting).
    """
    try:
        total = math.fsum(values)
    except (OverflowError, ValueError):
        total = _INF
    else:
        if -SUM_BOUND <= total <= SUM_BOUND:  # NaN is not
            return total, False
        if total != total and not any(v in (_INF, -_INF) for v in values):
            return total, False  # NaN in, NaN out: only the engine's API can pass it
    up = any(v == _INF for v in values)
    down = any(v == -_INF for v in values)
    if up or down:
        return (SUM_BOUND if up else -SUM_BOUND), True
    scale = 1 << 1100  # 2**1074 makes every float an integer; 1100 leaves headroom
    exact = sum(_scaled(v, scale) for v in values)
    bound = _scaled(SUM_BOUND, scale)
    if exact > bound:
        return SUM_BOUND, True
    if exact < -bound:
        return -SUM_BOUND, True
    return exact / scale, False


def _scaled(v: Any, scale: int) -> int:
    n, d = v.as_integer_ratio()
    return int(n * (scale // d))
