"""Verification overlapped with the writes: users are read back as soon as their batches settle cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from reconciler import usecases
from reconciler.cells import Target
from reconciler.emulator import Emulator, FaultSettings
from reconciler.executor import outstanding
from reconciler.plan import Batch
from reconciler.policy import load_policy
from reconciler.service import CellFailure, QuickBIAccess
from reconciler.workspace import Session
from tests.conftest import ROOT

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
            result, wrong = await usecases.execute_and_verify(session, outstanding(plan, live, ledger), ledger)
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
