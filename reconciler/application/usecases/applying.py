"""Apply: plan (or admit a saved plan), confirm, execute, verify, record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.application.usecases._common import (
    Confirm,
    PlanOptions,
    Progress,
    Tracker,
    _live_embeds,
    _state_notes,
    _test_failures,
    _untracked,
    _with_embeds,
    desired_and_snapshot,
    state_of,
)
from reconciler.application.usecases.planning import plan_from
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
from reconciler.core.diff import diff
from reconciler.core.embeds import EmbedChange, LiveEmbed
from reconciler.core.ledger import Ledger
from reconciler.core.plan import Plan
from reconciler.core.policy import Policy
from reconciler.core.resolve import Desired
from reconciler.core.snapshot import Snapshot
from reconciler.core.state import write_managed
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
    # changes today's policy requires that a saved plan does not make (batches deleted, or a partial plan)
    lacking: int = 0

    @property
    def ok(self) -> bool:
        return not self.cancelled and self.result.ok and not self.mismatches and not self.embed_failures


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
) -> ApplyOutcome:
    """Plan (or admit a saved plan against today's policy and live state), confirm, execute, verify, record.

    The session must be exclusive (the target's lock held throughout), so that no other apply moves live
    state between the checks and the calls. A saved plan is never trusted: see `apply.admit`.
    """
    if not session.exclusive:
        raise ReconcilerError("internal: apply needs a session opened exclusively (open_target(exclusive=True))")
    track = track or _untracked
    record, ledger = state_of(session)
    desired, live = await desired_and_snapshot(session, policy, today, track=track, record=record)
    options = options or PlanOptions()
    live_embeds, found = await _live_embeds(session, desired)
    lacking = 0
    if saved is not None:
        admit(saved, session.name, policy.digest, desired, live, today, session.service.cap)
        chosen = saved
        planned_embeds = {c.copilot_id for c in saved.embed_changes}
        lacking = lacking_changes(saved, diff(desired, live, ledger, today, unconfirmed=ledger.unconfirmed))
        lacking += sum(1 for c in found.changes if c.copilot_id not in planned_embeds)
    else:
        chosen, _ = plan_from(session, desired, live, ledger, today, options, _state_notes(record))
        if not options.limited:
            chosen = _with_embeds(chosen, found, desired)
    failures = _test_failures(policy, desired, live, chosen)
    if failures:
        raise ReconcilerError(failures)
    work = outstanding(chosen, live, ledger, session.service.cap, ledger.unconfirmed)
    embeds = [c for c in chosen.embed_changes if _unset(c, live_embeds)]
    if not work.batches and not embeds:
        _remember_managed(session, desired, live, chosen, {}, ledger)
        return ApplyOutcome(chosen, ApplyResult(resumed=work.already_done), nothing_to_do=True, lacking=lacking)
    check_breakers(work, live, desired, breakers or Breakers())
    if not confirm(chosen):
        return ApplyOutcome(chosen, cancelled=True)
    embed_failures = await set_embed_ranges(session, embeds)
    with track(len(work.batches), "apply") as tick:
        seed = chosen.inputs.policy_digest
        result, mismatches, verification = await execute_and_verify(session, work, ledger, tick, not verify_all, seed)
    _remember_managed(session, desired, live, chosen, mismatches, ledger)
    return ApplyOutcome(
        chosen, result, mismatches, embed_failures=embed_failures, verification=verification, lacking=lacking
    )


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
    session: Session, desired: Desired, live: Snapshot, plan: Plan, wrong: dict[Cell, str], ledger: Ledger
) -> None:
    """Record what is managed now; a removed target stays recorded until none of its revocable grants is left.

    The ledger keeps expiries only on recorded targets: one that leaves the record (released, or removed and
    emptied) takes its ledger lines with it, so that the record and the ledger tell the same story."""
    revoked = plan.revoke_cells()
    leftover = {
        target
        for user, target in live.cells()
        if target in desired.removed
        and user not in desired.protected
        and ((user, target) not in revoked or (user, target) in wrong)
    }
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
