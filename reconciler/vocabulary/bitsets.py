"""Sets of small integers as Python ints: the planner and the role miner intersect and union thousands of rows
and columns, and an int's `&`, `|` and `bit_count` do it at C speed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping


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
    found = []
    while bits:
        lowest = bits & -bits
        found.append(lowest.bit_length() - 1)
        bits ^= lowest
    return found
