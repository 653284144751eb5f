"""Reports that change nothing: drift, explain, who-can, and the policy's own checks."""

from __future__ import annotations

import datetime as dt

from reconciler.application.usecases._common import (
    Tracker,
    _live_embeds,
    _one_user,
    _resolved,
    _state_notes,
    desired_and_snapshot,
    state_of,
)
from reconciler.application.workspace import Session
from reconciler.core.access import AccessLine, access_lines, check_tests, embed_warnings
from reconciler.core.drift import DriftReport, drift
from reconciler.core.policy import Policy
from reconciler.core.snapshot import Snapshot, refresh
from reconciler.vocabulary.base import utc_timestamp
from reconciler.vocabulary.errors import Problem, ReconcilerError


async def explain(session: Session, policy: Policy, today: dt.date, user_ref: str) -> list[AccessLine]:
    """Every grant of one user, live or wanted, traced to the policy line and group path that gives it."""
    desired, ledger = await _resolved(session, policy, today)
    user = _one_user(desired, user_ref)
    live = await refresh(session.service, [user])
    return access_lines(desired, live, ledger, users={user})


async def who_can(
    session: Session,
    policy: Policy,
    today: dt.date,
    target_ref: str,
    snapshot: Snapshot | None = None,
    track: Tracker | None = None,
) -> list[AccessLine]:
    """Everyone who can query a target, or is meant to, and why."""
    record, ledger = state_of(session)
    desired, live = await desired_and_snapshot(session, policy, today, snapshot, track, record)
    targets = desired.targets_named(target_ref)
    if not targets:
        raise ReconcilerError(Problem(f"no target named '{target_ref}'", hint="give a resource alias, name or id:<ID>"))
    return access_lines(desired, live, ledger, targets=targets)


async def check_policy(session: Session, policy: Policy, today: dt.date) -> tuple[list[Problem], list[Problem]]:
    """What only the resolved policy can tell, no live grants read: failing `tests:`, and warnings (embeds that
    widen access beyond their ticket holders' grants)."""
    desired, _ = await _resolved(session, policy, today)
    return check_tests(policy.tests, desired), embed_warnings(desired)


async def make_drift(session: Session, policy: Policy, today: dt.date, track: Tracker | None = None) -> DriftReport:
    record, ledger = state_of(session)
    desired, live = await desired_and_snapshot(session, policy, today, track=track, record=record)
    _, found = await _live_embeds(session, desired)
    return drift(
        session.name,
        desired,
        live,
        ledger,
        today,
        _state_notes(record),
        found,
        ledger.unconfirmed,
        groups=policy.groups.keys(),
        read_at=utc_timestamp(),
    )
