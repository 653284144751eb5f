"""Admission of a saved plan, rule by rule, on hand-built policy and live state."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.core.apply import admit
from reconciler.core.diff import diff
from reconciler.core.plan import Batch, Plan, PlanInputs, build_plan
from reconciler.core.policy import UNKNOWN, Rolling
from reconciler.core.resolve import Desired, DesiredCells
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Target
from reconciler.vocabulary.errors import ReconcilerError

TODAY = dt.date(2026, 11, 23)
NEVER = dt.date(2099, 12, 31)
A, B, R, U = Target("llm_cube", "a"), Target("theme", "b"), Target("theme", "r"), Target("llm_cube", "unmanaged")
DESIRED = Desired(
    DesiredCells.of({("u1", A): NEVER, ("u2", R): Rolling(ttl=30, renew_within=7)}),
    frozenset({A, B, R}),
    frozenset({"root"}),
    {user: f"acct-{user}" for user in ("u1", "u2", "u3", "u4", "u9", "root")},
    {A: "A", B: "B", R: "R", U: "U"},
    "sha256:p",
)
LIVE = Snapshot({"u3": frozenset({A}), "root": frozenset({A})})


def _plan() -> Plan:
    changes = diff(DESIRED, LIVE, {}, TODAY)
    touched = {u: LIVE.grants.get(u, frozenset()) for u in ("u1", "u2", "u3")}
    return build_plan("t", changes, PlanInputs(policy_digest="sha256:p", snapshot_digest="s"), touched, {})


def _with(plan: Plan, batch: Batch) -> Plan:
    return plan.model_copy(update={"batches": [*plan.batches, batch]})


def _refusal(plan: Plan, live: Snapshot = LIVE, today: dt.date = TODAY) -> str:
    with pytest.raises(ReconcilerError) as refused:
        admit(plan, "t", "sha256:p", DESIRED, live, today, cap=100)
    return str(refused.value)


def test_a_fresh_plan_is_admitted_and_so_is_its_rerun() -> None:
    plan = _plan()
    admit(plan, "t", "sha256:p", DESIRED, LIVE, TODAY, cap=100)
    # after an interrupted apply of the same plan: its grants live, its revoke done
    halfway = Snapshot({"u1": frozenset({A}), "root": frozenset({A})})
    admit(plan, "t", "sha256:p", DESIRED, halfway, TODAY, cap=100)


def test_each_rule_refuses_with_the_batch_and_cell() -> None:
    plan = _plan()
    grant = Batch(
        operation="grant", user_ids=["u9"], llm_cubes=["a"], llm_cube_themes=[], expire_day=dt.date(2099, 12, 31)
    )
    revoke = Batch(operation="revoke", user_ids=["root"], llm_cubes=["a"], llm_cube_themes=[])
    n = len(plan.batches) + 1
    assert f"batch {n} grants u9 llm_cube:a: today's policy does not grant it" in _refusal(_with(plan, grant))
    assert "the user is protected" in _refusal(_with(plan, revoke))
    desired_revoke = revoke.model_copy(update={"user_ids": ["u1"]})
    assert "today's policy grants it" in _refusal(_with(plan, desired_revoke))
    unmanaged = revoke.model_copy(update={"user_ids": ["u3"], "targets": (Target("llm_cube", "unmanaged"),)})
    assert "does not manage this target" in _refusal(_with(plan, unmanaged))
    wrong_day = grant.model_copy(update={"user_ids": ["u1"], "expire_day": dt.date(2030, 1, 1)})
    assert "expiry 2030-01-01 differs from the policy's 2099-12-31" in _refusal(_with(plan, wrong_day))
    wide = grant.model_copy(update={"user_ids": [f"u{i}" for i in range(101)]})
    assert "more than the 100 one call may carry" in _refusal(_with(plan, wide))


def test_a_rolling_expiry_is_admitted_inside_its_window_only() -> None:
    plan = _plan()
    rolling = next(b for b in plan.batches if "r" in b.ids("theme"))
    assert rolling.expire_day == dt.date(2026, 12, 23)
    admit(plan, "t", "sha256:p", DESIRED, LIVE, TODAY + dt.timedelta(days=1), cap=100)  # made yesterday
    assert "outside the policy's rolling window" in _refusal(plan, today=TODAY + dt.timedelta(days=40))


def test_other_target_other_policy_or_moved_users_are_refused() -> None:
    plan = _plan()
    with pytest.raises(ReconcilerError, match="made for target 't', not 'prod'"):
        admit(plan, "prod", "sha256:p", DESIRED, LIVE, TODAY, cap=100)
    with pytest.raises(ReconcilerError, match="the policy changed"):
        admit(plan, "t", "sha256:other", DESIRED, LIVE, TODAY, cap=100)
    moved = Snapshot({"u3": frozenset({A}), "u1": frozenset({B}), "root": frozenset({A})})
    assert "u1's live grants changed since it was made (+theme:b)" in _refusal(plan, live=moved)


def test_a_grant_of_a_cell_whose_expiry_is_unknown_is_refused() -> None:
    desired = Desired(
        DesiredCells.of({**DESIRED.cells, ("u4", A): UNKNOWN}),
        DESIRED.managed,
        DESIRED.protected,
        DESIRED.directory,
        DESIRED.target_names,
        "sha256:p",
    )
    grant = Batch(operation="grant", user_ids=["u4"], llm_cubes=["a"], llm_cube_themes=[], expire_day=NEVER)
    plan = _with(_plan(), grant)
    with pytest.raises(ReconcilerError) as refused:
        admit(plan, "t", "sha256:p", desired, LIVE, TODAY, cap=100)
    assert "grants u4 llm_cube:a: the policy keeps it only while it is live (expires: unknown)" in str(refused.value)
