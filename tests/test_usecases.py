"""The use-case layer: each command as one call over an open target, with confirmation as a callback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from reconciler.application import usecases
from reconciler.application.config import load_config
from reconciler.application.workspace import Session, open_target
from reconciler.core.diff import DiffOptions
from reconciler.core.policy import load_policy
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import ROOT

TODAY = dt.datetime.now(dt.UTC).date()
T = TypeVar("T")


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    for part in ("policies", "examples"):
        shutil.copytree(ROOT / part, tmp_path / part)
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    return tmp_path


def _with_session(folder: Path, work: Callable[[Session], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_target(load_config(folder / "reconciler.yaml"), None, exclusive=True) as session:
            return await work(session)

    return asyncio.run(go())


def _apply(folder: Path, confirm: Callable[[object], bool], **options: object) -> usecases.ApplyOutcome:
    policy = load_policy([folder / "policies"], TODAY)
    return _with_session(folder, lambda s: usecases.apply(s, policy, TODAY, confirm, **options))  # type: ignore[arg-type]


def _calls(folder: Path) -> int:
    audit = folder / ".reconciler" / "audit.jsonl"
    return audit.read_text().count('"SmartqAuthorize"') if audit.exists() else 0


def test_declined_confirmation_sends_nothing(demo: Path) -> None:
    shown = []
    outcome = _apply(demo, lambda plan: shown.append(plan) or False)
    assert outcome.cancelled and not outcome.ok and len(shown) == 1 and not shown[0].empty  # type: ignore[attr-defined]
    assert _calls(demo) == 0 and not (demo / ".reconciler" / "managed-targets.json").exists()


def test_apply_then_nothing_to_do(demo: Path) -> None:
    first = _apply(demo, lambda plan: True)
    assert first.ok and first.result.calls >= first.plan.summary.calls
    second = _apply(demo, lambda plan: pytest.fail("nothing to confirm"))  # type: ignore[arg-type, return-value]
    assert second.nothing_to_do and second.ok
    record = json.loads((demo / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-sales" in record["targets"]


def test_breakers_stop_before_confirmation(demo: Path) -> None:
    with pytest.raises(ReconcilerError, match="more than --max-revokes 0"):
        _apply(demo, lambda plan: pytest.fail("asked"), breakers=usecases.Breakers(max_revokes=0))  # type: ignore[arg-type, return-value]
    assert _calls(demo) == 0


def test_an_additive_apply_keeps_a_removed_target_recorded(demo: Path) -> None:
    assert _apply(demo, lambda plan: True).ok
    finance = demo / "policies" / "finance.yaml"
    finance.write_text(
        finance.read_text().replace("    budget: {id: c-budget}\n", "").replace("[finance, budget]", "[finance]")
    )
    additive = usecases.PlanOptions(DiffOptions(additive=True))
    outcome = _apply(demo, lambda plan: True, options=additive)
    assert outcome.nothing_to_do
    record = json.loads((demo / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-budget" in record["targets"]  # not revoked, so still to be revoked later
    assert _apply(demo, lambda plan: True).ok
    record = json.loads((demo / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-budget" not in record["targets"]


def test_plan_and_snapshot_use_cases(demo: Path) -> None:
    policy = load_policy([demo / "policies"], TODAY)
    plan = _with_session(demo, lambda s: usecases.make_plan(s, policy, TODAY, usecases.PlanOptions()))
    assert plan.notes and "no record of the targets managed" in plan.notes[0]
    snapshot = _with_session(demo, lambda s: usecases.take_snapshot(s))
    assert "u-mallory" in snapshot.grants and len(snapshot.grants) == 13
    drift = _with_session(demo, lambda s: usecases.make_drift(s, policy, TODAY))
    assert not drift.clean and drift.findings["unexpected"]
