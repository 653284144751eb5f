"""Apply: plan (or admit a saved plan), confirm, execute, verify, record; in full, or incrementally."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.application.usecases._common import (
    Confirm,
    PlanOptions,
    Progress,
    Tracker,
    _live_embeds,
    _read_users,
    _state_notes,
    _test_failures,
    _untracked,
    _with_embeds,
    state_of,
)
from reconciler.application.usecases.planning import changed_users_note, plan_from
from reconciler.application.workspace import Session
from reconciler.core.apply import (
    ApplyResult,
    Breakers,
    Executor,
    Verification,
    Verifier,
    Work,
    admit,
    check_breakers,
    lacking_changes,
    outstanding,
)
from reconciler.core.change import changed_users, full_plan_reason
from reconciler.core.diff import DiffOptions, diff
from reconciler.core.embeds import EmbedChange, LiveEmbed
from reconciler.core.ledger import Ledger
from reconciler.core.plan import Plan
from reconciler.core.policy import Policy
from reconciler.core.ports import DirectoryOnce
from reconciler.core.resolve import Desired, resolve
from reconciler.core.snapshot import Snapshot
from reconciler.core.state import (
    AppliedCommit,
    ManagedRecord,
    forget_applied,
    read_applied,
    write_applied,
    write_managed,
)
from reconciler.vocabulary.cells import Cell
from reconciler.vocabulary.errors import ReconcilerError


@dataclass
class ApplyOutcome:
    """What an apply did: the plan it ran, and if it sent anything, the result and what verification found."""

    plan: Plan
    result: ApplyResult = field(default_factory=ApplyResult)
    mismatches: dict[Cell, str] = field(default_factory=dict)
    cancelled: bool = False
    nothing_to_do: bool = False
    # embed data ranges not set as planned, each "embed 'name' (module id): why"
    embed_failures: list[str] = field(default_factory=list)
    verification: Verification | None = None
    # changes today's policy requires that a saved plan does not make (batches deleted, or a partial plan),
    # counted among the users read (`unread` others were not)
    lacking: int = 0
    unread: int = 0
    # the commit recorded as made live (an apply that left every user as the policy says), if any
    recorded: str | None = None
    # why an incremental apply read everyone (also among the plan's notes)
    full_reason: str | None = None

    @property
    def ok(self) -> bool:
        return not self.cancelled and self.result.ok and not self.mismatches and not self.embed_failures


FULL_APPLY = "a full apply, not an incremental one"


@dataclass(frozen=True)
class Increment:
    """An incremental apply: the policy at the commit the last apply recorded (`base`), and the commit's id.

    With `why_full` (found by the caller: the configuration changed, say) or a change of managed targets the
    apply is a full one and its plan says why."""

    base: Policy | None  # None: `why_full` says why there is no base to plan from
    since: str = ""
    why_full: str | None = None


@dataclass(frozen=True)
class _Reads:
    """Whose live grants an apply reads: everyone (`users` None), or only these, and what the plan says of it."""

    users: frozenset[str] | None = None
    partial: str | None = None  # the plan's note when an incremental apply reads only the changed users
    note: str | None = None  # the plan's note when an incremental apply falls back to a full one
    # the grants the reads assume are live (the base's, or the policy's): the breakers' denominator
    assumed: Desired | None = None

    @property
    def everyone(self) -> bool:
        return self.users is None


async def apply(
    session: Session,
    policy: Policy,
    today: dt.date,
    confirm: Confirm,
    saved: Plan | None = None,
    options: PlanOptions | None = None,
    breakers: Breakers | None = None,
    track: Tracker | None = None,
    verify_all: bool = False,
    increment: Increment | None = None,
    commit: str | None = None,
) -> ApplyOutcome:
    """Plan (or admit a saved plan against today's policy and live state), confirm, execute, verify, record.

    Live grants are read for everyone, or only for the users the run can touch: those of a partial saved plan,
    of --user/--group, or (`increment`) of the change since the last applied commit. `commit` is the policy
    repository's commit the policy is (None when it is not one): recorded after an apply that leaves every user
    as the policy says, so that the next incremental apply can start from it.

    The session must be exclusive (the target's lock held throughout), so that no other apply moves live
    state between the checks and the calls. A saved plan is never trusted: see `apply.admit`.
    """
    if not session.exclusive:
        raise ReconcilerError("internal: apply needs a session opened exclusively (open_target(exclusive=True))")
    track = track or _untracked
    options = options or PlanOptions()
    record, ledger = state_of(session)
    directory = DirectoryOnce(session.service)
    desired = await resolve(policy, directory, today, record.targets)
    reads = await _reads(directory, desired, record, ledger, today, saved, options, increment)
    live = await _read_users(session, desired.directory if reads.users is None else reads.users, track)
    live_embeds, found = await _live_embeds(session, desired)
    lacking = 0
    if saved is not None:
        admit(saved, session.name, policy.digest, desired, live, today, session.service.cap)
        chosen = saved
        planned_embeds = {c.copilot_id for c in saved.embed_changes}
        scope = DiffOptions(users=reads.users)
        lacking = lacking_changes(saved, diff(desired, live, ledger, today, scope, ledger.unconfirmed))
        lacking += sum(1 for c in found.changes if c.copilot_id not in planned_embeds)
    else:
        if reads.partial is not None:
            options = replace(options, diff=replace(options.diff, users=reads.users))
        notes = [*_state_notes(record), *([reads.note] if reads.note else [])]
        chosen, _ = plan_from(session, desired, live, ledger, today, options, notes)
        if reads.partial is not None:
            chosen = chosen.model_copy(update={"partial": reads.partial})
        if not options.limited:
            chosen = _with_embeds(chosen, found, desired)
    failures = _test_failures(policy, desired, live, chosen)
    if failures:
        raise ReconcilerError(failures)
    unread = len(desired.directory) - len(reads.users) if reads.users is not None else 0
    # the apply leaves every user as the policy says (if it succeeds): the commit may be recorded after it
    whole = (reads.everyone or reads.partial is not None) and not options.limited and not (saved and saved.partial)
    work = outstanding(chosen, live, ledger, session.service.cap, ledger.unconfirmed)
    embeds = [c for c in chosen.embed_changes if _unset(c, live_embeds)]
    if not work.batches and not embeds:
        _remember_managed(session, desired, live, chosen, {}, ledger, reads.everyone)
        done = ApplyResult(resumed=work.already_done)
        outcome = _outcome(chosen, reads, lacking, unread, result=done, nothing_to_do=True)
        return _record_commit(session, outcome, commit, whole)
    granted = _managed_grants(live, desired, reads)
    check_breakers(work, granted, breakers or Breakers(), estimated=not reads.everyone)
    if not confirm(chosen):
        return _outcome(chosen, reads, lacking, unread, cancelled=True)
    _forget_other_commit(session, commit)
    embed_failures = await set_embed_ranges(session, embeds)
    with track(len(work.batches), "apply") as tick:
        seed = chosen.inputs.policy_digest
        result, mismatches, verification = await execute_and_verify(session, work, ledger, tick, not verify_all, seed)
    _remember_managed(session, desired, live, chosen, mismatches, ledger, reads.everyone)
    outcome = _outcome(
        chosen,
        reads,
        lacking,
        unread,
        result=result,
        mismatches=mismatches,
        embed_failures=embed_failures,
        verification=verification,
    )
    return _record_commit(session, outcome, commit, whole)


def _outcome(plan: Plan, reads: _Reads, lacking: int, unread: int, **what: Any) -> ApplyOutcome:
    return ApplyOutcome(plan, lacking=lacking, unread=unread, full_reason=reads.note, **what)


async def _reads(
    directory: DirectoryOnce,
    desired: Desired,
    record: ManagedRecord,
    ledger: Ledger,
    today: dt.date,
    saved: Plan | None,
    options: PlanOptions,
    increment: Increment | None,
) -> _Reads:
    """Whose live grants the apply must read: no one's beyond those it can touch."""
    if saved is not None:
        if not saved.partial:
            return _Reads()  # a full plan's lacking changes are counted among everyone
        return _Reads(frozenset(saved.touched_users()) & desired.directory.keys(), assumed=desired)
    users = options.scoped(desired).users
    if users is not None:
        return _Reads(users & desired.directory.keys(), assumed=desired)
    if increment is None:
        return _Reads()
    before = None if increment.base is None else await resolve(increment.base, directory, today, record.targets)
    reason = increment.why_full or (None if before is None else full_plan_reason(before, desired))
    if reason is not None or before is None:
        return _Reads(note=f"{FULL_APPLY}: {reason or 'no base to plan from'}")
    changed = frozenset(changed_users(before, desired, ledger, today, ledger.unconfirmed))
    lead = f"incremental, changed since commit {increment.since[:12]} (the last complete apply)"
    partial = changed_users_note(lead, changed, desired, "is left to the scheduled full run")
    return _Reads(changed & desired.directory.keys(), partial=partial, assumed=before)


def _managed_grants(live: Snapshot, desired: Desired, reads: _Reads) -> int:
    """The managed grants live now, for --max-revoke-ratio: counted when everyone was read; otherwise at least
    those the reads assume (the base policy's cells for an incremental apply, today's policy's for a partial
    one), since the users not read were left that way."""
    counted = sum(1 for _, target in live.cells() if desired.is_managed(target))
    if reads.assumed is None:
        return counted
    return max(counted, sum(1 for _, target in reads.assumed.cells if desired.is_managed(target)))


def _forget_other_commit(session: Session, commit: str | None) -> None:
    """Before the first call: a record of another commit than the one applied stops being true now."""
    applied = read_applied(session.state_dir, session.name)
    if not (isinstance(applied, AppliedCommit) and applied.commit == commit):
        forget_applied(session.state_dir)


def _record_commit(session: Session, outcome: ApplyOutcome, commit: str | None, whole: bool) -> ApplyOutcome:
    """Record `commit` as made live when the apply left every user as its policy says."""
    if commit is None or not whole or not outcome.ok or outcome.lacking or outcome.plan.summary.skipped_revokes:
        return outcome
    write_applied(session.state_dir, AppliedCommit(commit, session.name))
    outcome.recorded = commit
    return outcome


def _unset(change: EmbedChange, live: Mapping[str, LiveEmbed]) -> bool:
    return change.copilot_id not in live or live[change.copilot_id].range != change.after


async def set_embed_ranges(session: Session, changes: list[EmbedChange]) -> list[str]:
    """Set each module's data range, then read them back: what is not as planned, and why.

    Narrowing a module before the grant batches run means a ticket never reaches more than policy allows
    for longer than it must. Setting a range is idempotent, so a failed call is safe to run again next time.
    """
    if not changes:
        return []
    problems: dict[str, str] = {}
    for change in changes:
        failure = await session.service.set_embed_range(change.copilot_id, change.after)
        if failure is not None:
            problems[change.copilot_id] = failure
    now = await session.service.embeds()
    for change in changes:
        current = now.get(change.copilot_id)
        if change.copilot_id not in problems and (current is None or current.range != change.after):
            problems[change.copilot_id] = f"read back as {current.described if current else 'missing'}"
    return [
        f"embed '{c.embed}' (module {c.copilot_id}): {problems[c.copilot_id]}"
        for c in changes
        if c.copilot_id in problems
    ]


def _remember_managed(
    session: Session,
    desired: Desired,
    live: Snapshot,
    plan: Plan,
    wrong: dict[Cell, str],
    ledger: Ledger,
    everyone: bool,
) -> None:
    """Record what is managed now; a removed target stays recorded until none of its revocable grants is left.

    Only a run that read everyone can know that: after a partial read, every removed target stays recorded
    (dropping one could leave unread users' grants on it unrevoked for good). The ledger keeps expiries only
    on recorded targets: one that leaves the record (released, or removed and emptied) takes its ledger lines
    with it, so that the record and the ledger tell the same story."""
    revoked = plan.revoke_cells()
    leftover = {
        target
        for user, target in live.cells()
        if target in desired.removed
        and user not in desired.protected
        and ((user, target) not in revoked or (user, target) in wrong)
    }
    if not everyone:
        leftover = set(desired.removed)
    record = desired.managed_record() | leftover
    if ledger.forget_targets_except(record) or not ledger.path.exists():
        ledger.compact()  # written whenever the record is: a record without a ledger means damage
    write_managed(session.state_dir, record)


async def execute_and_verify(
    session: Session,
    work: Work,
    ledger: Ledger,
    on_batch: Progress | None = None,
    sample: bool = False,
    seed: str = "",
) -> tuple[ApplyResult, dict[Cell, str], Verification]:
    """Run the outstanding work while reading back the touched users (with `sample`, see `verifier`), and
    report any cell not as planned.

    A cell reported failed whose live state is nevertheless right (an earlier attempt whose answer was lost
    had done it) is not a failure; the read-back decides. A failed cell's user is always read back.
    """
    verifier = Verifier(session.service, work, sample, seed)
    executor = Executor(session.service, ledger=ledger, on_batch=on_batch, on_settled=verifier.settled)
    try:
        result = await executor.run(work)
    except BaseException:
        verifier.cancel()
        raise
    verification = await verifier.finish()
    result.failures = [f for f in result.failures if (f.user, f.target) in verification.wrong]
    ledger.compact()
    return result, verification.wrong, verification
