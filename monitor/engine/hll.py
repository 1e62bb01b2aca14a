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
    data = b"s" + value.encode() if value.__class__ is str else b"j" + orjson.dumps(value)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class HLL:
    __slots__ = ("registers",)

    def __init__(self, registers: bytearray | None = None) -> None:
        self.registers = registers if registers is not None else bytearray(M)

    def add(self, value: Any) -> None:
        h = hash64(value)
        idx = h >> (64 - P)
        rest = (h << P) & 0xFFFFFFFFFFFFFFFF
        rank = 64 - P + 1 if rest == 0 else (64 - rest.bit_length()) + 1
        if rank > self.registers[idx]:
            self.registers[idx] = rank

    def merge(self, other: HLL) -> None:
        self.registers = bytearray(map(max, self.registers, other.registers))


    def estimate(self) -> int:
        regs = self.registers
        total = math.fsum(2.0 ** -r for r in regs)
        est = _ALPHA * M * M / total
        zeros = regs.count(0)
        if est <= 2.5 * M and zeros:
            est = M * math.log(M / zeros)  # linear counting for small cardinalities
        return round(est)

    @classmethod
    def union(cls, sketches: list[HLL]) -> HLL:
        out = HLL()
        for s in sketches:
            out.merge(s)
        return out
