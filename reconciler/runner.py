"""The use cases behind the commands: refresh, plan, apply and drift over an open target."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from deepdiff import DeepDiff

from reconciler.apply import ApplyResult, Executor
from reconciler.cells import Cell
from reconciler.diff import Changes, DiffOptions, diff
from reconciler.errors import Problem, ReconcilerError
from reconciler.journal import Journal
from reconciler.ledger import Ledger
from reconciler.plan import Plan, build_plan
from reconciler.policy import Policy
from reconciler.resolve import Desired, resolve
from reconciler.snapshot import Snapshot, refresh
from reconciler.workspace import Session

Progress = Callable[[], None]
Tracker = Callable[[int, str], AbstractContextManager[Progress]]


@dataclass(frozen=True)
class PlanOptions:
    diff: DiffOptions = field(default_factory=DiffOptions)
    allow_regrant: bool = False


@dataclass(frozen=True)
class Breakers:
    max_revokes: int | None = None
    max_revoke_ratio: float | None = None


def ledger_for(session: Session) -> Ledger:
    return Ledger(session.state_dir / "expiry-ledger.tsv")


async def desired_and_snapshot(
    session: Session,
    policy: Policy,
    today: dt.date,
    snapshot: Snapshot | None = None,
    track: Tracker | None = None,
) -> tuple[Desired, Snapshot]:
    """Resolve the policy, then read every user's live grants (unless a snapshot is given).

    `track(total, label)` may supply a per-user tick, e.g. a progress bar: one read per user takes a while
    for a large organisation (100,000 users at 50 QPS is over half an hour).
    """
    desired = await resolve(policy, session.client, today, session.cube_readback)
    if snapshot is None:
        with (track or _untracked)(len(desired.directory), "refresh") as tick:
            snapshot = await refresh(session.client, desired.directory, tick, session.cube_readback)
    return desired, snapshot


@contextlib.contextmanager
def _untracked(total: int, label: str) -> Iterator[Progress]:
    yield lambda: None


def plan_from(
    session: Session,
    desired: Desired,
    snapshot: Snapshot,
    ledger: Ledger,
    today: dt.date,
    options: PlanOptions,
) -> tuple[Plan, Changes]:
    changes = diff(desired, snapshot, ledger, today, options.diff)
    touched = sorted({u for cells in changes.grants.values() for u, _ in cells} | {u for u, _ in changes.revokes})
    touched_state = {u: sorted(map(str, snapshot.grants.get(u, frozenset()))) for u in touched}
    names = dict(desired.directory)
    names.update({str(t): n for t, n in desired.target_names.items()})
    plan = build_plan(
        session.name,
        changes,
        desired.policy_digest,
        snapshot.digest(),
        touched_state,
        snapshot.digest(touched),
        names,
        options.allow_regrant,
    )
    return plan, changes


def check_breakers(plan: Plan, snapshot: Snapshot, desired: Desired, breakers: Breakers) -> None:
    revokes = plan.summary.revoke_cells
    if breakers.max_revokes is not None and revokes > breakers.max_revokes:
        raise ReconcilerError(
            Problem(
                f"the plan revokes {revokes} grants, more than --max-revokes {breakers.max_revokes}",
                hint="check the policy and directory, then raise --max-revokes if this is intended",
            )
        )
    if breakers.max_revoke_ratio is not None and revokes:
        granted = sum(1 for _, target in snapshot.cells() if desired.is_managed(target))
        ratio = revokes / granted if granted else 1.0
        if ratio > breakers.max_revoke_ratio:
            raise ReconcilerError(
                Problem(
                    f"the plan revokes {ratio:.0%} of the {granted} managed grants, more than "
                    f"--max-revoke-ratio {breakers.max_revoke_ratio:g}",
                    hint="check the policy and directory, then raise --max-revoke-ratio if this is intended",
                )
            )


def check_fresh(target: str, plan: Plan, current: Snapshot) -> None:
    """Refuse a plan whose touched users changed since it was made, unless the plan itself explains it.

    A change the plan itself would make (from an interrupted earlier apply of the same plan) is expected.
    """
    if plan.target != target:
        raise ReconcilerError(f"the plan was made for target '{plan.target}', not '{target}'")
    stale: dict[str, dict[str, list[str]]] = {}
    for user, change in sorted(plan.changes.items()):
        before = set(plan.touched_state.get(user, []))
        now = {str(t) for t in current.grants.get(user, frozenset())}
        explained = {t for targets in change.grant.values() for t in targets} | set(change.revoke)
        if (before ^ now) - explained:
            stale[user] = {"recorded": sorted(before), "current": sorted(now)}
    if stale:
        recorded = {u: v["recorded"] for u, v in stale.items()}
        now_state = {u: v["current"] for u, v in stale.items()}
        difference = DeepDiff(recorded, now_state, ignore_order=True, verbose_level=2).pretty()
        detail = "; ".join(line.strip() for line in difference.splitlines()[:5])
        raise ReconcilerError(
            Problem(
                f"the plan is stale: {len(stale)} touched users changed since it was made ({detail})",
                hint="make a new plan",
            )
        )


def journal_for(session: Session, plan: Plan) -> Journal:
    key = hashlib.sha256(b"".join(b.key().encode() for b in plan.batches)).hexdigest()[:16]
    return Journal(session.state_dir / f"journal-{key}.jsonl")


async def execute(
    session: Session, plan: Plan, ledger: Ledger, on_batch: Progress | None = None
) -> tuple[ApplyResult, dict[tuple[str, str], str]]:
    """Run the plan, then re-read the touched users and report any cell that is not as planned.

    A cell reported failed whose live state is nevertheless right (an earlier attempt whose answer was lost
    had done it) is not a failure; the re-read decides.
    """
    journal = journal_for(session, plan)
    executor = Executor(session.client, journal=journal, ledger=ledger, on_batch=on_batch)
    result = await executor.run(plan)
    wrong = await verify(session, plan)
    result.failures = [f for f in result.failures if (f.user, f.target) in wrong]
    ledger.compact()
    if result.ok and not wrong:
        journal.close()
    return result, wrong


async def verify(session: Session, plan: Plan) -> dict[tuple[str, str], str]:
    """Cells of the plan that are not as it intends, each with what is wrong."""
    granted, revoked = plan.intended()
    after = await refresh(session.client, plan.touched_users(), cube_kind=session.cube_readback)
    live: set[Cell] = set(after.cells())
    wrong = {(u, str(t)): "granted by the plan but not live" for u, t in granted - live}
    wrong.update({(u, str(t)): "revoked by the plan but still live" for u, t in revoked & live})
    return wrong
