"""Admission of a saved plan: every cell it would send must be one today's policy and live state call for.

A plan file is an artefact that travels (CI artefacts, pull requests, laptops): it may be old, replayed after
the directory moved, or edited. So `apply PLAN` trusts none of it. Each cell of each batch is checked against
the policy resolved again today and the live state read again today, and the first cell that does not belong
stops the whole apply before anything is sent.
"""

from __future__ import annotations

import datetime as dt

from reconciler.core.diff import Changes
from reconciler.core.embeds import DataRange
from reconciler.core.plan import Batch, Plan
from reconciler.core.policy import Rolling, UnknownExpiry
from reconciler.core.resolve import Desired
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Cell, Target
from reconciler.vocabulary.errors import Problem, ReconcilerError

_HINT = "make a new plan"


def admit(
    plan: Plan, target: str, policy_digest: str, desired: Desired, live: Snapshot, today: dt.date, cap: int
) -> None:
    """Raise ReconcilerError naming the first reason `plan` must not be applied here and now."""
    if plan.target != target:
        raise ReconcilerError(f"the plan was made for target '{plan.target}', not '{target}'")
    if plan.inputs.policy_digest != policy_digest:
        raise ReconcilerError(Problem("the plan is stale: the policy changed since it was made", hint=_HINT))
    for number, batch in enumerate(plan.batches, 1):
        if batch.size > cap:
            raise ReconcilerError(
                Problem(
                    f"refusing the plan: batch {number} has {batch.size} cells, more than the {cap} one call may carry",
                    hint=_HINT,
                )
            )
        unknown = _unknown_id(batch, desired)
        if unknown is not None:
            raise ReconcilerError(Problem(f"refusing the plan: batch {number} names {unknown}", hint=_HINT))
        for cell in batch.cells():
            reason = _grant_refusal(cell, batch, desired, today) if batch.operation == "grant" else None
            reason = reason or (_revoke_refusal(cell, desired) if batch.operation == "revoke" else None)
            if reason is not None:
                user, cell_target = cell
                raise ReconcilerError(
                    Problem(
                        f"refusing the plan: batch {number} {batch.operation}s {user} {cell_target}: {reason}",
                        hint=_HINT,
                    )
                )
    _check_touched_users(plan, live)
    _check_embed_changes(plan, desired)


def _unknown_id(batch: Batch, desired: Desired) -> str | None:
    """An id that is not exactly one user or target Quick BI knows, as it would go on the wire: the API joins a
    batch's ids with commas and may trim them, so `u-admin,u-alice` or ` u-alice` would reach other cells than
    the ones admitted."""
    for user in batch.user_ids:
        if user not in desired.directory:
            return f"user {user!r}, which is not one user of the organisation"
    for target in batch.targets:
        if target not in desired.target_names:
            return f"{target.kind} {target.id!r}, which is not one target Quick BI lists"
    return None


def lacking_changes(plan: Plan, wanted: Changes) -> int:
    """How many changes the policy requires today that `plan` does not make (cells, and embed data ranges)."""
    granted = plan.grant_cells()
    revoked = plan.revoke_cells()
    missing = sum(1 for day, cells in wanted.grants.items() for cell in cells if granted.get(cell) != day)
    return missing + len(wanted.revokes - revoked)


def _check_embed_changes(plan: Plan, desired: Desired) -> None:
    """Each data range the plan sets must be the one today's policy gives that module."""
    for number, change in enumerate(plan.embed_changes, 1):
        embed = desired.embeds.get(change.embed)
        if embed is None or embed.copilot_id != change.copilot_id:
            reason = "today's policy has no such embed for that module"
        elif DataRange.of(embed) != change.after:
            reason = f"today's policy gives it {DataRange.of(embed).describe()}"
        else:
            continue
        raise ReconcilerError(
            Problem(
                f"refusing the plan: embed change {number} sets module {change.copilot_id} ('{change.embed}') to "
                f"{change.after.describe()}: {reason}",
                hint=_HINT,
            )
        )


def _grant_refusal(cell: Cell, batch: Batch, desired: Desired, today: dt.date) -> str | None:
    wanted = desired.cells.get(cell)
    if wanted is None:
        return "today's policy does not grant it"
    day = batch.day()
    if isinstance(wanted, UnknownExpiry):
        return "the policy keeps it only while it is live (expires: unknown), and never grants it"
    if isinstance(wanted, Rolling):
        latest = wanted.latest(today)
        if not today < day <= latest:
            return f"expiry {day.isoformat()} is outside the policy's rolling window (after today, by {latest})"
        return None
    if day != wanted:
        return f"expiry {day.isoformat()} differs from the policy's {wanted.isoformat()}"
    return None


def _revoke_refusal(cell: Cell, desired: Desired) -> str | None:
    user, target = cell
    if cell in desired.cells:
        return "today's policy grants it"
    if user in desired.protected:
        return "the user is protected"
    if not desired.is_managed(target):
        return "the policy does not manage this target"
    return None


def _check_touched_users(plan: Plan, live: Snapshot) -> None:
    """Refuse when a touched user's live grants moved since planning in a way the plan itself does not explain.

    Moves the plan explains are those an interrupted earlier apply of the same plan made: a cell it grants
    appearing, a cell it revokes disappearing. Anything else means someone else changed the user meanwhile.
    """
    grants_by_user: dict[str, set[Target]] = {}
    revokes_by_user: dict[str, set[Target]] = {}
    for batch in plan.batches:
        table = grants_by_user if batch.operation == "grant" else revokes_by_user
        for user in batch.user_ids:
            table.setdefault(user, set()).update(batch.targets)
    nothing: frozenset[Target] = frozenset()
    for user in plan.touched_users():
        before = plan.touched_state.get(user, nothing)
        now = live.grants.get(user, nothing)
        appeared = now - before - grants_by_user.get(user, set())
        vanished = before - now - revokes_by_user.get(user, set())
        if appeared or vanished:
            changes = [f"+{t}" for t in sorted(appeared)] + [f"-{t}" for t in sorted(vanished)]
            raise ReconcilerError(
                Problem(
                    f"the plan is stale: {user}'s live grants changed since it was made ({', '.join(changes[:5])})",
                    hint=_HINT,
                )
            )
