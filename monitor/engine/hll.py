"""HyperLogLog, for ``distinct`` once a group holds more values than it may keep exactly.

An enumeration attack is exactly the case where one actor touches a huge number of
customer ids; keeping them all would let the attacker size the monitor's memory. Past
the exact limit each bucket keeps 2**P one-byte registers instead (1 KiB, about 3%
standard error), and a window's estimate is the union of its buckets' registers.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson

P = 10
M = 1 << P
_ALPHA = 0.7213 / (1 + 1.079 / M)


def hash64(value: Any) -> int:
    """A hash that is the same in every process, unlike ``hash()`` on text.

    Text and other JSON values get different prefixes, so "1" and 1 stay two values."""
    cls = value.__class__
    if cls is str:
        data = b"s" + value.encode()
    elif cls is int or (cls is float and value.is_integer() and abs(value) < 2**63):
        data = b"j" + str(int(value)).encode()  # 1 and 1.0 are one JSON number; any size
    else:
        data = b"j" + orjson.dumps(value)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class HLL:
    """Registers plus their running sum, so that an estimate costs O(1).

    The sum of ``2**-register`` is kept exactly, as an integer scaled by 2**64: every
    group under an enumeration attack asks for an estimate on every event, and summing
    1,024 registers each time made one attacker's events a hundred times dearer.
    """

    __slots__ = ("_sum", "_zeros", "registers")

    def __init__(self, registers: bytearray | None = None) -> None:
        if registers is None:
            self.registers = bytearray(M)
            self._sum = M << 64
            self._zeros = M
        else:
            self.registers = registers
            self._recount()

    def _recount(self) -> None:
        regs = self.registers
        self._sum = sum(1 << (64 - r) for r in regs)
        self._zeros = regs.count(0)

    def add(self, value: Any) -> None:
        self.add_hash(hash64(value))

    def add_hash(self, h: int) -> None:
        idx = h >> (64 - P)
        rest = (h << P) & 0xFFFFFFFFFFFFFFFF
        rank = 64 - P + 1 if rest == 0 else (64 - rest.bit_length()) + 1
        old = self.registers[idx]
        if rank > old:
            self.registers[idx] = rank
            self._sum += (1 << (64 - rank)) - (1 << (64 - old))
            if old == 0:
                self._zeros -= 1

    def merge(self, other: HLL) -> None:
        self.registers = bytearray(map(max, self.registers, other.registers))
        self._recount()

    def estimate(self) -> int:
        est = _ALPHA * M * M * (1 << 64) / self._sum
        if est <= 2.5 * M and self._zeros:
            est = M * math.log(M / self._zeros)  # linear counting for small cardinalities
        return round(est)

    @classmethod
    def union(cls, sketches: list[HLL]) -> HLL:
        if not sketches:
            return HLL()
        registers = bytearray(sketches[0].registers)
        for s in sketches[1:]:
            registers = bytearray(map(max, registers, s.registers))
        return HLL(registers)
