"""Pull-request plans: read live only the users a policy change touches."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult

Run = Callable[..., CliResult]
READ = "reconciler.quickbi: QueryLlmCubeWithThemeListByUserId"


def test_a_change_reads_only_the_users_it_touches(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    shutil.copytree(workspace / "policies", workspace / "base")
    people = workspace / "policies" / "people.yaml"
    people.write_text(people.read_text().replace("members: [alice, bob, frank]", "members: [alice, bob, frank, ivan]"))
    full = run_cli("-v", "plan")
    partial = run_cli("-v", "plan", "--changed-from", "base", "--detailed-exitcode")
    assert partial.code == 2
    assert full.err.count(READ) == 13 and partial.err.count(READ) == 1  # ivan only
    # both the base and the changed policy are resolved, from one read of the directory
    assert partial.err.count("reconciler.quickbi: QueryUserList") == full.err.count("reconciler.quickbi: QueryUserList")
    assert "+ u-ivan (ivan)  llm_cube:c-sales (Sales)  (expires 2099-12-31)" in partial.out
    assert (
        "Partial plan, changed from the base policies: only the 1 users whose access the change touches" in partial.out
    )
    assert partial.out.count("\n+ ") + partial.out.count("\n- ") == full.out.count("\n+ ") + full.out.count("\n- ")


def test_an_expiry_change_and_a_removed_target_are_seen(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    shutil.copytree(workspace / "policies", workspace / "base")
    analytics = workspace / "policies" / "people-analytics.yaml"
    analytics.write_text(analytics.read_text().replace("expires: 2027-12-31", "expires: 2027-09-30"))
    finance = workspace / "policies" / "finance.yaml"
    finance.write_text(
        finance.read_text().replace("    budget: {id: c-budget}\n", "").replace("[finance, budget]", "[finance]")
    )
    plan = run_cli("plan", "--changed-from", "base")
    assert "~ u-grace (grace)  llm_cube:c-hr (Headcount)  (expiry 2027-12-31 → 2027-09-30)" in plan.out
    assert "- u-dave (dave)  llm_cube:c-budget (Budget)" in plan.out
    assert "targets changed management" in plan.out


def test_a_first_pull_request_has_an_empty_base(workspace: Path, run_cli: Run) -> None:
    (workspace / "empty").mkdir()
    plan = run_cli("plan", "--changed-from", "empty")
    assert plan.code == 0 and "+ u-alice (alice)" in plan.out and "Partial plan" in plan.out
    assert run_cli("plan", "--changed-from", "empty", "--snapshot", "x.json").code == 1
