"""The HyperLogLog sketch behind ``distinct`` past its exact limit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.engine.hll import HLL, M


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.one_of(st.text(max_size=8), st.integers(), st.booleans()), max_size=300))
def test_the_running_sum_always_equals_a_recount(values: list[object]) -> None:
    sketch = HLL()
    for v in values:
        sketch.add(v)
    assert sketch._sum == sum(1 << (64 - r) for r in sketch.registers)
    assert sketch._zeros == sketch.registers.count(0)
    assert sketch.estimate() == HLL(bytearray(sketch.registers)).estimate()


def test_estimates_stay_within_a_few_percent() -> None:
    for n in (50, 1_000, 20_000):
        sketch = HLL()
        for i in range(n):
            sketch.add(f"customer-{i}")
        assert abs(sketch.estimate() - n) <= max(2, 0.06 * n)


def test_union_counts_shared_values_once() -> None:
    a, b = HLL(), HLL()
    for i in range(3_000):
        a.add(i)
        b.add(i + 1_500)
    union = HLL.union([a, b])
    assert abs(union.estimate() - 4_500) <= 0.06 * 4_500
    assert union._sum == sum(1 << (64 - r) for r in union.registers)
    assert len(union.registers) == M


def test_text_and_numbers_are_different_values() -> None:
    sketch = HLL()
    sketch.add("1")
    sketch.add(1)
    assert sketch.estimate() == 2
