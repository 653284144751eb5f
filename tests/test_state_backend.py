"""State on a git branch: two fresh checkouts share one bare repository and one served emulator, as two CI
runners would; the branch tip is the lock."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reconciler.adapters.state_backend import GitState, LocalState
from reconciler.core.state import APPLIED_COMMIT
from reconciler.emulator import Emulator
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import DEMO_ORG, ROOT
from tests.test_policy_repo import commit_all, git

BRANCH = "reconciler-state"


@pytest.fixture
def served() -> Iterator[str]:
    with Emulator.from_file(DEMO_ORG).serve() as server:
        yield server.endpoint


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    repo = tmp_path / "state.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True)
    return repo


def _checkout(folder: Path, endpoint: str, bare: Path, lock_timeout: float = 120) -> Path:
    shutil.copytree(ROOT / "policies", folder / "policies")
    target = {
        "quickbi": {"endpoint": endpoint},
        "state_repo": {"url": str(bare), "branch": BRANCH, "lock_timeout": lock_timeout},
    }
    config = {"policies": "policies/", "default_target": "live", "targets": {"live": target}}
    (folder / "reconciler.yaml").write_text(yaml.safe_dump(config))
    return folder


def _env(folder: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(folder),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "demo-ak",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "demo-secret",
    }


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=folder,
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _branch_file(bare: Path, name: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(bare), "show", f"{BRANCH}:{name}"], capture_output=True, text=True, check=True
    ).stdout


def _log(bare: Path) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(bare), "log", "--format=%s", BRANCH], capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def test_a_second_checkout_sees_the_first_ones_state(tmp_path: Path, served: str, bare: Path) -> None:
    first = _checkout(tmp_path / "a", served, bare)
    plan = _run(first, "plan")
    assert "no record of the targets managed" in plan.stdout  # says what is missing, does not guess
    applied = _run(first, "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert "u-grace\t2027-12-31\t" in _branch_file(bare, "expiry-ledger.tsv")
    assert "llm_cube:c-sales" in json.loads(_branch_file(bare, "managed-targets.json"))["targets"]
    assert '"SmartqAuthorize"' in _branch_file(bare, "audit.jsonl")
    assert _log(bare) == ["apply: live state after an apply by " + _log(bare)[0].split(" by ", 1)[1]]

    second = _checkout(tmp_path / "b", served, bare)
    assert _run(second, "plan", "--detailed-exitcode").returncode == 0
    people = second / "policies" / "people-analytics.yaml"
    people.write_text(people.read_text().replace("expires: 2027-12-31", "expires: 2027-03-31"))
    changed = _run(second, "plan", "--detailed-exitcode")
    assert changed.returncode == 2
    assert "~ u-grace (grace)  llm_cube:c-hr (Headcount)  (expiry 2027-12-31 → 2027-03-31)" in changed.stdout


def test_two_concurrent_applies_take_turns_and_converge(tmp_path: Path, served: str, bare: Path) -> None:
    runners = [_checkout(tmp_path / name, served, bare) for name in ("a", "b")]
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def apply(folder: Path) -> None:
        results[folder.name] = _run(folder, "apply", "--auto-approve")

    threads = [threading.Thread(target=apply, args=(folder,)) for folder in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.returncode == 0 for r in results.values()), {k: r.stderr for k, r in results.items()}
    history = _log(bare)
    assert len(history) in (1, 2) and all(line.startswith("apply: ") for line in history)
    assert (
        "lock.json"
        not in subprocess.run(
            ["git", "--git-dir", str(bare), "ls-tree", "--name-only", BRANCH], capture_output=True, text=True
        ).stdout
    )
    for folder in runners:
        final = _run(folder, "plan", "--detailed-exitcode")
        assert final.returncode == 0 and "No changes" in final.stdout, final.stdout + final.stderr


def test_a_dead_holder_blocks_until_the_lock_is_broken(tmp_path: Path, served: str, bare: Path) -> None:
    first = _checkout(tmp_path / "a", served, bare, lock_timeout=0)
    backend = GitState(str(bare), BRANCH, "live", lock_timeout=0)

    class Died(Exception):
        pass

    with pytest.raises(Died), backend.applying():
        # a run killed while holding the lock: simulated by pushing the lock and never releasing it
        subprocess.run(
            ["git", "--git-dir", str(bare), "update-ref", "refs/heads/keep", BRANCH], check=True, capture_output=True
        )
        raise Died
    subprocess.run(["git", "--git-dir", str(bare), "update-ref", f"refs/heads/{BRANCH}", "refs/heads/keep"], check=True)
    blocked = _run(first, "apply", "--auto-approve")
    assert blocked.returncode == 1 and "is locked by" in blocked.stderr and "--break-lock" in blocked.stderr
    assert len(blocked.stderr.strip().splitlines()) == 1
    broken = _run(first, "apply", "--auto-approve", "--break-lock")
    assert broken.returncode == 0, broken.stderr
    assert _run(first, "plan", "--detailed-exitcode").returncode == 0


def test_a_record_without_its_ledger_is_an_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "managed-targets.json").write_text(json.dumps({"format_version": 1, "targets": ["llm_cube:c"]}))
    from reconciler.core.state import read_state

    with pytest.raises(ReconcilerError, match="the expiry ledger is missing, but this target has applied before"):
        read_state(state)
    with LocalState(state, "t").reading() as folder:
        assert folder == state


def test_unreachable_state_repository_is_one_line(tmp_path: Path, served: str) -> None:
    folder = _checkout(tmp_path / "a", served, tmp_path / "no-such-repo.git")
    result = _run(folder, "plan")
    assert result.returncode == 1 and "cannot read state from" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_link_committed_to_the_state_branch_is_refused(tmp_path: Path, served: str, bare: Path) -> None:
    first = _checkout(tmp_path / "a", served, bare)
    assert _run(first, "apply", "--auto-approve").returncode == 0
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched\n")
    work = tmp_path / "edit"
    subprocess.run(["git", "clone", "--quiet", "--branch", BRANCH, str(bare), str(work)], check=True)
    (work / "audit.jsonl").unlink()
    (work / "audit.jsonl").symlink_to(outside)
    git = ["git", "-C", str(work), "-c", "user.name=x", "-c", "user.email=x@x"]
    subprocess.run([*git, "commit", "--quiet", "-am", "an attacker's edit"], check=True)
    subprocess.run([*git, "push", "--quiet", "origin", BRANCH], check=True)
    for command in (("plan",), ("apply", "--auto-approve")):
        result = _run(first, *command)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "audit.jsonl: the state holds a symbolic link" in result.stderr
    assert outside.read_text() == "untouched\n"


def test_a_relative_state_url_is_relative_to_the_config_file(tmp_path: Path, served: str, bare: Path) -> None:
    folder = _checkout(tmp_path / "repo" / "conf", served, bare)
    config = yaml.safe_load((folder / "reconciler.yaml").read_text())
    config["targets"]["live"]["state_repo"]["url"] = os.path.relpath(bare, folder)  # e.g. ../../state.git
    (folder / "reconciler.yaml").write_text(yaml.safe_dump(config))
    elsewhere = tmp_path / "repo"
    applied = _run(elsewhere, "--config", "conf/reconciler.yaml", "apply", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert "u-grace\t2027-12-31\t" in _branch_file(bare, "expiry-ledger.tsv")


def test_the_lock_commit_never_carries_the_last_applied_commit(tmp_path: Path, served: str, bare: Path) -> None:
    """A run killed holding the lock leaves the lock commit: it must not tell the next incremental apply that
    live state is the commit before, since the dead run may have sent part of another one."""
    first = _checkout(tmp_path / "a", served, bare, lock_timeout=0)
    git(first, "init", "--quiet", "-b", "main")
    head = commit_all(first, "policies")
    assert _run(first, "apply", "--auto-approve").returncode == 0
    assert json.loads(_branch_file(bare, APPLIED_COMMIT))["commit"] == head

    class Died(Exception):
        pass

    with pytest.raises(Died), GitState(str(bare), BRANCH, "live", lock_timeout=0).applying() as folder:
        assert (folder / APPLIED_COMMIT).exists()  # the apply itself reads it
        subprocess.run(
            ["git", "--git-dir", str(bare), "update-ref", "refs/heads/keep", BRANCH], check=True, capture_output=True
        )
        raise Died
    subprocess.run(["git", "--git-dir", str(bare), "update-ref", f"refs/heads/{BRANCH}", "refs/heads/keep"], check=True)
    listed = subprocess.run(
        ["git", "--git-dir", str(bare), "ls-tree", "--name-only", BRANCH], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "lock.json" in listed and APPLIED_COMMIT not in listed and "expiry-ledger.tsv" in listed
    resumed = _run(first, "apply", "--incremental", "--auto-approve", "--break-lock")
    assert resumed.returncode == 0, resumed.stderr
    assert "note: a full apply, not an incremental one: no record of the commit the last apply made live" in (
        resumed.stderr
    )
    assert json.loads(_branch_file(bare, APPLIED_COMMIT))["commit"] == head
