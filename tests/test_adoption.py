"""Adopting a tenant and answering "why": import, explain, who-can, policy tests, schema, terminal habits."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from reconciler.interface.schema import schemas
from tests.conftest import ROOT, CliResult
from tests.orgs import org_and_policy, write_target

Run = Callable[..., CliResult]


def _tenant(folder: Path) -> None:
    """Teams mirrored by Quick BI groups, three users with one-off extras, a protected admin."""
    org, policy = org_and_policy(users=60, cubes=8, themes=3, seed=7, teams=4)
    org["groups"] = [
        {"id": f"g{team}", "name": f"Team {team}", "members": [f"u{i:05d}" for i in range(team, 60, 4)]}
        for team in range(4)
    ]
    team1 = next(g for g in policy["grants"] if g["to"] == ["team1"])
    extra = next(f"id:c{i:03d}" for i in range(8) if f"id:c{i:03d}" not in team1["llm_cubes"])
    policy["grants"].append({"to": ["id:u00005", "id:u00009", "id:u00013"], "llm_cubes": [extra]})
    team2 = next(g for g in policy["grants"] if g["to"] == ["team2"])
    dated = next(f"id:c{i:03d}" for i in range(8) if f"id:c{i:03d}" not in team2["llm_cubes"])
    policy["grants"].append({"to": ["id:u00002"], "llm_cubes": [dated], "expires": "2030-01-31"})
    write_target(folder, org, policy, {"emulator": {"org": "org.yaml", "state": "state/org.json"}})


def test_import_reproduces_live_grants_with_groups_and_shared_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    _tenant(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert run_cli("apply", "--auto-approve").code == 0
    result = run_cli("import", "--out", "imported")
    assert result.code == 0, result.err
    text = (tmp_path / "imported" / "imported.yaml").read_text()
    document = yaml.safe_load(text)
    # teams whose members all hold the same grants come in through their Quick BI group
    quickbi = {g["quickbi_group"] for g in document["groups"].values()}
    assert {"Team 0", "Team 3"} <= quickbi and "Team 1" not in quickbi  # team 1 has u00005 and u00009's extra
    assert "acct-u00005" in document["users"] and "acct-u00004" not in document["users"]
    dated = [g for g in document["grants"] if g.get("expires") == "2030-01-31"]
    assert [g["to"] for g in dated] == [["acct-u00002"]] and len(dated[0]["llm_cubes"]) == 1
    stats = result.out.split("grant statements for ")[1]
    statements, rows = int(result.out.split(", ")[2].split()[0]), int(stats.split()[0])
    assert statements <= rows + 1  # one split by expiry at most
    again = run_cli("import", "--out", "imported")
    assert again.code == 1 and "--force" in again.err
    # the round trip: the imported policy alone plans nothing
    shutil.rmtree(tmp_path / "policies")
    (tmp_path / "imported").rename(tmp_path / "policies")
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan.out + plan.err


def test_explain_traces_each_grant_to_its_line_and_group_path(workspace: Path, run_cli: Run) -> None:
    text = run_cli("explain", "dave").out
    assert "to grant   u-dave (dave)  llm_cube:c-budget (Budget)" in text
    assert "Quick BI group Finance ← finance (grant at policies/finance.yaml:9)" in text
    alice = json.loads(run_cli("explain", "alice", "--format", "json").out)
    finance = next(line for line in alice if line["target"] == "llm_cube:c-finance")
    assert finance["why"].startswith("alice ← sales-leads ← leadership (grant at policies/finance.yaml:12)")
    assert finance["state"] == "to grant" and finance["expiry"] == "2099-12-31"
    mallory = {line["target"]: line for line in json.loads(run_cli("explain", "mallory", "--format", "json").out)}
    assert mallory["llm_cube:c-sales"]["state"] == "to revoke"
    olivia = json.loads(run_cli("explain", "id:u-olivia", "--format", "json").out)
    assert olivia[0]["state"] == "unmanaged"
    missing = run_cli("explain", "nobody")
    assert missing.code == 1 and "no user named 'nobody'" in missing.err


def test_who_can_lists_everyone_meant_to_or_able_to(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    text = run_cli("who-can", "sales").out
    assert "granted    u-bob (bob)  llm_cube:c-sales (Sales)" in text
    assert "protected  u-admin (bi-admin)  llm_cube:c-sales (Sales)" in text
    by_name = json.loads(run_cli("who-can", "Pipeline", "--format", "json").out)
    assert {line["user"] for line in by_name} == {"u-alice", "u-bob", "u-frank"}
    assert run_cli("who-can", "nothing-here").code == 1


def _tests(workspace: Path, body: str) -> None:
    (workspace / "policies" / "access.test.yaml").write_text(f"version: 1\ntests:\n{body}")


def test_policy_tests_pass_and_fail_with_their_line(workspace: Path, run_cli: Run) -> None:
    _tests(workspace, "  - {user: alice, can: [sales, forecast], cannot: [budget]}\n")
    passed = run_cli("validate")
    assert passed.code == 0 and "5 policy tests passed" in passed.out
    _tests(workspace, "  - {user: alice, can: [budget]}\n  - {user: dave, cannot: [forecast]}\n")
    failed = run_cli("validate")
    assert failed.code == 1
    assert "access.test.yaml:3: test failed: alice cannot reach budget (llm_cube:c-budget) (no grant gives it)" in (
        failed.err
    )
    assert "access.test.yaml:4: test failed: dave can reach forecast (theme:t-forecast)" in failed.err
    assert "granted by Quick BI group Finance ← finance (grant at policies/finance.yaml:9)" in failed.err
    plan = run_cli("plan", "--out", "plan.json")
    assert plan.code == 1 and "Policy test FAILED" in plan.out and not (workspace / "plan.json").exists()
    assert run_cli("apply", "--auto-approve").code == 1


def test_plan_checks_tests_against_the_end_state_including_kept_grants(workspace: Path, run_cli: Run) -> None:
    _tests(workspace, "  - {user: admin, cannot: [sales]}\n")
    assert run_cli("validate").code == 0  # the policy alone does not grant it
    plan = run_cli("plan")
    assert plan.code == 1 and "admin can reach sales" in plan.err and "kept, not revoked by it" in plan.err


def test_schema_is_generated_current_and_accepts_the_shipped_files(tmp_path: Path, run_cli: Run) -> None:
    assert run_cli("schema", "--out", str(tmp_path)).code == 0
    for name, text in schemas().items():
        assert (tmp_path / name).read_text() == text
        assert (ROOT / "docs" / "schema" / name).read_text() == text, f"docs/schema/{name} is stale: run schema"
    policy = Draft202012Validator(json.loads(schemas()["policy.schema.json"]))
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        document = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
        assert not list(policy.iter_errors(document)), path
    bad = list(policy.iter_errors({"version": 1, "grants": [{"to": ["a"], "expires": 5}], "typo": 1}))
    assert len(bad) >= 2
    config = Draft202012Validator(json.loads(schemas()["config.schema.json"]))
    assert not list(config.iter_errors(yaml.safe_load((ROOT / "reconciler.yaml").read_text())))


def test_terminal_habits(workspace: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("--version").out.startswith("reconciler ")
    additive = run_cli("plan", "--additive")
    assert "2 revokes skipped by --additive" in additive.out and "- u-mallory" not in additive.out
    partial = run_cli("plan", "--user", "bob", "--resource", "sales", "--detailed-exitcode")
    assert partial.code == 2
    assert "+ u-bob (bob)  llm_cube:c-sales (Sales)" in partial.out and "u-alice" not in partial.out
    assert "Partial plan, limited to 1 user (bob) and 1 target (Sales). " in partial.out
    by_group = run_cli("plan", "--group", "finance")
    assert "u-dave" in by_group.out and "u-bob" not in by_group.out
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    from reconciler.interface.cli import _coloured

    assert _coloured("+ a\n- b\n").startswith("\x1b[32m+ a")
    monkeypatch.setenv("NO_COLOR", "1")
    assert _coloured("+ a\n") == "+ a\n"


def test_import_refuses_to_write_into_the_policy_folder(workspace: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("import", "--out", "policies")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "the config reads policies from" in result.err and not (workspace / "policies" / "imported.yaml").exists()
    assert run_cli("import", "--out", "imported").code == 0
