"""Pull-request plans: read live only the users a policy change touches."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, CliResult

Run = Callable[..., CliResult]
READ = "reconciler.quickbi: QueryLlmCubeWithThemeListByUserId"


def _base_checkout(workspace: Path) -> Path:
    """The pull request's base as the workflow checks it out: the config and the policies, as they are now."""
    base = workspace / "base"
    base.mkdir()
    shutil.copy(workspace / "reconciler.yaml", base / "reconciler.yaml")
    shutil.copytree(workspace / "policies", base / "policies")
    return base


def test_a_change_reads_only_the_users_it_touches(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    _base_checkout(workspace)
    people = workspace / "policies" / "people.yaml"
    people.write_text(people.read_text().replace("members: [alice, bob, frank]", "members: [alice, bob, frank, ivan]"))
    full = run_cli("-v", "plan")
    partial = run_cli("-v", "plan", "--changed-from", "base", "--detailed-exitcode")
    assert partial.code == 2
    assert full.err.count(READ) == 13 and partial.err.count(READ) == 1  # ivan only
    # both the base and the changed policy are resolved, from one read of the directory
    assert partial.err.count("reconciler.quickbi: QueryUserList") == full.err.count("reconciler.quickbi: QueryUserList")
    assert "+ u-ivan (ivan)  llm_cube:c-sales (Sales)  (expires 2099-12-31)" in partial.out
    # the reviewer sees the policy change itself first, by path, then the cells it leads to
    assert "Policy changes from the base:\n  + groups.sales.members: ivan\nCells:\n" in partial.out
    assert (
        "Partial plan, changed from the base policies: live grants read only for the 1 user whose access the "
        "change touches; the other 12 users were not read" in partial.out
    )
    assert "left for later" not in partial.out  # nothing known is left out
    assert partial.out.count("\n+ ") + partial.out.count("\n- ") == full.out.count("\n+ ") + full.out.count("\n- ")


def test_an_expiry_change_is_seen_and_a_removed_target_plans_in_full(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    _base_checkout(workspace)
    analytics = workspace / "policies" / "people-analytics.yaml"
    analytics.write_text(analytics.read_text().replace("expires: 2027-12-31", "expires: 2027-09-30"))
    expiry = run_cli("-v", "plan", "--changed-from", "base")
    assert "~ u-grace (grace)  llm_cube:c-hr (Headcount)  (expiry 2027-12-31 → 2027-09-30)" in expiry.out
    assert "Partial plan" in expiry.out and expiry.err.count(READ) == 5  # people-team and leadership
    finance = workspace / "policies" / "finance.yaml"
    finance.write_text(
        finance.read_text().replace("    budget: {id: c-budget}\n", "").replace("[finance, budget]", "[finance]")
    )
    plan = run_cli("-v", "plan", "--changed-from", "base")
    assert "- u-dave (dave)  llm_cube:c-budget (Budget)" in plan.out
    assert "  - resources.llm_cubes.budget\n" in plan.out
    assert "  - grants.to finance: llm_cubes finance, budget; themes forecast\n" in plan.out
    assert "Partial plan" not in plan.out and plan.err.count(READ) == 13
    assert "Note: planned in full, not only the users the change touches: the managed targets changed" in plan.out


def test_a_first_pull_request_has_an_empty_base(workspace: Path, run_cli: Run) -> None:
    base = _base_checkout(workspace)
    shutil.rmtree(base / "policies")
    (base / "policies").mkdir()
    plan = run_cli("plan", "--changed-from", "base")
    assert plan.code == 0 and "+ u-alice (alice)" in plan.out and "planned in full" in plan.out
    assert "the managed targets changed" in plan.out
    assert run_cli("plan", "--changed-from", "base", "--snapshot", "x.json").code == 1


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        # the attack as reported: the policy list becomes a folder that also reads a file the base never read
        (
            lambda w: (
                (w / "more").mkdir(),
                (w / "more" / "extra.yaml").write_text(
                    "version: 1\ngrants:\n  - {to: [account:ivan], llm_cubes: [sales]}\n"
                ),
                _edit(w / "reconciler.yaml", "policies: policies/", "policies: [policies/, more/extra.yaml]"),
            ),
            "the configuration changed (policies: more/extra.yaml)",
        ),
        (
            lambda w: _edit(w / "reconciler.yaml", "state: .reconciler/demo-state.json}", "state: x/s.json}"),
            "the configuration changed (targets.demo.emulator.state)",
        ),
        (
            lambda w: _edit(w / "policies" / "people.yaml", "protected_users: [admin]", "manage_all_targets: true"),
            "manage_all_targets changed",
        ),
    ],
)
def test_a_change_beyond_statements_plans_in_full_and_shows_what_the_merge_does(
    workspace: Path, run_cli: Run, edit: Callable[[Path], object], why: str
) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    _base_checkout(workspace)
    edit(workspace)
    plan = run_cli("plan", "--changed-from", "base", "--format", "json", "--detailed-exitcode")
    assert plan.code == 2 and why in plan.out
    assert "partial" not in json.loads(plan.out) or json.loads(plan.out)["partial"] is None


