"""Resolution of policy names through the directory API, with errors pointing at the policy line."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from textwrap import dedent

import pytest

from reconciler.adapters.quickbi import QuickBIAccess
from reconciler.core.policy import load_policy
from reconciler.core.resolve import Desired, resolve
from reconciler.emulator import Emulator
from reconciler.vocabulary.cells import CellRows, Target
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import ROOT

TODAY = dt.date(2026, 11, 23)


def resolved(demo: Emulator, tmp_path: Path, text: str) -> Desired:
    path = tmp_path / "p.yaml"
    path.write_text(dedent(text).lstrip())
    policy = load_policy([path], TODAY)

    async def go() -> Desired:
        async with demo.client() as client:
            return await resolve(policy, QuickBIAccess(client), TODAY)

    return asyncio.run(go())


def test_demo_policy_expands_nested_quickbi_groups(demo: Emulator) -> None:
    policy = load_policy([ROOT / "policies"], TODAY)

    async def go() -> Desired:
        async with demo.client() as client:
            return await resolve(policy, QuickBIAccess(client), TODAY)

    desired = asyncio.run(go())
    forecast = Target("theme", "t-forecast")
    assert {u for u, t in desired.cells if t == forecast} == {"u-alice", "u-carol", "u-dave", "u-erin", "u-judy"}
    assert desired.protected == {"u-admin"}
    assert desired.is_managed(Target("llm_cube", "c-sales")) and not desired.is_managed(Target("llm_cube", "c-ops"))
    assert desired.cells[("u-ivan", Target("theme", "t-q4"))] == dt.date(2027, 6, 30)
    # provenance: the grant statement and the membership chain behind each cell
    alice = desired.provenance(("u-alice", Target("llm_cube", "c-finance")))
    assert alice is not None and alice.path == ("leadership", "sales-leads", "alice")
    assert str(alice.rule).endswith("finance.yaml:12")
    dave = desired.provenance(("u-dave", forecast))
    assert dave is not None and dave.path == ("finance", "Quick BI group Finance")
    assert str(dave) == f"Quick BI group Finance ← finance (grant at {dave.rule})"
    ivan = desired.provenance(("u-ivan", Target("theme", "t-q4")))
    assert ivan is not None and ivan.path == ("ivan",) and ivan.expiry == dt.date(2027, 6, 30)
    assert desired.provenance(("u-olivia", forecast)) is None


def test_latest_expiry_wins(demo: Emulator, tmp_path: Path) -> None:
    desired = resolved(
        demo,
        tmp_path,
        """
        version: 1
        manage_all_targets: true
        grants:
          - {to: [account:alice], llm_cubes: [id:c-hr], expires: 2030-01-01}
          - {to: [id:u-alice], llm_cubes: [id:c-hr], expires: 2031-01-01}
        """,
    )
    assert desired.cells == {("u-alice", Target("llm_cube", "c-hr")): dt.date(2031, 1, 1)}


def test_overlapping_statements_each_cell_goes_to_the_latest_expiry_then_the_first(
    demo: Emulator, tmp_path: Path
) -> None:
    desired = resolved(
        demo,
        tmp_path,
        """
        version: 1
        manage_all_targets: true
        grants:
          - {to: [id:u-alice, id:u-bob], llm_cubes: [id:c-hr, id:c-sales], expires: 2030-01-01}
          - {to: [id:u-bob, id:u-carol], llm_cubes: [id:c-sales], expires: 2031-01-01}
          - {to: [id:u-alice], llm_cubes: [id:c-hr], expires: 2030-01-01}
          - {to: [id:u-bob], llm_cubes: [id:c-sales, id:c-hr], expires: 2030-06-01}
          - {to: [id:u-carol], llm_cubes: [id:c-sales], expires: 2029-01-01}
        """,
    )
    hr, sales = Target("llm_cube", "c-hr"), Target("llm_cube", "c-sales")
    line_of = {cell: desired.provenance(cell).rule.line for cell in desired.cells}  # type: ignore[union-attr]
    assert line_of == {
        ("u-alice", hr): 4,  # statement 3 ties with statement 1: the first keeps it
        ("u-alice", sales): 4,
        ("u-bob", hr): 7,  # statement 4 expires after statement 1
        ("u-bob", sales): 5,  # statement 2 expires after 1 and 4
        ("u-carol", sales): 5,  # statement 5 expires earlier
    }
    assert dict(desired.cells) == {
        ("u-alice", hr): dt.date(2030, 1, 1),
        ("u-alice", sales): dt.date(2030, 1, 1),
        ("u-bob", hr): dt.date(2030, 6, 1),
        ("u-bob", sales): dt.date(2031, 1, 1),
        ("u-carol", sales): dt.date(2031, 1, 1),
    }
    # the cells are a read-only view over the winning statements, with the mapping behaviour callers rely on
    assert len(desired.cells) == 5 and ("u-bob", hr) in desired.cells and ("u-bob", "x") not in desired.cells
    assert desired.cells.get(("u-dave", hr)) is None
    assert sorted(desired.cells.values()) == sorted(dict(desired.cells).values())
    assert desired.cells.keys() - {("u-alice", hr)} == set(desired.cells) - {("u-alice", hr)}


def test_users_given_the_same_statements_share_one_row(demo: Emulator, tmp_path: Path) -> None:
    desired = resolved(
        demo,
        tmp_path,
        """
        version: 1
        manage_all_targets: true
        grants:
          - {to: [id:u-alice, id:u-bob, id:u-carol], llm_cubes: [id:c-hr, id:c-sales], expires: 2030-01-01}
          - {to: [id:u-carol], llm_cubes: [id:c-sales], expires: 2031-01-01}
        """,
    )
    hr, sales = Target("llm_cube", "c-hr"), Target("llm_cube", "c-sales")
    rows = desired.cells.rows
    assert rows["u-alice"] is rows["u-bob"] and rows["u-carol"] is not rows["u-alice"]
    assert rows["u-carol"] == {hr: 0, sales: 1}
    assert desired.cells.targets() == {hr, sales}
    assert desired.managed_record() == {hr, sales}
    # statements' cells counted from rows of cells (a plan's grants) and from plain cells alike
    granted = CellRows(
        {"u-alice": frozenset({hr, sales}), "u-bob": frozenset({hr, sales}), "u-carol": frozenset({sales})}
    )
    assert desired.cells.sources_of(granted) == {0: 4, 1: 1}
    assert desired.cells.sources_of([("u-carol", hr), ("u-dave", hr)]) == {0: 1, None: 1}


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (
            "users:\n  x: {account: nobody}\ngrants: [{to: [x], themes: [id:t-q4]}]\nmanage_all_targets: true\n",
            3,
            "no Quick BI user with account",
        ),
        (
            "grants:\n  - to: [id:u-missing]\n    themes: [id:t-q4]\nmanage_all_targets: true\n",
            3,
            "user id 'u-missing' is not in",
        ),
        (
            "grants:\n  - to: [account:alice]\n    themes: [id:t-none]\nmanage_all_targets: true\n",
            4,
            "theme 't-none' does not exist",
        ),
        ("resources:\n  llm_cubes:\n    x: {alias: Nope}\n", 4, "no llm_cubes named 'Nope'"),
        ("resources:\n  llm_cubes:\n    x: {dataset: ds-hr}\n", 4, "named by dataset"),
        ("groups:\n  g: {quickbi_group: Nowhere}\n", 3, "no Quick BI user group named 'Nowhere'"),
    ],
)
def test_resolution_errors_point_at_the_policy(
    demo: Emulator, tmp_path: Path, body: str, line: int, message: str
) -> None:
    with pytest.raises(ReconcilerError) as info:
        resolved(demo, tmp_path, "version: 1\n" + body)
    text = str(info.value)
    assert f"p.yaml:{line}:" in text and message in text


def test_an_empty_quickbi_group_stops_the_run(demo: Emulator, tmp_path: Path) -> None:
    demo.backend.groups["g-people"].members.clear()
    with pytest.raises(ReconcilerError, match="resolved to nobody"):
        resolved(
            demo,
            tmp_path,
            "version: 1\ngroups:\n  p: {quickbi_group: People}\ngrants: [{to: [p], themes: [id:t-q4]}]\n"
            "manage_all_targets: true\n",
        )


def test_dataset_readback_identifies_cubes_by_dataset(tmp_path: Path) -> None:
    from reconciler.application import usecases
    from reconciler.application.workspace import Session
    from reconciler.core.apply import outstanding

    emulator = Emulator.from_file(ROOT / "examples" / "demo-org.yaml", cube_readback="dataset")
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nresources:\n  llm_cubes:\n    hr: {dataset: ds-hr}\n"
        "grants:\n  - {to: [account:bob], llm_cubes: [hr]}\n"
    )
    policy = load_policy([path], TODAY)

    async def go() -> None:
        async with emulator.client() as client:
            session = Session("t", QuickBIAccess(client, "dataset"), tmp_path)
            desired, snapshot = await usecases.desired_and_snapshot(session, policy, TODAY)
            assert set(desired.cells) == {("u-bob", Target("dataset", "ds-hr"))}
            ledger = usecases.ledger_for(session)
            plan, _ = usecases.plan_from(session, desired, snapshot, ledger, TODAY, usecases.PlanOptions())
            assert [b.ids("dataset") for b in plan.batches] == [["ds-hr"]]
            result, mismatches, _ = await usecases.execute_and_verify(
                session, outstanding(plan, snapshot, ledger), ledger
            )
            assert result.ok and not mismatches
            _, after = await usecases.desired_and_snapshot(session, policy, TODAY)
            assert usecases.plan_from(session, desired, after, ledger, TODAY, usecases.PlanOptions())[0].empty

    asyncio.run(go())
    assert ("u-bob", "llm_cube", "c-hr") in emulator.backend.live_grants()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("resources:\n  llm_cubes:\n    x: {id: c-hr}\n", "must be named by dataset"),
        ("resources:\n  llm_cubes:\n    x: {dataset: ds-nothing}\n", r"has no Smart Q \(Q&A\) resource"),
        ("grants:\n  - {to: [account:bob], llm_cubes: [id:c-hr]}\nmanage_all_targets: true\n", "is an LlmCube ID"),
    ],
)
def test_dataset_readback_errors(tmp_path: Path, body: str, message: str) -> None:
    emulator = Emulator.from_file(ROOT / "examples" / "demo-org.yaml", cube_readback="dataset")
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\n" + body)
    policy = load_policy([path], TODAY)

    async def go() -> None:
        async with emulator.client() as client:
            await resolve(policy, QuickBIAccess(client, "dataset"), TODAY)

    with pytest.raises(ReconcilerError, match=message):
        asyncio.run(go())


def test_deactivated_users(demo: Emulator, tmp_path: Path) -> None:
    demo.backend.users["u-bob"].deleted = True
    with pytest.raises(ReconcilerError, match=r"p.yaml:3: user 'u-bob' is deactivated"):
        resolved(
            demo,
            tmp_path,
            "version: 1\ngrants:\n  - to: [account:bob]\n    themes: [id:t-q4]\nmanage_all_targets: true\n",
        )
    demo.backend.users["u-dave"].deleted = True
    desired = resolved(
        demo,
        tmp_path,
        "version: 1\ngroups:\n  f: {quickbi_group: Finance}\ngrants: [{to: [f], themes: [id:t-q4]}]\n"
        "manage_all_targets: true\n",
    )
    assert {u for u, _ in desired.cells} == {"u-carol", "u-erin"}
    assert "u-dave" in desired.directory  # still read, so its live grants can be revoked
