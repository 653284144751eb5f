"""The vocabulary the pipeline stages share: targets, cells, and the ordering that keeps output stable."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from functools import lru_cache
from itertools import chain, product
from typing import Literal, NamedTuple, TypeVar

# what a policy declares and the API lists: LlmCubes (Q&A resources) and analysis themes
ResourceKind = Literal["llm_cube", "theme"]
# how a target reports cube grants (QueryLlmCubeWithThemeListByUserId's CubeIds; UNCONFIRMED upstream)
CubeReadback = Literal["llm_cube", "dataset"]
# "dataset": an LlmCube named by its dataset (cube) ID, granted through CubeIds; used when the target reports
# grants by dataset ID (config `cube_readback: dataset`)
TargetKind = Literal["llm_cube", "theme", "dataset"]


class Target(NamedTuple):
    """An LlmCube (Q&A resource) or an analysis theme, by its Quick BI ID.

    A named tuple rather than a dataclass: plans hash millions of cells, and tuple hashing is native.
    """

    kind: TargetKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Target:
        kind, _, target_id = text.partition(":")
        if kind not in ("llm_cube", "theme", "dataset") or not target_id:
            raise ValueError(f"not a target: {text!r} (expected llm_cube:<id>, theme:<id> or dataset:<id>)")
        return shared_target(kind, target_id)


@lru_cache(maxsize=1 << 16)
def shared_target(kind: TargetKind, target_id: str) -> Target:
    """One object per target, however many grants name it: a tenant's live grants name a few thousand targets
    millions of times."""
    return Target(kind, target_id)


Cell = tuple[str, Target]


_NO_TARGETS: frozenset[Target] = frozenset()


class CellRows(Set[Cell]):
    """A set of cells held per user: {user: targets}, users with the same targets sharing one set object.

    Millions of cells are a few hundred distinct rows in a real tenant: held this way they cost memory per user,
    not per cell, and the planner takes the rows as they are. Rows are never empty and never change.
    """

    __slots__ = ("_size", "rows")

    def __init__(self, rows: Mapping[str, frozenset[Target]]) -> None:
        self.rows = rows
        self._size = sum(map(len, rows.values()))

    def __contains__(self, cell: object) -> bool:
        return isinstance(cell, tuple) and len(cell) == 2 and cell[1] in self.rows.get(cell[0], _NO_TARGETS)

    def __iter__(self) -> Iterator[Cell]:
        return chain.from_iterable(product((user,), targets) for user, targets in self.rows.items())

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"CellRows({len(self.rows)} users, {self._size} cells)"

    @classmethod
    def _from_iterable(cls, cells: Iterable[Cell]) -> frozenset[Cell]:  # type: ignore[override]
        return frozenset(cells)  # what set operators (|, &, -) build: plain cells


def users_of(cells: Iterable[Cell]) -> set[str]:
    """The users some cell names (a row set's users without a look at its cells)."""
    if isinstance(cells, CellRows):
        return set(cells.rows)
    return {user for user, _ in cells}


User = TypeVar("User")
Item = TypeVar("Item")


def shared_rows(pairs: Iterable[tuple[User, frozenset[Item]]]) -> dict[User, frozenset[Item]]:
    """Each user's targets (by name, or as the planner numbers them), one set object for all users with the
    same ones: a tenant's 100,000 users hold a few hundred distinct sets of targets, and one set of 30 targets
    costs more memory than 30 cells do."""
    seen: dict[frozenset[Item], frozenset[Item]] = {}
    return {user: seen.setdefault(targets, targets) for user, targets in pairs}
