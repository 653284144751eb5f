"""Property: on random organisations and policies, one apply converges within scope and touches nothing else."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.adapters.quickbi import QuickBIAccess
from reconciler.application import usecases
from reconciler.application.workspace import Session
from reconciler.core.apply import outstanding
from reconciler.core.policy import load_policy
from reconciler.core.resolve import Desired
from reconciler.emulator import Emulator
from reconciler.emulator.orgfile import OrgFile
from reconciler.vocabulary.cells import Target

TODAY = dt.datetime.now(dt.UTC).date()
USERS = [f"u{i}" for i in range(12)]
CUBES = [f"c{i}" for i in range(6)]
THEMES = [f"t{i}" for i in range(4)]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict, dict]:
    live = draw(st.sets(st.tuples(st.sampled_from(USERS), st.sampled_from(CUBES + THEMES)), max_size=40))
    org = {
        "access_keys": [{"id": "k", "secret": "s"}],
        "users": [{"id": u, "account": f"acct-{u}"} for u in USERS],
        "llm_cubes": [{"id": c, "alias": c.upper()} for c in CUBES],
        "themes": [{"id": t, "name": t.upper()} for t in THEMES],
        "grants": [
            {"user": u, ("llm_cube" if t.startswith("c") else "theme"): t, "expire_day": "2099-12-31"} for u, t in live
        ],
    }
    managed_cubes = draw(st.sets(st.sampled_from(CUBES), min_size=1))
    managed_themes = draw(st.sets(st.sampled_from(THEMES)))
    rules = []
    for _ in range(draw(st.integers(0, 5))):
        to = draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=6, unique=True))
        cubes = draw(st.lists(st.sampled_from(sorted(managed_cubes)), max_size=3, unique=True))
        themes = (
            draw(st.lists(st.sampled_from(sorted(managed_themes)), max_size=2, unique=True)) if managed_themes else []
        )
        if not cubes and not themes:
            cubes = [sorted(managed_cubes)[0]]
        expires = draw(st.sampled_from(["never", "2030-01-01", "2028-06-30"]))
        rules.append({"to": [f"id:{u}" for u in to], "llm_cubes": cubes, "themes": themes, "expires": expires})
    policy = {
        "version": 1,
        "resources": {
            "llm_cubes": {c: {"id": c} for c in sorted(managed_cubes)},
            "themes": {t: {"id": t} for t in sorted(managed_themes)},
        },
        # a grant names only declared targets (an undeclared one is refused: its grants could never be revoked)
        "grants": rules,
        "protected_users": draw(st.lists(st.sampled_from([f"id:{u}" for u in USERS]), max_size=2, unique=True)),
    }
    return org, policy


@given(scenarios())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_one_apply_converges_and_leaves_the_rest_alone(scenario: tuple[dict, dict]) -> None:
    org, policy_data = scenario
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.yaml"
        path.write_text(yaml.safe_dump(policy_data))
        policy = load_policy([path], TODAY)
        emulator = Emulator(OrgFile.model_validate(org))
        before = set(emulator.backend.live_grants())

        async def go() -> tuple[Desired, set[tuple[str, str, str]]]:
            async with emulator.client() as client:
                session = Session("prop", QuickBIAccess(client), Path(folder))
                desired, snapshot = await usecases.desired_and_snapshot(session, policy, TODAY)
                ledger = usecases.ledger_for(session)
                plan, _ = usecases.plan_from(session, desired, snapshot, ledger, TODAY, usecases.PlanOptions())
                result, mismatches, _ = await usecases.execute_and_verify(
                    session, outstanding(plan, snapshot, ledger), ledger
                )
                assert result.ok and not mismatches
                replan, _ = usecases.plan_from(
                    session,
                    desired,
                    (await usecases.desired_and_snapshot(session, policy, TODAY))[1],
                    ledger,
                    TODAY,
                    usecases.PlanOptions(),
                )
                assert replan.empty
                return desired, set(emulator.backend.live_grants())

        desired, after = asyncio.run(go())
    wanted = {(u, t.kind, t.id) for u, t in desired.cells}
    assert wanted <= after
    for key in before | after:
        user, kind, target = key
        cell_target = Target(kind, target)  # type: ignore[arg-type]
        in_scope = desired.is_managed(cell_target) and user not in desired.protected
        if not in_scope:
            assert (key in after) == (key in before) or key in wanted, key
        else:
            assert (key in after) == (key in wanted), key
