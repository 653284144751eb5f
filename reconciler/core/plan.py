"""The plan: a serialisable artefact (docs/reference.md, "Plan files") made from the changes by the planner.

Inside, a plan holds typed values (`Target`, `dt.date`); the plan file's text forms (`kind:id`, ISO days) are
read and written only by the codecs below, at the file edge.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    model_serializer,
    model_validator,
)

from reconciler.core import planner
from reconciler.core.diff import Changes
from reconciler.core.embeds import EmbedChange
from reconciler.vocabulary.base import bulk_data, utc_timestamp
from reconciler.vocabulary.cells import Cell, CellRows, Target, TargetKind, shared_rows, shared_target
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.files import MAX_JSON_DEPTH, read_regular_file, write_text_file


def _target(value: object) -> Target:
    if isinstance(value, Target):
        return value
    if isinstance(value, str):
        return Target.parse(value)
    raise ValueError("expected a target, llm_cube:<id>, theme:<id> or dataset:<id>")


def _target_set(value: object) -> frozenset[Target]:
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(map(_target, value))
    raise ValueError("expected a list of targets")


def _sorted_texts(targets: frozenset[Target]) -> list[str]:
    return sorted(map(str, targets))


# the plan file's codecs: a target is `kind:id` in the file, a `Target` inside
TargetText = Annotated[Target, PlainValidator(_target), PlainSerializer(str, return_type=str)]
TargetSet = Annotated[
    frozenset[Target], PlainValidator(_target_set), PlainSerializer(_sorted_texts, return_type=list[str])
]


def _day(value: object) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DAY.fullmatch(value):
        return dt.date.fromisoformat(value)
    raise ValueError("expected a day, YYYY-MM-DD")


def _day_text(day: dt.date) -> str:
    return day.isoformat()


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# a day is `YYYY-MM-DD` in the file and nothing else (no timestamps, no numbers)
Day = Annotated[dt.date, PlainValidator(_day), PlainSerializer(_day_text, return_type=str)]


_WIRE_KINDS: tuple[tuple[TargetKind, str], ...] = (
    ("llm_cube", "llm_cubes"),
    ("theme", "llm_cube_themes"),
    ("dataset", "cube_ids"),  # LlmCubes named by dataset ID (SmartqAuthorize CubeIds)
)


_KIND_RANK = {kind: rank for rank, (kind, _) in enumerate(_WIRE_KINDS)}


def _in_file_order(target: Target) -> tuple[int, str]:
    """A batch's targets in the order its file lists them (cubes, themes, cubes by dataset ID), so that a plan
    read back equals the plan written."""
    return _KIND_RANK[target.kind], target.id


@lru_cache(maxsize=4096)
def _in_file_order_all(targets: tuple[Target, ...]) -> tuple[Target, ...]:
    """`targets` in the order a batch's file lists them: the batches of one role carry the same targets, sorted
    once."""
    return tuple(sorted(targets, key=_in_file_order))


@lru_cache(maxsize=4096)
def _wire_ids(targets: tuple[Target, ...]) -> tuple[list[str], list[str], list[str]]:
    """A batch's target IDs per kind, in `_WIRE_KINDS` order, as its file and the API list them: the batches of
    one role (thousands, in a large onboarding) carry the same targets, split once. Shared: never changed."""
    ids: dict[str, list[str]] = {kind: [] for kind, _ in _WIRE_KINDS}
    for target in targets:
        ids[target.kind].append(target.id)
    return ids["llm_cube"], ids["theme"], ids["dataset"]


class Batch(BaseModel):
    """One SmartqAuthorize call: typed targets inside; in the plan file, the API's shape (IDs per kind).

    Code builds batches with `Batch.of`; validation (`Batch(...)`, reading a plan file) takes the file's shape.
    """

    model_config = ConfigDict(frozen=True)
    operation: Literal["grant", "revoke"]
    user_ids: list[str]
    targets: tuple[TargetText, ...]
    expire_day: Day | None = None

    @classmethod
    def of(
        cls,
        operation: Literal["grant", "revoke"],
        user_ids: list[str],
        targets: Iterable[Target],
        expire_day: dt.date | None = None,
    ) -> Batch:
        # model_construct: built here from validated data, and plans can hold 10^5 batches
        return cls.model_construct(
            operation=operation, user_ids=user_ids, targets=tuple(targets), expire_day=expire_day
        )

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        if "targets" in data:
            raise ValueError("a batch names its targets as llm_cubes, llm_cube_themes and cube_ids")
        fields = {key: value for key, value in data.items() if key not in dict(_WIRE_KINDS).values()}
        targets: list[Target] = []
        for kind, key in _WIRE_KINDS:
            ids = data.get(key, [] if key == "cube_ids" else None)
            if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
                raise ValueError(f"{key} must be a list of IDs")
            targets += (shared_target(kind, i) for i in ids)
        return {**fields, "targets": targets}

    @model_serializer
    def _to_file(self) -> dict[str, object]:
        cubes, themes, datasets = _wire_ids(self.targets)
        day = self.expire_day.isoformat() if self.expire_day is not None else None
        return {
            "operation": self.operation,
            "user_ids": self.user_ids,
            "llm_cubes": cubes,
            "llm_cube_themes": themes,
            "expire_day": day,
            "cube_ids": datasets,
        }

    def ids(self, kind: TargetKind) -> list[str]:
        """The IDs of one kind of target, as the API takes them."""
        return list(_wire_ids(self.targets)[_KIND_RANK[kind]])

    @property
    def size(self) -> int:
        return len(self.user_ids) * len(self.targets)

    def cells(self) -> Iterator[Cell]:
        targets = self.targets
        for user in self.user_ids:
            for target in targets:
                yield user, target

    def day(self) -> dt.date:
        """The expiry day of a grant batch (every grant has one: `problem()` refuses a plan file without)."""
        assert self.expire_day is not None, "a grant batch without an expiry day"
        return self.expire_day

    def problem(self) -> str | None:
        """What makes this batch unsendable, if anything."""
        if not self.user_ids or not self.targets:
            return "has no users or no targets"
        if len(set(self.user_ids)) != len(self.user_ids) or len(set(self.targets)) != len(self.targets):
            return "lists a user or target twice"
        if self.operation == "revoke":
            return None if self.expire_day is None else "is a revoke with an expire_day"
        return None if self.expire_day is not None else "is a grant without an expire_day"


class PlanInputs(BaseModel):
    policy_digest: str
    snapshot_digest: str
    # digest of the live state of exactly the users the plan touches
    touched_users_digest: str = ""


class PlanSummary(BaseModel):
    grant_cells: int = 0
    revoke_cells: int = 0
    calls: int = 0
    lower_bound: int = 0
    unchanged_cells: int = 0
    protected_cells: int = 0
    unmanaged_cells: int = 0
    skipped_revokes: int = 0
    out_of_scope_cells: int = 0


class Plan(BaseModel):
    """What to send, and what the reviewer needs to judge it; everything shown is derived from the batches.

    `touched_state` is the live state of each user the batches touch, as read when planning: it tells a new
    grant from a re-grant and a real revoke from a no-op delete, and lets apply refuse a plan whose users changed.
    """

    format_version: Literal[1] = 1
    target: str
    created_at: str
    inputs: PlanInputs
    summary: PlanSummary
    batches: list[Batch]
    touched_state: dict[str, TargetSet] = Field(default_factory=dict)
    names: dict[str, str] = Field(default_factory=dict)
    removed_targets: list[TargetText] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    allow_regrant: bool = False
    # the expiry the ledger recorded for each cell a grant batch sets again (user -> target -> day)
    previous_expiry: dict[str, dict[TargetText, Day]] = Field(default_factory=dict)
    # why this plan covers only part of the policy (--user/--group/--resource, --changed-from), if it does
    partial: str | None = None
    # policy tests (`tests:`) that the planned end state fails, each `file:line: message`
    failed_tests: list[str] = Field(default_factory=list)
    # cells to grant per grant statement (`file:line (to: …)`), for reviewers: which policy change does what
    grants_by_statement: dict[str, int] = Field(default_factory=dict)
    # embedded Smart Q modules whose data range to set (ModifyCopilotEmbedConfig), before the batches run
    embed_changes: list[EmbedChange] = Field(default_factory=list)
    # a pull request's plan: what the change does to the policy, by path (`+ groups.sales.members: ivan`)
    policy_changes: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.batches and not self.embed_changes

    def touched_users(self) -> list[str]:
        return sorted({user for batch in self.batches for user in batch.user_ids})

    def grant_cells(self) -> dict[Cell, dt.date]:
        """Every cell the grant batches set, with its expiry day."""
        cells: dict[Cell, dt.date] = {}
        for batch in self.batches:
            if batch.operation == "grant":
                cells.update(dict.fromkeys(batch.cells(), batch.day()))
        return cells

    def revoke_cells(self) -> set[Cell]:
        """Every cell the revoke batches delete, including the don't-care cells that were not live."""
        return {cell for batch in self.batches if batch.operation == "revoke" for cell in batch.cells()}

    def to_json(self) -> str:
        """The plan file's text: one line per batch and per entry of the larger fields, compact within a line.

        Line-oriented so that it greps and diffs a batch at a time; compact because a plan can hold millions of
        cells (indented JSON spent a third of a plan's bytes on indentation, 15 bytes per cell on real data).
        """
        lines = ["{"]
        # the batches straight to JSON, not through model_dump: tens of thousands in a large onboarding
        data = self.model_dump(mode="json", exclude={"batches"})
        fields = [(key, data[key]) if key != "batches" else (key, self.batches) for key in type(self).model_fields]
        for number, (key, value) in enumerate(fields, 1):
            comma = "," if number < len(fields) else ""
            if key == "batches" and value:
                lines.append(f" {_compact(key)}: [")
                lines.append(",\n".join(f"  {_compact(batch._to_file())}" for batch in self.batches))
                lines.append(f" ]{comma}")
            elif isinstance(value, list) and value:
                lines.append(f" {_compact(key)}: [")
                lines.append(",\n".join(f"  {_compact(item)}" for item in value))
                lines.append(f" ]{comma}")
            elif isinstance(value, dict) and value:
                lines.append(f" {_compact(key)}: {{")
                lines.append(",\n".join(f"  {_string(k)}: {_compact_value(v)}" for k, v in value.items()))
                lines.append(f" }}{comma}")
            else:
                lines.append(f" {_compact(key)}: {_compact(value)}{comma}")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        write_text_file(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> Plan:
        try:
            plan = cls.model_validate_json(read_regular_file(path, "plan"))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            if "recursion limit" in first["msg"]:
                first["msg"] = f"nested more than {MAX_JSON_DEPTH} levels deep"
            raise ReconcilerError(
                Problem(
                    f"{path}: not a reconciler plan ({where}: {first['msg'].removeprefix('Value error, ')})",
                    hint="make one with 'plan --out'",
                )
            ) from None
        for number, batch in enumerate(plan.batches, 1):
            problem = batch.problem()
            if problem is not None:
                raise ReconcilerError(
                    Problem(f"{path}: batch {number} {problem}", hint="make a new plan with 'plan --out'")
                )
        return plan


_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_string: Callable[[str], str] = json.encoder.encode_basestring  # the C encoder


def _compact_value(value: object) -> str:
    """`_compact`, with the common entries (a name; a user with nothing live) straight to the C encoder."""
    if isinstance(value, str):
        return _string(value)
    return "[]" if value == [] else _compact(value)


def make_batches(changes: Changes, allow_regrant: bool = False, cap: int = planner.CAP) -> list[Batch]:
    """Turn the changes into the fewest SmartqAuthorize batches the planner finds. Deterministic."""
    with bulk_data():
        return _make_batches(changes, allow_regrant, cap)


def _make_batches(changes: Changes, allow_regrant: bool, cap: int) -> list[Batch]:
    batches: list[Batch] = []
    for day in sorted(changes.grants):
        cells = changes.grants[day]
        allowed = None
        if allow_regrant and changes.regrantable.get(day):
            allowed = _rows(cells | changes.regrantable[day])
        batches.extend(_to_batches("grant", cells, allowed, day, cap))
    if changes.revokes:
        batches.extend(_to_batches("revoke", changes.revokes, changes.revocable, None, cap))
    return batches


def _to_batches(
    operation: Literal["grant", "revoke"],
    cells: Collection[Cell],
    allowed: Mapping[str, frozenset[Target]] | None,
    expire_day: dt.date | None,
    cap: int,
) -> list[Batch]:
    # the planner numbers users and targets itself, and hands them back sorted: the plan is deterministic
    if isinstance(cells, CellRows):
        rects = planner.cover(cells.rows, allowed, cap)
    else:
        rects = planner.cover_cells(cells, allowed, cap)
    return [Batch.of(operation, list(users), _in_file_order_all(targets), expire_day) for users, targets in rects]


def exact_batches(
    grants: Mapping[dt.date, Iterable[Cell]], revokes: Iterable[Cell] = (), cap: int = planner.CAP
) -> list[Batch]:
    """Batches for exactly these cells, no don't-cares: to re-plan what is left of a plan or what failed."""
    revoked = frozenset(revokes)
    changes = Changes(
        grants={day: frozenset(cells) for day, cells in grants.items()},
        revokes=revoked,
        revocable=_rows(revoked),
    )
    return make_batches(changes, cap=cap)


def _rows(cells: Iterable[Cell]) -> dict[str, frozenset[Target]]:
    """Each user's targets, one set object for users with the same ones."""
    rows: dict[str, list[Target]] = defaultdict(list)
    for user, target in cells:
        rows[user].append(target)
    return shared_rows((user, frozenset(targets)) for user, targets in rows.items())


def lower_bound(changes: Changes, cap: int = planner.CAP) -> int:
    bound = sum(planner.lower_bound(len(cells), cap) for cells in changes.grants.values())
    return bound + planner.lower_bound(len(changes.revokes), cap)


def cell_bound(changes: Changes, cap: int = planner.CAP) -> float:
    """A lower bound on any plan's calls, often well above Σ ceil(cells/cap) on sparse changes: each cell
    weighs 1 ÷ (an upper bound on the largest batch that can hold it); a batch of n cells then weighs at
    most n ÷ n = 1, so the weights' sum is at most the calls of any plan.

    The largest batch holding (user u, target t) is some users x targets with every cell to be sent: each of
    its users has t and shares at least `a` targets with u when it has `a` targets, so it holds at most
    max over a of min(cap, a * #{users of t sharing ≥ a targets with u}). Computed from whichever side
    (users or targets) makes it cheaper; the bound is symmetric."""
    groups = [*changes.grants.values(), changes.revokes]
    return sum(_cell_weights(cells, cap) for cells in groups if cells)


def _cell_weights(cells: Collection[Cell], cap: int) -> float:
    rows: dict[object, list[object]] = defaultdict(list)
    columns: dict[object, list[object]] = defaultdict(list)
    for user, target in cells:
        rows[user].append(target)
        columns[target].append(user)
    if sum(len(c) ** 2 for c in columns.values()) > sum(len(r) ** 2 for r in rows.values()):
        rows, columns = columns, rows  # the sides' roles swap: the bound is the same, its cost is not
    total = 0.0
    for members in rows.values():
        shared: Counter[object] = Counter()
        for column in members:
            shared.update(columns[column])
        for column in members:
            overlaps = sorted((shared[other] for other in columns[column]), reverse=True)
            largest = 1
            for count, overlap in enumerate(overlaps, 1):
                largest = max(largest, min(cap, overlap * count))
                if largest >= cap or overlap * len(overlaps) <= largest:
                    break
            total += 1 / largest
    return total


def build_plan(
    target: str,
    changes: Changes,
    inputs: PlanInputs,
    touched_state: dict[str, frozenset[Target]],
    names: dict[str, str],
    allow_regrant: bool = False,
    removed_targets: Collection[Target] = (),
    notes: Collection[str] = (),
    cap: int = planner.CAP,
    previous_expiry: Mapping[Cell, dt.date] | None = None,
    partial: str | None = None,
) -> Plan:
    batches = make_batches(changes, allow_regrant, cap)
    summary = PlanSummary(
        grant_cells=changes.grant_cells,
        revoke_cells=len(changes.revokes),
        calls=len(batches),
        lower_bound=lower_bound(changes, cap),
        unchanged_cells=changes.unchanged,
        protected_cells=len(changes.protected),
        unmanaged_cells=len(changes.unmanaged),
        skipped_revokes=changes.skipped_revokes,
        out_of_scope_cells=changes.out_of_scope,
    )
    named = {user for batch in batches for user in batch.user_ids}
    named.update(map(str, chain.from_iterable(batch.targets for batch in batches)))
    named.update(map(str, removed_targets))
    return Plan(
        target=target,
        created_at=utc_timestamp(),
        inputs=inputs,
        summary=summary,
        batches=batches,
        touched_state=touched_state,
        names={key: name for key, name in sorted(names.items()) if key in named},
        removed_targets=sorted(removed_targets),
        notes=list(notes),
        allow_regrant=allow_regrant,
        previous_expiry=_previous(batches, previous_expiry or {}),
        partial=partial,
    )


def _previous(batches: list[Batch], recorded: Mapping[Cell, dt.date]) -> dict[str, dict[Target, dt.date]]:
    """The recorded expiry of each cell the grant batches set again, to show `~ old → new`."""
    found: dict[str, dict[Target, dt.date]] = defaultdict(dict)
    if not recorded:
        return {}
    for batch in batches:
        if batch.operation == "grant":
            for user, target in batch.cells():
                day = recorded.get((user, target))
                if day is not None:
                    found[user][target] = day
    return dict(found)
