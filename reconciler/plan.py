"""The plan: a serialisable artefact (DESIGN.md, "Plan file") made from the changes by the planner."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler import planner
from reconciler.cells import Cell, Target
from reconciler.diff import Changes
from reconciler.errors import Problem, ReconcilerError


class Batch(BaseModel):
    model_config = ConfigDict(frozen=True)
    operation: Literal["grant", "revoke"]
    user_ids: list[str]
    llm_cubes: list[str]
    llm_cube_themes: list[str]
    expire_day: str | None = None
    cube_ids: list[str] = Field(default_factory=list)  # LlmCubes named by dataset ID (SmartqAuthorize CubeIds)

    @property
    def cells(self) -> int:
        return len(self.user_ids) * (len(self.llm_cubes) + len(self.llm_cube_themes) + len(self.cube_ids))

    def targets(self) -> list[Target]:
        return (
            [Target("llm_cube", c) for c in self.llm_cubes]
            + [Target("theme", t) for t in self.llm_cube_themes]
            + [Target("dataset", d) for d in self.cube_ids]
        )

    def key(self) -> str:
        """A stable identity for the journal: the batch's content, independent of its position."""
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))


class PlanInputs(BaseModel):
    policy_digest: str
    snapshot_digest: str
    # digest of the live state of exactly the users the plan touches, to refuse a stale plan
    touched_users_digest: str = ""


class PlanSummary(BaseModel):
    grant_cells: int = 0
    revoke_cells: int = 0
    calls: int = 0
    lower_bound: int = 0
    unchanged_cells: int = 0
    protected_cells: int = 0
    unmanaged_cells: int = 0