def test_a_policy_folder_without_its_config_plans_in_full(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    shutil.copytree(workspace / "policies", workspace / "base-policies")
    plan = run_cli("-v", "plan", "--changed-from", "base-policies", "--detailed-exitcode")
    assert plan.code == 0 and plan.err.count(READ) == 13
    assert "the base has no configuration to compare with" in plan.out


def test_changes_left_for_later_are_counted_exactly(workspace: Path, run_cli: Run) -> None:
    """Users not read have no known changes; users read but left out by --user have exactly theirs."""
    _base_checkout(workspace)  # nothing applied yet: everyone has changes, but only ivan's come from the change
    people = workspace / "policies" / "people.yaml"
    people.write_text(people.read_text().replace("members: [alice, bob, frank]", "members: [alice, bob, frank, ivan]"))

    def changes(*args: str) -> int:
        summary = json.loads(run_cli("plan", *args, "--format", "json").out)["summary"]
        return int(summary["grant_cells"] + summary["revoke_cells"])

    ivan = changes("--changed-from", "base")
    assert ivan == 3  # sales, pipeline and q4; the unread users' many changes are not counted as left out
    assert f" {ivan} other changes left for later." in run_cli("plan", "--changed-from", "base", "--user", "alice").out
    left = changes() - changes("--user", "alice")
    assert f" {left} other changes left for later." in run_cli("plan", "--user", "alice").out


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


EDITS: dict[str, list[tuple[str, str, str]]] = {
    # policy: who is granted what (no two edits touch the same text, so any combination applies)
    "a member joins": [("policies/people.yaml", "[alice, bob, frank]", "[alice, bob, frank, judy]")],
    "a member leaves": [("policies/people.yaml", "[sales-leads, judy, account:carol]", "[sales-leads, account:carol]")],
    "a statement moves": [("policies/sales.yaml", "  - to: [ivan]  ", "  - to: [account:heidi]  ")],
    "an expiry moves": [("policies/people-analytics.yaml", "expires: 2027-12-31", "expires: 2027-09-30")],
    "a grant widens": [("policies/finance.yaml", "  - to: [leadership]\n", "  - to: [leadership, account:olivia]\n")],
    "protection widens": [("policies/people.yaml", "protected_users: [admin]", "protected_users: [admin, frank]")],
    "protection moves": [("policies/people.yaml", "admin: {account: bi-admin}", "admin: {account: mallory}")],
    # beyond statements: configuration and the managed targets
    "the policy list grows": [("reconciler.yaml", "policies: policies/", "policies: [policies/, extra/]")],
    "a client setting": [("reconciler.yaml", "demo-state.json}", "demo-state.json}\n    qps: 30")],
    "a resource goes": [
        ("policies/people-analytics.yaml", "  themes:\n    hiring: {id: t-hiring}\n", ""),
        ("policies/people-analytics.yaml", "    themes: [hiring]\n", ""),
    ],
    "a resource comes": [
        (
            "policies/finance.yaml",
            "    finance: {alias: Finance KPIs}\n",
            "    finance: {alias: Finance KPIs}\n    ops: {id: c-ops}\n",
        )
    ],
    "everything managed": [("policies/sales.yaml", "version: 1\n", "version: 1\nmanage_all_targets: true\n")],
    "a target released": [
        ("policies/finance.yaml", "    budget: {id: c-budget}\n", ""),
        ("policies/finance.yaml", "[finance, budget]", "[finance]"),
        ("policies/finance.yaml", "grants:", "released: {llm_cubes: [id:c-budget]}\ngrants:"),
    ],
}


def _live(workspace: Path) -> dict[tuple[str, str], str]:
    grants = yaml.safe_load((workspace / ".reconciler" / "demo-state.json").read_text())["grants"]
    return {(g["user"], g.get("llm_cube") or g.get("theme")): g["expire_day"] for g in grants}


def _planned_effect(plan: dict[str, Any], live: dict[tuple[str, str], str]) -> set[tuple[str, ...]]:
    effect: set[tuple[str, ...]] = set()
    for batch in plan["batches"]:
        for user in batch["user_ids"]:
            for target in batch["llm_cubes"] + batch["llm_cube_themes"]:
                if batch["operation"] == "grant" and live.get((user, target)) != batch["expire_day"]:
                    effect.add(("+", user, target, batch["expire_day"]))
                elif batch["operation"] == "revoke" and (user, target) in live:
                    effect.add(("-", user, target))
    return effect


def _applied_effect(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> set[tuple[str, ...]]:
    granted = {("+", u, t, day) for (u, t), day in after.items() if before.get((u, t)) != day}
    return granted | {("-", u, t) for u, t in before.keys() - after.keys()}


@given(st.lists(st.sampled_from(sorted(EDITS)), min_size=1, max_size=3, unique=True))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_pull_requests_plan_is_what_its_merge_applies(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, run_cli: Run, edits: list[str]
) -> None:
    """Random pull requests against an applied base: the PR plan's cell changes are exactly the merge's."""
    workspace = tmp_path_factory.mktemp("pr")
    for name in ("reconciler.yaml", "policies", "examples"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, workspace / name)
    monkeypatch.chdir(workspace)
    (workspace / "extra").mkdir()
    (workspace / "extra" / "more.yaml").write_text("version: 1\ngrants:\n  - {to: [account:heidi], themes: [q4]}\n")
    assert run_cli("apply", "--auto-approve").code == 0
    _base_checkout(workspace)
    for name in edits:
        for path, old, new in EDITS[name]:
            _edit(workspace / path, old, new)
    planned = run_cli("plan", "--changed-from", "base", "--out", "plan.json")
    assert planned.code == 0, planned.err
    before = _live(workspace)
    plan = json.loads((workspace / "plan.json").read_text())
    applied = run_cli("apply", "--auto-approve", "--verify", "full")
    assert applied.code == 0, applied.err
    assert _planned_effect(plan, before) == _applied_effect(before, _live(workspace))
