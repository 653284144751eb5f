"""The acceptance path through the command line on the embedded demo target."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CliResult, with_faults

Run = Callable[..., CliResult]


def test_plan_apply_replan_converges(workspace: Path, run_cli: Run) -> None:
    first = run_cli("plan", "--detailed-exitcode")
    assert first.code == 2, first.err
    assert "- u-mallory (mallory)  llm_cube:c-sales (Sales)" in first.out
    assert "+ u-ivan (ivan)  theme:t-q4 (Q4 review)  (expires 2027-06-30)" in first.out
    applied = run_cli("apply", "--auto-approve")
    assert applied.code == 0, applied.err
    assert "Apply complete" in applied.out
    again = run_cli("plan", "--detailed-exitcode")
    assert again.code == 0
    assert "No changes" in again.out
    assert run_cli("drift").code == 0


def test_drift_before_apply_exits_2_and_lists_differences(workspace: Path, run_cli: Run) -> None:
    result = run_cli("drift", "--format", "json")
    assert result.code == 2
    report = json.loads(result.out)
    assert {"user": "u-mallory", "account": "mallory", "target": "llm_cube:c-sales", "target_name": "Sales"} in (
        report["unexpected"]
    )
    assert {"user": "u-olivia", "account": "olivia", "target": "llm_cube:c-ops", "target_name": "Operations"} in report[
        "unmanaged"
    ]
    assert {"user": "u-admin", "account": "bi-admin", "target": "llm_cube:c-sales", "target_name": "Sales"} in (
        report["protected"]
    )
    html = run_cli("drift", "--format", "html", "--out", "report.html")
    assert html.code == 2 and (workspace / "report.html").read_text().startswith("<!doctype html>")


def test_plan_json_follows_the_contract(workspace: Path, run_cli: Run) -> None:
    result = run_cli("plan", "--format", "json", "--out", "plan.json")
    plan = json.loads(result.out)
    assert plan == json.loads((workspace / "plan.json").read_text())
    assert plan["format_version"] == 1 and plan["target"] == "demo"
    assert set(plan["inputs"]) >= {"policy_digest", "snapshot_digest"}
    assert set(plan["summary"]) >= {"grant_cells", "revoke_cells", "calls", "lower_bound"}
    assert plan["summary"]["calls"] == len(plan["batches"]) >= plan["summary"]["lower_bound"]
    for batch in plan["batches"]:
        assert batch["operation"] in ("grant", "revoke")
        assert len(batch["user_ids"]) * (len(batch["llm_cubes"]) + len(batch["llm_cube_themes"])) <= 100
        assert (batch["expire_day"] is None) == (batch["operation"] == "revoke")


def test_saved_plan_applies_then_is_refused_when_stale(workspace: Path, run_cli: Run) -> None:
    assert run_cli("plan", "--out", "plan.json").code == 0
    assert run_cli("show", "plan.json").out.startswith("reconciler plan for target 'demo'")
    assert run_cli("apply", "plan.json").code == 0
    # the same plan again: everything it wanted is in place, so nothing is unexplained and it converges
    assert run_cli("apply", "plan.json").code == 0
    policy = workspace / "policies" / "sales.yaml"
    policy.write_text(policy.read_text().replace("[sales, pipeline]", "[sales]"))
    stale = run_cli("apply", "plan.json")
    assert stale.code == 1 and "policy changed" in stale.err


def test_apply_without_terminal_needs_auto_approve(workspace: Path, run_cli: Run) -> None:
    result = run_cli("apply")
    assert result.code == 1
    assert "--auto-approve" in result.err


def test_breakers_stop_a_large_revoke(workspace: Path, run_cli: Run) -> None:
    result = run_cli("apply", "--auto-approve", "--max-revokes", "1")
    assert result.code == 1 and "more than --max-revokes 1" in result.err
    ratio = run_cli("apply", "--auto-approve", "--max-revoke-ratio", "0.1")
    assert ratio.code == 1 and "--max-revoke-ratio" in ratio.err
    additive = run_cli("apply", "--auto-approve", "--additive")
    assert additive.code == 0
    assert "to revoke" not in additive.out or " 0 to revoke" in additive.out
    assert run_cli("plan", "--detailed-exitcode").code == 2  # Mallory's revoke still pending


def test_lock_keeps_two_applies_apart(workspace: Path, run_cli: Run) -> None:
    lock = workspace / ".reconciler" / "apply.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"owner": "someone@elsewhere", "pid": 1, "since": "2026-11-23T00:00:00Z"}))
    held = run_cli("apply", "--auto-approve")
    assert held.code == 1 and "locked by someone@elsewhere" in held.err and "--break-lock" in held.err
    assert run_cli("apply", "--auto-approve", "--break-lock").code == 0
    assert not lock.exists()


def test_refresh_then_offline_plan(workspace: Path, run_cli: Run) -> None:
    assert run_cli("refresh", "--out", "snap.json").code == 0
    offline = run_cli("plan", "--snapshot", "snap.json", "--format", "json")
    online = run_cli("plan", "--format", "json")
    assert json.loads(offline.out)["batches"] == json.loads(online.out)["batches"]


def test_markdown_plan_for_pull_requests(workspace: Path, run_cli: Run) -> None:
    result = run_cli("plan", "--format", "markdown")
    assert result.out.startswith("### reconciler plan for `demo`") and "```diff" in result.out


MALFORMED = {
    "duplicate.yaml": ("version: 1\nusers:\n  a: {account: alice}\n  a: {account: bob}\n", 4),
    "syntax.yaml": ("version: 1\nusers: {a: {account: alice}\n", 3),
    "type.yaml": ("version: 1\ngrants:\n  - to: {a: 1}\n    themes: [id:t]\n", 3),
    "cycle.yaml": ("version: 1\ngroups:\n  a: {members: [b]}\n  b: {members: [a]}\n", 3),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_policy_is_one_line_exit_1_and_nothing_applied(workspace: Path, run_cli: Run, name: str) -> None:
    text, line = MALFORMED[name]
    (workspace / "policies" / name).write_text(text)
    for command in (("validate",), ("plan",), ("apply", "--auto-approve")):
        result = run_cli(*command)
        assert result.code == 1
        first = result.err.splitlines()[0]
        assert first.startswith(f"{workspace / 'policies' / name}:{line}: ") or first.startswith(
            f"policies/{name}:{line}: "
        )
        assert "Traceback" not in result.err
    assert not (workspace / ".reconciler" / "audit.jsonl").exists()


def test_unknown_target_and_missing_config(workspace: Path, run_cli: Run) -> None:
    assert "unknown target 'nope'" in run_cli("--target", "nope", "plan").err
    missing = run_cli("--config", "absent.yaml", "plan")
    assert missing.code == 1 and "config file not found" in missing.err


def test_missing_cloud_credentials_is_one_line(workspace: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workspace),
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "--target", "prod", "plan"],
        env=env,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: no Alibaba Cloud credentials")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code"), [("n\n", 1), ("y\n", 0)])
def test_apply_asks_on_a_terminal(
    workspace: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch, answer: str, code: int
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    result = run_cli("apply")
    assert result.code == code
    assert "Apply this plan?" in result.out
    assert ("Apply cancelled." in result.out) == (code == 1)
    assert run_cli("plan", "--detailed-exitcode").code == (2 if code == 1 else 0)


def test_cells_that_keep_failing_are_reported_and_exit_1(workspace: Path, run_cli: Run) -> None:
    with_faults(workspace, "{partial_rate: 1.0}")
    result = run_cli("apply", "--auto-approve")
    assert result.code == 1
    failures = [line for line in result.err.splitlines() if line.startswith("failed: ")]
    assert "failed: revoke u-mallory llm_cube:c-sales: CellFailed: INTERNAL_ERROR" in failures
    assert len(failures) == 34  # every planned cell: 32 grants and 2 revokes
    assert "Apply incomplete" in result.out


def test_saved_plan_is_refused_when_a_touched_user_changed(workspace: Path, run_cli: Run) -> None:
    assert run_cli("plan", "--out", "plan.json").code == 0
    state = workspace / ".reconciler" / "demo-state.json"
    data = json.loads(state.read_text())
    data["grants"].append({"user": "u-bob", "llm_cube": "c-ops", "expire_day": "2099-12-31"})
    state.write_text(json.dumps(data))
    stale = run_cli("apply", "plan.json")
    assert stale.code == 1
    assert "the plan is stale: u-bob's live grants changed since it was made (+llm_cube:c-ops)" in stale.err
    assert "make a new plan" in stale.err
    assert len(stale.err.strip().splitlines()) == 1


def test_the_pull_request_comment_counts_per_grant_statement_and_target(workspace: Path, run_cli: Run) -> None:
    comment = run_cli("plan", "--format", "markdown", "--max-chars", "1800").out
    assert "| policies/finance.yaml:9 (to: finance) | 9 |" in comment
    assert "| llm_cube:c-finance (Finance KPIs) | 5 | 0 | 0 |" in comment
    assert len(comment) <= 1800 and "changes not shown here" in comment


def test_serving_the_emulator_without_its_extra_says_how_to_get_it(
    workspace: Path, run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # not installed: `pip install reconciler` alone
    monkeypatch.delitem(sys.modules, "reconciler.emulator.serve", raising=False)
    result = run_cli("emulator", "serve", "--org", "examples/demo-org.yaml", "--port", "0")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    wanted = "error: serving the emulator needs uvicorn, which is not installed"
    assert f"{wanted} (pip install 'quickbi-reconciler[serve]')" in result.err


def test_global_options_work_before_and_after_the_command(workspace: Path, run_cli: Callable[..., CliResult]) -> None:
    (workspace / "conf").mkdir()
    (workspace / "conf" / "r.yaml").write_text(
        (workspace / "reconciler.yaml")
        .read_text()
        .replace("policies/", "../policies/")
        .replace("examples/", "../examples/")
    )
    after = run_cli("plan", "--config", "conf/r.yaml", "--target", "demo", "-v", "--format", "json")
    before = run_cli("--config", "conf/r.yaml", "--target", "demo", "-v", "plan", "--format", "json")
    assert after.code == before.code == 0
    assert json.loads(after.out)["batches"] == json.loads(before.out)["batches"]
    assert "reconciler.quickbi: QueryUserList" in after.err  # -v after the command too
    wrong = run_cli("validate", "--target=nowhere")
    assert wrong.code == 1 and "unknown target 'nowhere'" in wrong.err


def test_an_additive_run_never_claims_the_policy_is_met(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve", "--additive").code == 0
    again = run_cli("apply", "--auto-approve", "--additive")
    assert again.code == 0 and "Live Smart Q grants match the policy" not in again.out
    assert "No changes in this plan, but live grants do not match the policy yet: 2 changes left out" in again.out
    assert "2 revokes skipped by --additive." in again.out
    planned = run_cli("plan", "--additive", "--detailed-exitcode")
    assert planned.code == 0 and "2 revokes skipped by --additive" in planned.out
    assert "Live Smart Q grants match the policy" not in planned.out


def test_validate_speaks_github_annotations(workspace: Path, run_cli: Run) -> None:
    extra = workspace / "policies" / "extra.yaml"
    extra.write_text("version: 1\ngrants:\n  - {to: [alice], themes: [q4], expires: 2001-01-01}\n")
    warned = run_cli("validate", "--format", "github")
    assert warned.code == 0 and "::warning file=policies/extra.yaml,line=3::" in warned.out and not warned.err
    extra.write_text("version: 1\ngrants:\n  - {to: [nobody], llm_cubes: [sales]}\n")
    result = run_cli("validate", "--format", "github")
    assert result.code == 1 and not result.err
    assert result.out.startswith("::error file=policies/extra.yaml,line=3::unknown user or group 'nobody'")
    assert all(line.startswith("::") for line in result.out.splitlines())


def test_annotations_are_escaped_as_github_documents() -> None:
    from reconciler.interface.cli import github_annotation
    from reconciler.vocabulary.errors import Location, Problem

    problem = Problem("50% of\nit", Location("a,b:c.yaml", 7), "fix")
    assert github_annotation("error", problem) == "::error file=a%2Cb%3Ac.yaml,line=7::50%25 of%0Ait (fix)"


def test_validate_reports_every_error_in_every_file_at_once(workspace: Path, run_cli: Run) -> None:
    (workspace / "policies" / "typo.yaml").write_text("version: 1\nusres: {}\n")
    (workspace / "policies" / "dates.yaml").write_text(
        "version: 1\ngrants:\n  - {to: [alice], llm_cubes: [sales], expires: 2027-02-30}\n"
    )
    (workspace / "policies" / "who.yaml").write_text("version: 1\ngrants:\n  - {to: [nobody], llm_cubes: [sales]}\n")
    result = run_cli("validate")
    assert result.code == 1
    errors = result.err.strip().splitlines()
    assert any("typo.yaml:2: unknown key 'usres'" in line for line in errors)
    assert any("dates.yaml:3: invalid value '2027-02-30'" in line for line in errors)
    assert any("who.yaml:3: unknown user or group 'nobody'" in line for line in errors)


def test_throttling_that_outlasts_the_retries_names_the_cause_and_the_fix(
    workspace: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.adapters.quickbi import ThrottledError

    async def throttled(*args: object, **kwargs: object) -> None:
        raise ThrottledError(
            "QueryUserList", 400, "Throttling.User", "Request was denied due to flow control.", "R1", 1
        )

    monkeypatch.setattr("reconciler.application.usecases.make_plan", throttled)
    result = run_cli("plan")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "Throttling.User" in result.err and "lower the target's qps / directory_qps" in result.err


@pytest.mark.parametrize(
    ("caller", "code", "fix"),
    [
        ("outsider", "Invalid.User.Organization", "not in the Quick BI organisation of this region"),
        ("member", "Not.ApiCall.AuthUser", "grant it API calls on Quick BI's Open Platform page"),
    ],
)
def test_credentials_outside_the_organisation_name_the_cause_and_the_fix(
    workspace: Path, run_cli: Run, caller: str, code: str, fix: str
) -> None:
    org = workspace / "examples" / "demo-org.yaml"
    org.write_text(
        org.read_text().replace(
            "{id: demo-ak, secret: demo-secret}", f"{{id: demo-ak, secret: demo-secret, caller: {caller}}}"
        )
    )
    for command in ("plan", "drift", "apply"):
        result = run_cli(command, *(["--auto-approve"] if command == "apply" else []))
        assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result.err
        assert code in result.err and fix in result.err and "Traceback" not in result.err


def test_an_endpoint_that_does_not_answer_names_the_cause_and_the_fix(
    tmp_path: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text("version: 1\n")
    target = {"quickbi": {"endpoint": "http://127.0.0.1:9"}, "state_dir": "state"}  # the discard port: closed
    config = {"policies": "policies/", "default_target": "t", "targets": {"t": target}}
    (tmp_path / "reconciler.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "y")
    result = run_cli("plan")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "Quick BI did not answer, after retries: check the target's region or endpoint" in result.err
