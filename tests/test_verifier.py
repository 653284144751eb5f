"""Verification overlapped with the writes: users are read back as soon as their batches settle cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from reconciler.adapters.quickbi import QuickBIAccess
from reconciler.application import usecases
from reconciler.application.workspace import Session
from reconciler.core.apply import Verification, outstanding
from reconciler.core.diff import Changes
from reconciler.core.plan import Batch, Plan, PlanInputs, build_plan
from reconciler.core.policy import load_policy
from reconciler.core.ports import CellFailure
from reconciler.core.snapshot import Snapshot
from reconciler.emulator import Emulator, FaultSettings
from reconciler.emulator.orgfile import OrgFile
from reconciler.vocabulary.cells import Target
from tests.conftest import ROOT, CliResult

TODAY = dt.datetime.now(dt.UTC).date()


class _Recording(QuickBIAccess):
    """Quick BI, with a log of calls, and the batches of one user held back for a moment."""

    def __init__(self, *args: object, slow_user: str) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.events: list[str] = []
        self.slow_user = slow_user

    async def authorize(self, batch: Batch) -> list[CellFailure]:
        if self.slow_user in batch.user_ids:
            await asyncio.sleep(0.3)
        failures = await super().authorize(batch)
        self.events.append("write " + ",".join(batch.user_ids))
        return failures

    async def user_targets(self, user_id: str) -> frozenset[Target]:
        self.events.append(f"read {user_id}")
        return await super().user_targets(user_id)


def _run(emulator: Emulator, tmp_path: Path, slow_user: str) -> tuple[list[str], object, dict[object, str]]:
    policy = load_policy([ROOT / "policies"], TODAY)

    async def go() -> tuple[list[str], object, dict[object, str]]:
        async with emulator.client() as client:
            service = _Recording(client, slow_user=slow_user)
            session = Session("t", service, tmp_path, exclusive=True)
            desired, live = await usecases.desired_and_snapshot(session, policy, TODAY)
            ledger = usecases.ledger_for(session)
            plan, _ = usecases.plan_from(session, desired, live, ledger, TODAY, usecases.PlanOptions())
            service.events.clear()
            result, wrong, _ = await usecases.execute_and_verify(session, outstanding(plan, live, ledger), ledger)
            return service.events, result, wrong  # type: ignore[return-value]

    return asyncio.run(go())


def test_users_are_read_back_while_other_batches_are_still_written(tmp_path: Path) -> None:
    emulator = Emulator.from_file(ROOT / "examples" / "demo-org.yaml")
    events, result, wrong = _run(emulator, tmp_path, slow_user="u-judy")
    assert result.ok and not wrong  # type: ignore[attr-defined]
    last_write = max(i for i, e in enumerate(events) if e.startswith("write"))
    early = [e for e in events[:last_write] if e.startswith("read")]
    assert early, events  # reads began before the slow batch was written
    assert all("u-judy" not in e for e in early)  # but never a read of a user whose batch is still out


def test_failed_users_are_read_after_the_last_round(tmp_path: Path) -> None:
    emulator = Emulator.from_file(ROOT / "examples" / "demo-org.yaml", faults=FaultSettings(partial_rate=1.0))
    events, result, wrong = _run(emulator, tmp_path, slow_user="nobody")
    assert not result.ok and wrong  # type: ignore[attr-defined]
    first_read = min(i for i, e in enumerate(events) if e.startswith("read"))
    assert all(not e.startswith("write") for e in events[first_read:])  # every user failed: reads come last


def _onboarding(users: int, silent_rate: float = 0.0) -> tuple[Emulator, Plan, Snapshot]:
    """`users` users granted two cubes each, and the first ten's old cube revoked."""
    org = OrgFile.model_validate(
        {
            "access_keys": [{"id": "ak", "secret": "sk"}],
            "users": [{"id": f"u{i:04d}", "account": f"a{i}"} for i in range(users)],
            "llm_cubes": [{"id": c, "alias": c} for c in ("c-a", "c-b", "c-old")],
            "grants": [{"user": f"u{i:04d}", "llm_cube": "c-old", "expire_day": "2099-12-31"} for i in range(10)],
        }
    )
    emulator = Emulator(org, faults=FaultSettings(silent_rate=silent_rate, seed=7))
    grants = frozenset((f"u{i:04d}", Target("llm_cube", c)) for i in range(users) for c in ("c-a", "c-b"))
    revokes = frozenset((f"u{i:04d}", Target("llm_cube", "c-old")) for i in range(10))
    changes = Changes(grants={dt.date(2099, 12, 31): grants}, revokes=revokes, revocable={})
    plan = build_plan("t", changes, PlanInputs(policy_digest="d", snapshot_digest="-"), {}, {})
    live = Snapshot({f"u{i:04d}": frozenset({Target("llm_cube", "c-old")}) for i in range(10)})
    return emulator, plan, live


