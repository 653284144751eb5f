"""Access safety through the command line: each guarantee attacked the way a user or an attacker would."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CliResult, with_faults

Run = Callable[..., CliResult]
STATE = Path(".reconciler") / "demo-state.json"
AUDIT = Path(".reconciler") / "audit.jsonl"


def _authorize_calls(workspace: Path) -> int:
    audit = workspace / AUDIT
    return audit.read_text().count('"SmartqAuthorize"') if audit.exists() else 0


def _edit_state(workspace: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = workspace / STATE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _live(workspace: Path) -> set[tuple[str, str]]:
    data = json.loads((workspace / STATE).read_text())
    return {(g["user"], g.get("llm_cube") or g.get("theme")) for g in data["grants"]}


def _saved_plan(workspace: Path, run_cli: Run) -> dict[str, Any]:
    assert run_cli("plan", "--out", "plan.json").code == 0
    return dict(json.loads((workspace / "plan.json").read_text()))


def _write(workspace: Path, plan: dict[str, Any]) -> None:
    (workspace / "plan.json").write_text(json.dumps(plan))


def _refused(workspace: Path, run_cli: Run, calls_before: int) -> str:
    result = run_cli("apply", "plan.json")
    assert result.code == 1, result.out
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert _authorize_calls(workspace) == calls_before  # nothing sent
    return result.err


def _grant_batch(plan: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in plan["batches"] if b["operation"] == "grant")


TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "grant to a user the policy does not allow": (
        lambda p: p["batches"].append(
            {
                "operation": "grant",
                "user_ids": ["u-mallory"],
                "llm_cubes": ["c-budget"],
                "llm_cube_themes": [],
                "expire_day": "2099-12-31",
            }
        ),
        "grants u-mallory llm_cube:c-budget: today's policy does not grant it",
    ),
    "user slipped into a grant batch": (
        lambda p: _grant_batch(p)["user_ids"].append("u-olivia"),
        "grants u-olivia",
    ),
    "revoke a protected user's grant": (
        lambda p: p["batches"].append(
            {"operation": "revoke", "user_ids": ["u-admin"], "llm_cubes": ["c-finance"], "llm_cube_themes": []}
        ),
        "revokes u-admin llm_cube:c-finance: the user is protected",
    ),
    "revoke a desired cell": (
        lambda p: p["batches"].append(
            {"operation": "revoke", "user_ids": ["u-bob"], "llm_cubes": ["c-sales"], "llm_cube_themes": []}
        ),
        "revokes u-bob llm_cube:c-sales: today's policy grants it",
    ),
    "revoke on an unmanaged target": (
        lambda p: p["batches"].append(
            {"operation": "revoke", "user_ids": ["u-olivia"], "llm_cubes": ["c-ops"], "llm_cube_themes": []}
        ),
        "revokes u-olivia llm_cube:c-ops: the policy does not manage this target",
    ),
    "expiry changed": (
        lambda p: _grant_batch(p).update(expire_day="2031-01-01"),
        "expiry 2031-01-01 differs from the policy's",
    ),
    "batch over the cap": (
        lambda p: _grant_batch(p).update(user_ids=[f"u{i}" for i in range(101)]),
        "more than the 100 one call may carry",
    ),
    "grant without an expiry": (
        lambda p: _grant_batch(p).update(expire_day=None),
        "is a grant without a valid expire_day",
    ),
    "revoke hidden from the recorded state": (
        lambda p: p["touched_state"].update(
            {"u-mallory": [t for t in p["touched_state"]["u-mallory"] if t != "llm_cube:c-sales"]}
        ),
        "the plan is stale: u-mallory's live grants changed since it was made (+llm_cube:c-sales)",
    ),
    "made for another target": (lambda p: p.update(target="prod"), "the plan was made for target 'prod'"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_saved_plan_is_refused_before_anything_is_sent(workspace: Path, run_cli: Run, case: str) -> None:
    plan = _saved_plan(workspace, run_cli)
    tamper, message = TAMPERING[case]
    tamper(plan)
    _write(workspace, plan)
    before = _live(workspace) if (workspace / STATE).exists() else None
    assert message in _refused(workspace, run_cli, 0)
    assert before is None or _live(workspace) == before


def test_show_renders_the_batches_so_a_forged_batch_is_visible(workspace: Path, run_cli: Run) -> None:
    plan = _saved_plan(workspace, run_cli)
    original = run_cli("show", "plan.json").out
    TAMPERING["grant to a user the policy does not allow"][0](plan)
    _write(workspace, plan)
    forged = run_cli("show", "plan.json").out
    assert "u-mallory" in forged and "llm_cube:c-budget (Budget)" in forged
    assert forged != original


def test_replay_after_the_directory_moved_is_refused(workspace: Path, run_cli: Run) -> None:
    _saved_plan(workspace, run_cli)
    assert run_cli("apply", "plan.json").code == 0
    again = run_cli("apply", "plan.json")  # a re-run of the same plan converges without sending anything
    assert again.code == 0 and "already in place" in again.out

    def dave_leaves_fpa(data: dict[str, Any]) -> None:
        group = next(g for g in data["groups"] if g["id"] == "g-fpa")
        group["members"].remove("u-dave")

    _edit_state(workspace, dave_leaves_fpa)
    revoke = run_cli("apply", "--auto-approve")
    assert revoke.code == 0 and "- u-dave (dave)  llm_cube:c-budget (Budget)" in revoke.out
    calls = _authorize_calls(workspace)
    err = _refused(workspace, run_cli, calls)
    assert "grants u-dave" in err and "today's policy does not grant it" in err
    assert not {c for c in _live(workspace) if c[0] == "u-dave"}


def test_cells_that_failed_are_never_taken_for_done(workspace: Path, run_cli: Run) -> None:
    config = workspace / "reconciler.yaml"
    original = config.read_text()
    with_faults(workspace, "{partial_rate: 1.0}")
    failing = run_cli("apply", "--auto-approve")
    assert failing.code == 1 and "Apply incomplete" in failing.out
    config.write_text(original)
    healed = run_cli("apply", "--auto-approve")
    assert healed.code == 0, healed.err
    assert "Apply complete" in healed.out and "already" not in healed.out
    assert run_cli("plan", "--detailed-exitcode").code == 0


def _remove_budget(workspace: Path) -> Path:
    finance = workspace / "policies" / "finance.yaml"
    finance.write_text(
        finance.read_text().replace("    budget: {id: c-budget}\n", "").replace("[finance, budget]", "[finance]")
    )
    return finance


def test_a_target_removed_from_resources_has_its_grants_revoked(workspace: Path, run_cli: Run) -> None:
    first = run_cli("plan")
    assert "no record of the targets managed at the last apply" in first.out
    assert run_cli("apply", "--auto-approve").code == 0
    record = json.loads((workspace / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-budget" in record["targets"]
    _remove_budget(workspace)
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.code == 2
    assert "Removed from policy since the last apply, all their grants revoked: llm_cube:c-budget (Budget)" in plan.out
    for user in ("carol", "dave", "erin"):
        assert f"- u-{user} ({user})  llm_cube:c-budget (Budget)" in plan.out
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 2 and len(json.loads(drift.out)["removed_target"]) == 3
    assert run_cli("apply", "--auto-approve").code == 0
    assert not {c for c in _live(workspace) if c[1] == "c-budget" and c[0] != "u-admin"}
    record = json.loads((workspace / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-budget" not in record["targets"]
    assert run_cli("plan", "--detailed-exitcode").code == 0


def test_a_released_target_keeps_its_grants(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    finance = _remove_budget(workspace)
    finance.write_text(finance.read_text() + "released: {llm_cubes: ['id:c-budget']}\n")
    assert run_cli("plan", "--detailed-exitcode").code == 0
    budget = {c for c in _live(workspace) if c[1] == "c-budget"}
    assert run_cli("apply", "--auto-approve").code == 0
    assert {c for c in _live(workspace) if c[1] == "c-budget"} == budget
    record = json.loads((workspace / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-budget" not in record["targets"]


def test_an_unreadable_managed_record_stops_the_run(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    (workspace / ".reconciler" / "managed-targets.json").write_text("{not json")
    for command in (("plan",), ("drift",), ("apply", "--auto-approve")):
        result = run_cli(*command)
        assert result.code == 1 and "unreadable managed-target record" in result.err
        assert len(result.err.strip().splitlines()) == 1


def test_a_past_date_is_a_warning_and_its_grants_are_revoked(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    sales = workspace / "policies" / "sales.yaml"
    sales.write_text(sales.read_text().replace("expires: 2027-06-30", "expires: 2020-01-01"))
    validate = run_cli("validate")
    assert validate.code == 0
    assert "warning: policies/sales.yaml:14: expiry date 2020-01-01 has passed" in validate.err
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.code == 2 and "- u-ivan (ivan)  theme:t-q4 (Q4 review)" in plan.out
    assert "has passed" in plan.err
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 2 and json.loads(drift.out)["unexpected"] == [{"user": "u-ivan", "target": "theme:t-q4"}]
    assert run_cli("apply", "--auto-approve").code == 0
    assert ("u-ivan", "t-q4") not in _live(workspace)


def test_drift_sees_an_expiry_that_differs_from_policy(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    assert run_cli("drift").code == 0
    people = workspace / "policies" / "people-analytics.yaml"
    people.write_text(people.read_text().replace("expires: 2027-12-31", "expires: 2027-03-31"))
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 2
    differs = json.loads(drift.out)["expiry_differs"]
    assert {"user": "u-grace", "target": "llm_cube:c-hr", "detail": "2027-12-31 → 2027-03-31"} in differs
    plan = run_cli("plan")
    assert "~ u-grace (grace)  llm_cube:c-hr (Headcount)  (expiry 2027-12-31 → 2027-03-31)" in plan.out
    assert run_cli("apply", "--auto-approve").code == 0
    assert run_cli("drift").code == 0


def test_rolling_renewal_due_is_drift(workspace: Path, run_cli: Run) -> None:
    policy = workspace / "policies" / "rolling.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "resources": {"themes": {"ops-review": {"id": "t-forecast"}}},
                "grants": [
                    {
                        "to": ["account:olivia"],
                        "themes": ["ops-review"],
                        "expires": {"ttl": "30d", "renew_within": "7d"},
                    }
                ],
            }
        )
    )
    assert run_cli("apply", "--auto-approve").code == 0
    ledger = workspace / ".reconciler" / "expiry-ledger.tsv"
    lines = [line for line in ledger.read_text().splitlines() if "theme:t-forecast" in line and "u-olivia" in line]
    assert len(lines) == 1
    soon = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    ledger.write_text(ledger.read_text().replace(lines[0], f"u-olivia\t{soon}\ttheme:t-forecast"))
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 2 and json.loads(drift.out)["renewal_due"][0]["user"] == "u-olivia"
