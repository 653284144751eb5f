"""Sets of small integers as Python ints: the planner and the role miner intersect and union thousands of rows
and columns, and an int's `&`, `|` and `bit_count` do it at C speed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from itertools import compress

_FEW = 16  # items below which taking the lowest bit off, one at a time, is the faster way to list a set
_DENSE = 8  # past one item in this many positions, reading every position beats searching for the next item
_DIGIT_VALUES = bytes.maketrans(b"01", b"\x00\x01")


def mask(items: Iterable[int]) -> int:
    """The set of `items` as bits."""
    bits = 0
    for item in items:
        bits |= 1 << item
    return bits


def transposed(rows: Mapping[int, int]) -> dict[int, int]:
    """Rows of column bits (row index -> bits) as columns of row bits (column index -> bits)."""
    columns: dict[int, int] = defaultdict(int)
    for row, bits in rows.items():
        for column in members(bits):
            columns[column] |= 1 << row
    return dict(columns)


def members(bits: int) -> list[int]:
    """The items of a set, in increasing order."""
    count = bits.bit_count()
    if count <= _FEW:
        found = []
        while bits:
            lowest = bits & -bits
            found.append(lowest.bit_length() - 1)
            bits ^= lowest
        return found
    # each `^=` above copies the whole int: past a few items, the set is read from its binary text instead
    text = bin(bits)[:1:-1]  # item i at index i
    if count * _DENSE < len(text):
        found = []
        index = text.find("1")
        while index >= 0:
            found.append(index)
            index = text.find("1", index + 1)
        return found
    # dense: one pass in C over every position (a tenth of the time per item where most positions are set)
    return list(compress(range(len(text)), text.encode().translate(_DIGIT_VALUES)))
