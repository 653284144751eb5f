"""The GitOps workflows are valid and clean under zizmor, and the documented local rehearsal runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, CliResult

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_workflows_match_the_github_schema() -> None:
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_have_no_medium_or_high_zizmor_finding() -> None:
    result = subprocess.run(
        [
            _tool("zizmor"),
            "--offline",
            "--min-severity",
            "medium",
            "--no-progress",
            str(ROOT / ".github" / "workflows"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_are_clean_under_zizmors_auditor_persona() -> None:
    result = subprocess.run(
        [_tool("zizmor"), "--offline", "--persona", "auditor", "--no-progress", str(ROOT / ".github" / "workflows")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "No findings" in result.stdout + result.stderr, result.stdout + result.stderr


def test_every_reconciler_step_names_the_configured_target() -> None:
    """The demo is the default target: a step without --target would validate or plan against it."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "gitops.yml").read_text())
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                command = line.strip()
                # show reads a plan file, fmt only policy files: neither reads a target
                if command.startswith("reconciler ") and not command.startswith(("reconciler show", "reconciler fmt")):
                    assert "--target" in command, f"{name}: {command}"


def test_workflow_safety_properties() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "gitops.yml").read_text())
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert "head.repo.full_name == github.repository" in jobs["plan"]["if"]  # forks get no credentials
    assert jobs["plan"]["env"]["ALIBABA_CLOUD_ROLE_ARN"] == "${{ vars.RECONCILER_PLAN_ROLE_ARN }}"
    assert jobs["drift"]["env"]["ALIBABA_CLOUD_ROLE_ARN"] == "${{ vars.RECONCILER_PLAN_ROLE_ARN }}"
    assert jobs["apply"]["env"]["ALIBABA_CLOUD_ROLE_ARN"] == "${{ vars.RECONCILER_APPLY_ROLE_ARN }}"
    assert jobs["apply"]["concurrency"]["cancel-in-progress"] is False
    assert jobs["apply"]["environment"] == "reconciler-apply-${{ matrix.target }}"  # reviewers release the apply
    assert jobs["apply"]["concurrency"]["group"] != jobs["plan"]["concurrency"]["group"]
    for job in jobs.values():
        for step in job["steps"]:
            uses = step.get("uses")
            if uses:
                assert len(uses.split("@")[1]) == 40, f"{uses} is not pinned by commit"
            if uses and uses.startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False


def test_the_local_rehearsal_runs_the_pipeline(tmp_path: Path) -> None:
    env = {**os.environ, "RECONCILER": str(BIN / "reconciler"), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "rehearse-gitops.sh")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Apply complete" in result.stdout and "Drift: none." in result.stdout
    assert "apply: rehearsal state after an apply" in result.stdout
    # the first merge applied in full, the second read only judy
    assert "a full apply, not an incremental one: no record of the commit" in result.stdout
    assert "live grants read only for the 1 user whose access the change touches" in result.stdout


def test_each_configured_quick_bi_target_gets_its_own_jobs(run_cli: Callable[..., CliResult], workspace: Path) -> None:
    """The matrix is what `reconciler targets` lists from the config: one plan, apply and drift job per Quick BI
    target, each with its own concurrency group (its state branch holds its own lock)."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "gitops.yml").read_text())
    jobs = workflow["jobs"]
    listing = "\n".join(step.get("run", "") for step in jobs["targets"]["steps"])
    assert "reconciler targets --kind quickbi --format json" in listing
    for name in ("plan", "apply", "drift"):
        job = jobs[name]
        assert job["needs"] == "targets"
        assert job["strategy"]["matrix"]["include"] == "${{ fromJSON(needs.targets.outputs.matrix) }}"
        assert job["env"]["TARGET"] == "${{ matrix.target }}" and "matrix.target" in job["concurrency"]["group"]
    listed = run_cli("targets", "--kind", "quickbi", "--format", "json")
    assert listed.code == 0 and [entry["target"] for entry in json.loads(listed.out)] == ["prod"]
    assert run_cli("targets", "prod", "demo", "--format", "json").out.count('"target"') == 2
    assert run_cli("targets", "nowhere").code == 1
