"""Quick BI behind the AccessService protocol, against the emulator."""

from __future__ import annotations

import asyncio
import datetime as dt

from reconciler.adapters.quickbi import QuickBIAccess
from reconciler.core.plan import Batch
from reconciler.core.ports import AccessService
from reconciler.emulator import Emulator, FaultSettings
from reconciler.vocabulary.cells import Target
from tests.conftest import DEMO_ORG


def _run(emulator: Emulator, readback: str, work: object) -> object:
    async def go() -> object:
        async with emulator.client() as client:
            service: AccessService = QuickBIAccess(client, readback)  # type: ignore[arg-type]
            return await work(service)  # type: ignore[operator]

    return asyncio.run(go())


def test_directory_catalogue_and_grants() -> None:
    emulator = Emulator.from_file(DEMO_ORG)

    async def read(service: AccessService) -> tuple[object, ...]:
        users = await service.users()
        groups = await service.groups()
        return users, groups, await service.catalogue(), await service.user_targets("u-admin")

    users, groups, catalogue, admin = _run(emulator, "llm_cube", read)  # type: ignore[misc]
    assert {u.account for u in users} >= {"alice", "bi-admin"}
    assert {g.name for g in groups} == {"Finance", "FP&A", "People"}
    assert catalogue[Target("llm_cube", "c-sales")] == "Sales" and catalogue[Target("theme", "t-q4")] == "Q4 review"
    assert Target("llm_cube", "c-ops") in admin


def test_dataset_readback_names_cubes_by_dataset() -> None:
    emulator = Emulator.from_file(DEMO_ORG, cube_readback="dataset")
    admin = _run(emulator, "dataset", lambda s: s.user_targets("u-admin"))
    assert Target("dataset", "ds-ops") in admin  # type: ignore[operator]


def test_authorize_reports_failed_cells_typed() -> None:
    emulator = Emulator.from_file(DEMO_ORG, faults=FaultSettings(partial_rate=1.0))
    batch = Batch(
        operation="grant",
        user_ids=["u-bob"],
        llm_cubes=["c-budget"],
        llm_cube_themes=["t-q4"],
        expire_day=dt.date(2099, 12, 31),
    )
    failures = _run(emulator, "llm_cube", lambda s: s.authorize(batch))
    assert {(f.user, f.target) for f in failures} == {  # type: ignore[attr-defined]
        ("u-bob", Target("llm_cube", "c-budget")),
        ("u-bob", Target("theme", "t-q4")),
    }


def test_a_failed_call_fails_every_cell() -> None:
    emulator = Emulator.from_file(DEMO_ORG)
    past = Batch(
        operation="grant",
        user_ids=["u-bob", "u-erin"],
        llm_cubes=["c-budget"],
        llm_cube_themes=[],
        expire_day=dt.date(2001, 1, 1),
    )
    failures = _run(emulator, "llm_cube", lambda s: s.authorize(past))
    assert len(failures) == 2 and {f.code for f in failures} == {"Invalid.Parameter.Error"}  # type: ignore[attr-defined]
    assert QuickBIAccess.cap == 100
