"""Adopting a tenant and answering "why": import, explain, who-can, policy tests, schema, terminal habits."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reconciler.core.importer import import_policy
from reconciler.core.snapshot import Snapshot
from reconciler.interface.schema import schemas
from reconciler.vocabulary.cells import Target
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


def test_import_reproduces_live_grants_with_roles_quickbi_groups_and_recorded_expiries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    _tenant(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert run_cli("apply", "--auto-approve").code == 0
    result = run_cli("import", "--out", "imported")
    assert result.code == 0, result.err
    text = (tmp_path / "imported" / "imported.yaml").read_text()
    document = yaml.safe_load(text)
    # a Quick BI group is used only where its members are exactly a role's users
    used = {g["quickbi_group"] for g in document["groups"].values() if "quickbi_group" in g}
    assert used <= {"Team 0", "Team 1", "Team 2", "Team 3"}
    # the ledger's expiry is written where it is known
    dated = [g for g in document["grants"] if g.get("expires") == dt.date(2030, 1, 31)]
    assert [g["to"] for g in dated] == [["acct-u00002"]] and len(dated[0]["llm_cubes"]) == 1
    # fewer statements than distinct access patterns, as the summary says
    roles, patterns = (int(w) for w in re.findall(r"(\d+) roles found for (\d+) distinct", result.out)[0])
    assert len(document["grants"]) <= roles < patterns
    for name, group in document["groups"].items():
        if "members" in group:
            assert "users, " in text.split(f"  {name}:")[0].splitlines()[-1]  # the comment above it
    assert run_cli("fmt", "--check", "imported").code == 0  # written in canonical form
    again = run_cli("import", "--out", "imported")
    assert again.code == 1 and "--force" in again.err
    # the round trip: the imported policy alone plans nothing, and drift is clean
    shutil.rmtree(tmp_path / "policies")
    (tmp_path / "imported").rename(tmp_path / "policies")
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan.out + plan.err
    assert run_cli("drift").code == 0


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


def _write_org(folder: Path, org: dict[str, object], policy: dict[str, object]) -> None:
    write_target(folder, org, policy, {"emulator": {"org": "org.yaml", "state": "state/org.json"}})


def test_teams_whose_quickbi_groups_match_their_roles_come_in_as_those_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Run
) -> None:
    users = [f"u{i}" for i in range(12)]
    org = {
        "access_keys": [{"id": "k", "secret": "s"}],
        "users": [{"id": u, "account": f"{u}-acct"} for u in users],
        "groups": [{"id": f"g{t}", "name": f"Team {t}", "members": users[t::3]} for t in range(3)],
        "llm_cubes": [{"id": f"c{i}", "alias": f"Cube {i}"} for i in range(6)],
        "grants": [
            {"user": u, "llm_cube": f"c{c}", "expire_day": "2099-12-31"}
            for t in range(3)
            for u in users[t::3]
            for c in (t, t + 3)
        ],
    }
    policy = {"version": 1, "resources": {"llm_cubes": {f"c{i}": {"id": f"c{i}"} for i in range(6)}}}
    _write_org(tmp_path, org, policy)
    monkeypatch.chdir(tmp_path)
    result = run_cli("import", "--out", "imported")
    assert result.code == 0, result.err
    document = yaml.safe_load((tmp_path / "imported" / "imported.yaml").read_text())
    assert document["groups"] == {f"team-{t}": {"quickbi_group": f"Team {t}"} for t in range(3)}
    assert "users" not in document or not document["users"]  # nobody needs declaring
    assert [g["to"] for g in document["grants"]] == [["team-0"], ["team-1"], ["team-2"]]
    # no ledger: every cell's expiry is unknown, and said so
    assert all(g["expires"] == "unknown" for g in document["grants"])
    assert "24 live cells had no expiry in the ledger: written as `expires: unknown`" in result.out
    # the same live state writes the same file
    first = (tmp_path / "imported" / "imported.yaml").read_text()
    assert run_cli("import", "--out", "imported", "--force").code == 0
    assert (tmp_path / "imported" / "imported.yaml").read_text() == first
    # adopted: nothing to do; then one grant lapses in Quick BI, and an unknown expiry is never granted again
    shutil.rmtree(tmp_path / "policies")
    (tmp_path / "imported").rename(tmp_path / "policies")
    assert run_cli("plan", "--detailed-exitcode").code == 0
    state = tmp_path / "state" / "org.json"
    live = json.loads(state.read_text()) if state.exists() else yaml.safe_load((tmp_path / "org.yaml").read_text())
    live["grants"] = [g for g in live["grants"] if (g["user"], g.get("llm_cube")) != ("u0", "c0")]
    state.parent.mkdir(exist_ok=True)
    state.write_text(json.dumps(live, default=str))
    after = run_cli("plan", "--detailed-exitcode")
    assert after.code == 0 and "No changes" in after.out, after.out
    assert "u0" not in run_cli("drift").out.split("Drift: none.")[0].split("Live, expiry unknown")[0]


def test_deactivated_users_are_left_out_and_what_apply_does_is_said(workspace: Path, run_cli: Run) -> None:
    org = workspace / "examples" / "demo-org.yaml"
    text = org.read_text()
    assert "{id: u-mallory, account: mallory" in text
    org.write_text(text.replace("{id: u-mallory, account: mallory", "{id: u-mallory, deleted: true, account: mallory"))
    result = run_cli("import", "--out", "imported")
    assert result.code == 0, result.err
    said = "1 deactivated user, holding 2 live cells on managed targets: left out of the policy, so the next apply"
    assert f"{said} revokes those grants." in result.out
    assert "mallory" not in (workspace / "imported" / "imported.yaml").read_text()


_ACCOUNTS = [f"p{i}" for i in range(8)]
_TARGETS = [("llm_cube", f"c{i}") for i in range(4)] + [("theme", f"t{i}") for i in range(3)]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    held=st.dictionaries(
        st.sampled_from(_ACCOUNTS),
        st.dictionaries(st.sampled_from(_TARGETS), st.sampled_from(["2099-12-31", "2031-03-01", "2030-07-15"])),
    ),
    recorded=st.booleans(),
    teams=st.lists(st.frozensets(st.sampled_from(_ACCOUNTS), min_size=1), max_size=3),
)
def test_any_live_state_imports_to_a_policy_that_plans_nothing_and_drifts_nowhere(
    tmp_path_factory: pytest.TempPathFactory,
    held: dict[str, dict[tuple[str, str], str]],
    recorded: bool,
    teams: list[frozenset[str]],
) -> None:
    folder = tmp_path_factory.mktemp("tenant")
    cubes = [t for k, t in _TARGETS if k == "llm_cube"]
    themes = [t for k, t in _TARGETS if k == "theme"]
    live = [
        {"user": f"u-{a}", kind: target, "expire_day": day}
        for a, cells in sorted(held.items())
        for (kind, target), day in sorted(cells.items())
    ]
    root_and_unmanaged = [
        {"user": "u-root", "llm_cube": "c0", "expire_day": "2099-12-31"},
        {"user": "u-p0", "llm_cube": "c-other", "expire_day": "2099-12-31"},
    ]
    org = {
        "access_keys": [{"id": "k", "secret": "s"}],
        "users": [{"id": f"u-{a}", "account": a} for a in _ACCOUNTS] + [{"id": "u-root", "account": "root"}],
        "groups": [
            {"id": f"g{i}", "name": f"Team {i}", "members": sorted(f"u-{a}" for a in team)}
            for i, team in enumerate(teams)
        ],
        "llm_cubes": [{"id": t, "alias": f"Cube {t}"} for t in cubes] + [{"id": "c-other", "alias": "Other"}],
        "themes": [{"id": t, "name": f"Theme {t}"} for t in themes],
        "grants": live + root_and_unmanaged,
    }
    # the tenant as it was managed before: every target but c-other declared, root protected
    policy = {
        "version": 1,
        "users": {"root": {"account": "root"}},
        "resources": {"llm_cubes": {t: {"id": t} for t in cubes}, "themes": {t: {"id": t} for t in themes}},
        "protected_users": ["root"],
    }
    _write_org(folder, org, policy)
    if recorded:  # a ledger that knows the live expiries, as after applies
        state = folder / "state"
        state.mkdir()
        lines = sorted(
            f"u-{a}\t{day}\t{kind}:{target}" for a, cells in held.items() for (kind, target), day in cells.items()
        )
        (state / "expiry-ledger.tsv").write_text("".join(line + "\n" for line in lines))
    # the three commands as a user runs them, in one process of their own (each example is a fresh process
    # state; one interpreter start instead of three keeps the test quick)
    steps = (
        "import json, shutil, sys\n"
        "from reconciler.interface.cli import main\n"
        "def run(*args):\n"
        "    sys.argv = ['reconciler', *args]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as done:\n"
        "        return done.code or 0\n"
        "    return 0\n"
        "codes = [run('import', '--out', 'imported')]\n"
        "shutil.rmtree('policies'); shutil.move('imported', 'policies')\n"
        "codes += [run('plan', '--detailed-exitcode'), run('drift', '--format', 'json')]\n"
        "print(json.dumps(codes), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", steps], cwd=folder, capture_output=True, text=True, timeout=120)
    codes = json.loads(done.stderr.strip().splitlines()[-1])
    assert codes == [0, 0, 0], done.stdout + done.stderr
    assert "No changes" in done.stdout, done.stdout


def test_grants_on_targets_quickbi_does_not_list_are_counted_and_left_out() -> None:
    listed, gone = Target("llm_cube", "c1"), Target("llm_cube", "c-deleted")
    live = Snapshot({"u1": frozenset({listed, gone}), "u2": frozenset({listed})})
    imported = import_policy(
        "t", {"u1": "ann", "u2": "ben"}, {}, live, {}, {listed: "Sales"}, None, dt.date(2026, 1, 1), listed={listed}
    )
    assert imported.unlisted_cells == 1 and imported.cells == 2
    assert "c-deleted" not in imported.text and "sales: {id: c1}" in imported.text
    assert any(
        "1 live cell on targets Quick BI no longer lists could not be expressed" in line for line in imported.report()
    )


def test_the_demo_round_trips_with_its_protected_admin_unmanaged_cube_and_embed(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    assert run_cli("import", "--out", "imported").code == 0
    text = (workspace / "imported" / "imported.yaml").read_text()
    assert "protected_users: [bi-admin]" in text and "c-ops" not in text  # protection kept, unmanaged left out
    shutil.rmtree(workspace / "policies")
    (workspace / "imported").rename(workspace / "policies")
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan.out + plan.err
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 0, drift.out
