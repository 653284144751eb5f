"""Sets of small integers as Python ints: the planner and the role miner intersect and union thousands of rows
and columns, and an int's `&`, `|` and `bit_count` do it at C speed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

_FEW = 16  # items below which taking the lowest bit off, one at a time, is the faster way to list a set


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
    if bits.bit_count() <= _FEW:
        found = []
        while bits:
            lowest = bits & -bits
            found.append(lowest.bit_length() - 1)
            bits ^= lowest
        return found
    # each `^=` above copies the whole int: past a few items, finding the ones in its binary text is faster
    text = bin(bits)[:1:-1]  # item i at index i
    found = []
    index = text.find("1")
    while index >= 0:
        found.append(index)
        index = text.find("1", index + 1)
    return found
