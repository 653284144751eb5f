"""`reconciler init`: a starter that works against a real (served) Quick BI on its first run, workflows that
run on what the config reads, and nothing overwritten by accident."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.application.config import load_config
from reconciler.application.starter import INSTALL, WORKFLOW_PATH, trigger_paths, workflow_files
from reconciler.emulator import Emulator
from tests.conftest import DEMO_ORG, ROOT, CliResult

Run = Callable[..., CliResult]


@pytest.fixture
def served() -> Iterator[str]:
    with Emulator.from_file(DEMO_ORG).serve() as server:
        yield server.endpoint


def _reconciler(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=folder,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(folder),
            "PYTHONPATH": str(ROOT),
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "demo-ak",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "demo-secret",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_starter_plans_and_applies_against_the_organisation_on_its_first_run(tmp_path: Path, served: str) -> None:
    repo = tmp_path / "access"
    made = _reconciler(tmp_path, "init", "access", "--endpoint", served, "--name", "hq")
    assert made.returncode == 0, made.stderr
    assert "wrote access/reconciler.yaml" in made.stdout and "docs/gitops.md" in made.stdout
    bare = tmp_path / "state.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    state = {"RECONCILER_STATE_URL": str(bare)}
    assert _reconciler(repo, "validate").returncode == 0
    plan = _reconciler(repo, "plan", "--detailed-exitcode", **state)
    # nothing declared, so nothing managed: live grants are left alone, and the plan says so
    assert plan.returncode == 0, plan.stderr
    assert "No changes" in plan.stdout and "on unmanaged targets left alone" in plan.stdout
    targets = _reconciler(repo, "targets", "--kind", "quickbi", "--format", "json")
    assert [(t["target"], t["kind"], t["where"]) for t in json.loads(targets.stdout)] == [("hq", "quickbi", served)]
    unset = _reconciler(repo, "plan")
    assert unset.returncode == 1 and "RECONCILER_STATE_URL" in unset.stderr


def test_the_starter_config_names_the_region_given(tmp_path: Path, run_cli: Run) -> None:
    assert run_cli("init", str(tmp_path / "r"), "--region", "cn-hongkong").code == 0
    config = yaml.safe_load((tmp_path / "r" / "reconciler.yaml").read_text())
    assert config["targets"]["prod"]["quickbi"] == {"region": "cn-hongkong"}
    assert config["default_target"] == "prod" and config["policies"] == "policies/"
    workflow = (tmp_path / "r" / WORKFLOW_PATH).read_text()
    assert f"- run: {INSTALL}" in workflow and "pip install .\n" not in workflow
    assert os.access(tmp_path / "r" / ".github" / "scripts" / "oidc-token.sh", os.X_OK)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--region", "cn-hangzou"), "init: Quick BI's OpenAPI has no region 'cn-hangzou' (did you mean cn-hangzhou?"),
        ((), "init needs the organisation's --region or --endpoint (e.g. --region cn-hangzhou"),
        (("--endpoint", "http://quickbi.example.com"), "init: endpoint uses plain http:// to a host"),
        (("--region", "cn-hangzhou", "--name", "a b"), "init: target name 'a b'"),
    ],
)
def test_a_wrong_target_is_one_line_and_writes_nothing(
    tmp_path: Path, run_cli: Run, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("init", str(tmp_path / "r"), *args)
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert message in result.err
    assert not (tmp_path / "r").exists()


def test_existing_files_are_not_overwritten_without_force(tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "reconciler.yaml").write_text("# mine\n")
    refused = run_cli("init", str(tmp_path), "--region", "cn-hangzhou")
    assert refused.code == 1 and "reconciler.yaml already exist" in refused.err and "--force" in refused.err
    assert (tmp_path / "reconciler.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "policies").exists()  # nothing half-written
    assert run_cli("init", str(tmp_path), "--region", "cn-hangzhou", "--force").code == 0
    assert "cn-hangzhou" in (tmp_path / "reconciler.yaml").read_text()


def test_workflows_follow_the_paths_the_config_reads(tmp_path: Path, run_cli: Run) -> None:
    assert run_cli("init", str(tmp_path), "--region", "cn-hangzhou").code == 0
    (tmp_path / "teams").mkdir()
    (tmp_path / "teams" / "a.yaml").write_text("version: 1\n")
    (tmp_path / "shared.yaml").write_text("version: 1\n")
    config = (tmp_path / "reconciler.yaml").read_text()
    (tmp_path / "reconciler.yaml").write_text(config.replace("policies: policies/", "policies: [teams/, shared.yaml]"))
    assert run_cli("init", str(tmp_path), "--workflows").code == 0
    triggers = yaml.safe_load((tmp_path / WORKFLOW_PATH).read_text())[True]
    for event in ("pull_request", "push"):
        assert triggers[event]["paths"] == ["teams/**", "shared.yaml", "reconciler.yaml"]


def test_policies_outside_the_repository_cannot_trigger_a_workflow(tmp_path: Path, run_cli: Run) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "repo" / "reconciler.yaml").write_text("policies: ../elsewhere\n")
    result = run_cli("init", str(tmp_path / "repo"), "--workflows")
    assert result.code == 1 and "outside the repository the workflow runs in" in result.err


def test_the_shipped_workflow_is_the_one_init_writes_for_this_repository() -> None:
    """Trigger paths equal what this repository's config reads; the scripts are the ones init copies."""
    files = workflow_files(trigger_paths(load_config(ROOT / "reconciler.yaml")), "pip install .")
    for relative, text in files.items():
        assert (ROOT / relative).read_text() == text, f"{relative} differs: run `reconciler init --workflows`"
    assert files[WORKFLOW_PATH].count("paths: [policies/**, reconciler.yaml]") == 2