class UserChanges(BaseModel):
    grant: dict[str, list[str]] = Field(default_factory=dict)  # expire day -> targets
    revoke: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    format_version: Literal[1] = 1
    target: str
    created_at: str
    inputs: PlanInputs
    summary: PlanSummary
    batches: list[Batch]
    changes: dict[str, UserChanges] = Field(default_factory=dict)
    touched_state: dict[str, list[str]] = Field(default_factory=dict)
    names: dict[str, str] = Field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.batches

    def touched_users(self) -> list[str]:
        return sorted(self.changes)

    def intended(self) -> tuple[set[Cell], set[Cell]]:
        """The cells the plan sets and removes (not the don't-care cells its revoke batches may touch)."""
        granted: set[Cell] = set()
        revoked: set[Cell] = set()
        for user, change in self.changes.items():
            for targets in change.grant.values():
                granted.update((user, Target.parse(t)) for t in targets)
            revoked.update((user, Target.parse(t)) for t in change.revoke)
        return granted, revoked

    def expiry_by_cell(self) -> dict[Cell, dt.date]:
        return {
            (user, Target.parse(t)): dt.date.fromisoformat(day)
            for user, change in self.changes.items()
            for day, targets in change.grant.items()
            for t in targets
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> Plan:
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ReconcilerError(Problem(f"{path}: cannot read plan: {exc.strerror}")) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ReconcilerError(
                Problem(
                    f"{path}: not a reconciler plan ({where}: {first['msg']})",
                    hint="make one with 'plan --out'",
                )
            ) from None


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Planning allocates millions of small acyclic objects; the cyclic collector's repeated passes over them
    cost about a third of the planning time at 3 M cells, and there is nothing for it to find."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def make_batches(changes: Changes, allow_regrant: bool = False) -> list[Batch]:
    """Turn the changes into the fewest SmartqAuthorize batches the planner finds. Deterministic."""
    with _collector_paused():
        return _make_batches(changes, allow_regrant)


def _make_batches(changes: Changes, allow_regrant: bool) -> list[Batch]:
    batches: list[Batch] = []
    for day in sorted(changes.grants):
        cells = changes.grants[day]
        allowed = None
        if allow_regrant and changes.regrantable.get(day):
            allowed = _rows(cells | changes.regrantable[day])
        batches.extend(_to_batches("grant", cells, allowed, day.isoformat()))
    if changes.revokes:
        batches.extend(_to_batches("revoke", changes.revokes, changes.revocable, None))
    return batches


def _to_batches(
    operation: Literal["grant", "revoke"],
    cells: Collection[Cell],
    allowed: Mapping[str, frozenset[Target]] | None,
    expire_day: str | None,
) -> list[Batch]:
    # the planner works on integers; indices follow sorted names so that the plan is deterministic
    targets = sorted({t for _, t in cells}.union(*(allowed or {}).values()))
    target_index = {t: i for i, t in enumerate(targets)}
    by_user: dict[str, list[int]] = defaultdict(list)
    for user, target in cells:
        by_user[user].append(target_index[target])
    users = sorted(set(by_user).union(allowed or {}))
    user_index = {u: i for i, u in enumerate(users)}
    int_rows = {user_index[u]: frozenset(row) for u, row in by_user.items()}
    int_allowed = None
    if allowed is not None:
        int_allowed = {user_index[u]: frozenset(target_index[t] for t in r) for u, r in allowed.items()}
    batches = []
    for rect_users, rect_targets in planner.cover(int_rows, int_allowed):
        chosen = [targets[i] for i in rect_targets]
        # model_construct: these values are built here from validated data, and plans can hold 10^5 batches
        batches.append(
            Batch.model_construct(
                operation=operation,
                user_ids=[users[i] for i in rect_users],
                llm_cubes=[t.id for t in chosen if t.kind == "llm_cube"],
                llm_cube_themes=[t.id for t in chosen if t.kind == "theme"],
                expire_day=expire_day,
                cube_ids=[t.id for t in chosen if t.kind == "dataset"],
            )
        )
    return batches


def _rows(cells: Iterable[Cell]) -> dict[str, frozenset[Target]]:
    rows: dict[str, set[Target]] = defaultdict(set)
    for user, target in cells:
        rows[user].add(target)
    return {u: frozenset(t) for u, t in rows.items()}


def user_changes(changes: Changes) -> dict[str, UserChanges]:
    by_user: dict[str, UserChanges] = defaultdict(UserChanges)
    for day in sorted(changes.grants):
        for user, target in sorted(changes.grants[day]):
            by_user[user].grant.setdefault(day.isoformat(), []).append(str(target))
    for user, target in sorted(changes.revokes):
        by_user[user].revoke.append(str(target))
    return dict(sorted(by_user.items()))


def lower_bound(changes: Changes) -> int:
    bound = sum(planner.lower_bound(len(cells)) for cells in changes.grants.values())
    return bound + planner.lower_bound(len(changes.revokes))


def build_plan(
    target: str,
    changes: Changes,
    policy_digest: str,
    snapshot_digest: str,
    touched_state: dict[str, list[str]],
    touched_digest: str,
    names: dict[str, str],
    allow_regrant: bool = False,
) -> Plan:
    batches = make_batches(changes, allow_regrant)
    per_user = user_changes(changes)
    summary = PlanSummary(
        grant_cells=changes.grant_cells,
        revoke_cells=len(changes.revokes),
        calls=len(batches),
        lower_bound=lower_bound(changes),
        unchanged_cells=changes.unchanged,
        protected_cells=len(changes.protected),
        unmanaged_cells=len(changes.unmanaged),
    )
    return Plan(
        target=target,
        created_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        inputs=PlanInputs(
            policy_digest=policy_digest, snapshot_digest=snapshot_digest, touched_users_digest=touched_digest
        ),
        summary=summary,
        batches=batches,
        changes=per_user,
        touched_state=touched_state,
        names={k: v for k, v in sorted(names.items()) if k in _named(per_user)},
    )


def _named(per_user: dict[str, UserChanges]) -> set[str]:
    named = set(per_user)
    for change in per_user.values():
        named.update(t for targets in change.grant.values() for t in targets)
        named.update(change.revoke)
    return named
