"""Plans: a full plan, a pull request's plan (changed from a base), a snapshot of live grants."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Collection
from dataclasses import replace

from reconciler.application.usecases._common import (
    PlanOptions,
    Tracker,
    _embeds_into,
    _partial,
    _read_users,
    _state_notes,
    _test_failures,
    desired_and_snapshot,
    state_of,
)
from reconciler.application.workspace import Session
from reconciler.core.access import embed_warnings
from reconciler.core.change import changed_users, full_plan_reason, policy_changes
from reconciler.core.diff import Changes, diff
from reconciler.core.ledger import Ledger
from reconciler.core.plan import Plan, PlanInputs, build_plan
from reconciler.core.policy import Policy
from reconciler.core.ports import DirectoryOnce
from reconciler.core.resolve import Desired, resolve
from reconciler.core.snapshot import Snapshot
from reconciler.core.state import ManagedRecord
from reconciler.vocabulary.base import bulk_data, plural
from reconciler.vocabulary.cells import users_of


def plan_from(
    session: Session,
    desired: Desired,
    snapshot: Snapshot,
    ledger: Ledger,
    today: dt.date,
    options: PlanOptions,
    notes: list[str] | None = None,
) -> tuple[Plan, Changes]:
    with bulk_data():
        scope = replace(options.scoped(desired), regrant=options.allow_regrant)
        changes = diff(desired, snapshot, ledger, today, scope, ledger.unconfirmed)
        if changes.beyond_policy:
            notes = [*(notes or []), beyond_policy_note(len(changes.beyond_policy))]
        touched_set = users_of(changes.revokes).union(*map(users_of, changes.grants.values()))
        touched = sorted(touched_set)
        touched_state = {u: snapshot.grants.get(u, frozenset()) for u in touched}
        names = dict(desired.directory)
        names.update({str(t): n for t, n in desired.target_names.items()})
        whole = snapshot.digest()
        inputs = PlanInputs(
            policy_digest=desired.policy_digest,
            snapshot_digest=whole,
            # an onboarding touches every user read: the same digest, not computed twice
            touched_users_digest=whole if touched_set == snapshot.grants.keys() else snapshot.digest(touched),
        )
        plan = build_plan(
            session.name,
            changes,
            inputs,
            touched_state,
            names,
            options.allow_regrant,
            removed_targets=desired.removed,
            notes=notes or [],
            cap=session.service.cap,
            previous_expiry=ledger,
            partial=_partial(scope, desired),
        )
        plan.grants_by_statement = _by_statement(changes, desired)
        return plan, changes


def beyond_policy_note(cells: int) -> str:
    return (
        f"the expiry ledger records a later expiry than the policy allows for {plural(cells, 'live grant')} (an edited "
        "state?): ignored; they are granted again with the policy's expiry"
    )


def _by_statement(changes: Changes, desired: Desired) -> dict[str, int]:
    counts: Counter[int | None] = Counter()
    for cells in changes.grants.values():
        counts.update(desired.cells.sources_of(cells))
    counts.pop(None, None)
    labels = {}
    for index, count in sorted(counts.items(), key=lambda item: -item[1]):
        assert index is not None
        rule = desired.rules[index]
        who = ", ".join(name for name, _ in rule.principals[:4]) + (", …" if len(rule.principals) > 4 else "")
        labels[f"{rule.location} (to: {who})"] = count
    return labels


async def take_snapshot(session: Session, track: Tracker | None = None) -> Snapshot:
    """Every user's live grants (`refresh --out`): the directory, then one read per user."""
    users = await session.service.users()
    return await _read_users(session, [u.user_id for u in users], track)


async def make_plan(
    session: Session,
    policy: Policy,
    today: dt.date,
    options: PlanOptions,
    snapshot: Snapshot | None = None,
    track: Tracker | None = None,
    notes: Collection[str] = (),
) -> Plan:
    record, ledger = state_of(session)
    desired, live = await desired_and_snapshot(session, policy, today, snapshot, track, record)
    return await _planned(session, policy, desired, live, record, ledger, today, options, [*notes])


async def _planned(
    session: Session,
    policy: Policy,
    desired: Desired,
    live: Snapshot,
    record: ManagedRecord,
    ledger: Ledger,
    today: dt.date,
    options: PlanOptions,
    notes: list[str],
    partial: str | None = None,
) -> Plan:
    """The plan of `desired` against `live`, with embeds, notes and the policy tests' verdict."""
    notes = [*_state_notes(record), *notes, *map(str, embed_warnings(desired))]
    plan, _ = plan_from(session, desired, live, ledger, today, options, notes)
    plan = await _embeds_into(session, plan, desired, options)
    if partial is not None:
        also = f"; also {plan.partial}" if options.limited and plan.partial else ""
        plan = plan.model_copy(update={"partial": partial + also})
    failures = _test_failures(policy, desired, live, plan)
    return plan.model_copy(update={"failed_tests": [str(problem) for problem in failures]})


async def make_changed_plan(
    session: Session,
    policy: Policy,
    base: Policy,
    today: dt.date,
    options: PlanOptions,
    track: Tracker | None = None,
    why_full: str | None = None,
) -> Plan:
    """A pull request's plan: read live only the users whose access differs between `base` and `policy`.

    Much faster than a full plan on a large tenant (40 of 100,000 users is 40 reads, not 100,000). Exact for a
    change of who is granted what; a change of configuration (`why_full`, found by the caller) or of the managed
    targets gets a full plan (see `change.full_plan_reason`), since it can move grants that no changed statement
    names. Either way the plan opens with what the change does to the policy, by path.
    """
    record, ledger = state_of(session)
    directory = DirectoryOnce(session.service)
    desired, before = await asyncio.gather(
        resolve(policy, directory, today, record.targets),
        resolve(base, directory, today, record.targets),
    )
    summary = {"policy_changes": policy_changes(base, policy)}
    reason = why_full or full_plan_reason(before, desired)
    if reason is not None:
        live = await _read_users(session, desired.directory, track)
        notes = [full_plan_note(reason)]
        plan = await _planned(session, policy, desired, live, record, ledger, today, options, notes)
        return plan.model_copy(update=summary)
    users = changed_users(before, desired, ledger, today, ledger.unconfirmed)
    live = await _read_users(session, users, track)
    scoped = replace(options, diff=replace(options.diff, users=frozenset(users)))
    partial = changed_users_note(
        "changed from the base policies",
        users,
        desired,
        "is not shown here; an incremental apply on merge reads the same users, and the scheduled full run corrects it",
    )
    plan = await _planned(session, policy, desired, live, record, ledger, today, scoped, [], partial)
    return plan.model_copy(update=summary)


def changed_users_note(lead: str, users: Collection[str], desired: Desired, drift: str) -> str:
    """What a plan that read only the users a change touches says of the others (`drift`: what becomes of
    changes made outside the policy among them)."""
    others = len(desired.directory.keys() - set(users))
    return (
        f"{lead}: live grants read only for the {plural(len(users), 'user')} whose access the change touches; the "
        f"other {plural(others, 'user')} were not read, so drift among them (changes made outside the policy) {drift}"
    )


def full_plan_note(reason: str) -> str:
    """The line a pull request's plan carries when it had to read everyone."""
    return f"planned in full, not only the users the change touches: {reason}"
