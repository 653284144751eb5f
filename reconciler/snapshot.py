"""Live grants, read one user at a time, as a serialisable snapshot."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reconciler.cells import Cell, Target
from reconciler.errors import Problem, ReconcilerError
from reconciler.quickbi import QuickBIClient

SNAPSHOT_FORMAT = 1
CubeKind = Literal["llm_cube", "dataset"]


@dataclass(frozen=True)
class Snapshot:
    """Every read user's live targets. A user absent from `grants` was not read."""

    grants: dict[str, frozenset[Target]]
    taken_at: str = ""

    def cells(self) -> Iterable[Cell]:
        for user, targets in self.grants.items():
            for target in targets:
                yield user, target

    def digest(self, users: Iterable[str] | None = None) -> str:
        chosen = sorted(self.grants if users is None else set(users))
        canonical = {u: sorted(map(str, self.grants.get(u, frozenset()))) for u in chosen}
        payload = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(payload).hexdigest()

    def to_json(self) -> str:
        data = {
            "format_version": SNAPSHOT_FORMAT,
            "taken_at": self.taken_at,
            "users": {u: sorted(map(str, targets)) for u, targets in sorted(self.grants.items())},
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> Snapshot:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format_version") != SNAPSHOT_FORMAT:
                raise ValueError(f"unsupported format_version {data.get('format_version')!r}")
            grants = {u: frozenset(Target.parse(t) for t in ts) for u, ts in data["users"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReconcilerError(
                Problem(
                    f"{path}: not a reconciler snapshot: {exc}",
                    hint="write one with 'reconciler refresh --out'",
                )
            ) from None
        return cls(grants, str(data.get("taken_at", "")))


async def refresh(
    client: QuickBIClient,
    user_ids: Iterable[str],
    on_user: Callable[[], None] | None = None,
    cube_kind: CubeKind = "llm_cube",
) -> Snapshot:
    """One QueryLlmCubeWithThemeListByUserId per user, concurrently under the client's limits.

    `cube_kind` says what the answer's CubeIds keys are: LlmCube IDs or dataset IDs.
    """

    async def read(user: str) -> tuple[str, frozenset[Target]]:
        answer = await client.user_grants(user)
        targets = [Target(cube_kind, c) for c in answer.cube_ids] + [Target("theme", t) for t in answer.theme_ids]
        if on_user:
            on_user()
        return user, frozenset(targets)

    pairs = await asyncio.gather(*(read(u) for u in sorted(set(user_ids))))
    taken_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Snapshot(dict(pairs), taken_at)
