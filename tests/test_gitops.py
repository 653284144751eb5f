"""The GitOps workflows are valid and clean under zizmor, and the documented local rehearsal runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

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


def test_workflow_safety_properties() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "gitops.yml").read_text())
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert "head.repo.full_name == github.repository" in jobs["plan"]["if"]  # forks get no credentials
    assert jobs["plan"]["env"]["ALIBABA_CLOUD_ROLE_ARN"] == "${{ vars.RECONCILER_PLAN_ROLE_ARN }}"
    assert jobs["drift"]["env"]["ALIBABA_CLOUD_ROLE_ARN"] == "${{ vars.RECONCILER_PLAN_ROLE_ARN }}"
    assert jobs["apply"]["env"]["ALIBABA_CLOUD_ROLE_ARN"] == "${{ vars.RECONCILER_APPLY_ROLE_ARN }}"
    assert jobs["apply"]["concurrency"]["cancel-in-progress"] is False
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