def _verify(emulator: Emulator, plan: Plan, live: Snapshot, tmp_path: Path, sample: bool) -> Verification:
    async def go() -> Verification:
        async with emulator.client() as client:
            session = Session("t", QuickBIAccess(client), tmp_path, exclusive=True)
            ledger = usecases.ledger_for(session)
            work = outstanding(plan, live, ledger)
            _, _, verification = await usecases.execute_and_verify(session, work, ledger, sample=sample, seed="s")
            return verification

    return asyncio.run(go())


def test_a_clean_onboarding_reads_back_revokes_and_a_sample(tmp_path: Path) -> None:
    emulator, plan, live = _onboarding(400)
    verification = _verify(emulator, plan, live, tmp_path, sample=True)
    assert not verification.wrong and not verification.escalated
    assert verification.touched == 400
    assert verification.read == 10 + 20  # everyone revoked from, and 5% (at least 20) of the 390 only granted
    full = _verify(*_onboarding(400)[:3], tmp_path / "full", sample=False)
    assert full.read == 400 and "all 400 touched users read back" in full.describe()


def test_one_clean_answer_found_untrue_reads_back_everyone_and_finds_every_silent_failure(tmp_path: Path) -> None:
    emulator, plan, live = _onboarding(400, silent_rate=0.05)
    verification = _verify(emulator, plan, live, tmp_path, sample=True)
    actually_missing = {
        (user, target)
        for batch in plan.batches
        if batch.operation == "grant"
        for user, target in batch.cells()
        if (user, target.kind, target.id) not in emulator.backend.live_grants()
    }
    assert actually_missing  # the fault left cells undone while answering success
    assert verification.escalated and verification.read == 400
    assert {cell for cell, why in verification.wrong.items() if why.startswith("granted")} == actually_missing


def test_a_silently_failed_revoke_is_always_found(tmp_path: Path) -> None:
    emulator, plan, live = _onboarding(400, silent_rate=1.0)  # nothing happens, every answer says done
    verification = _verify(emulator, plan, live, tmp_path, sample=True)
    revoked = {cell for cell, why in verification.wrong.items() if why.startswith("revoked")}
    assert len(revoked) == 10


def test_apply_says_what_it_read_back(workspace: Path, run_cli: Callable[..., CliResult]) -> None:
    applied = run_cli("apply", "--auto-approve")
    assert applied.code == 0 and "Verified: all 11 touched users read back; access checked, expiries not" in applied.out
    sales = workspace / "policies" / "sales.yaml"
    sales.write_text(sales.read_text().replace("data_range: {llm_cubes: [sales, pipeline]}", "data_range: all"))
    embed_only = run_cli("apply", "--auto-approve", "--verify", "full")
    assert embed_only.code == 0 and "1 of 1 embed data ranges set" in embed_only.out
    assert "Verified" not in embed_only.out  # no user was touched
