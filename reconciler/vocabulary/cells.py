"""The vocabulary the pipeline stages share: targets, cells, and the ordering that keeps output stable."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, NamedTuple

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
