"""The policy repository through git: which commit the policies are, ancestry, and a commit's files."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from reconciler.adapters.policy_repo import PolicyRepo


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit_all(folder: Path, message: str) -> str:
    git(folder, "add", "--all")
    git(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "--allow-empty", "-m", message)
    return git(folder, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "--quiet", "-b", "main")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "reconciler.yaml").write_text("policies: ../policies\n")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a.yaml").write_text("version: 1\n")
    (tmp_path / "README").write_text("other files do not matter\n")
    return tmp_path


def head(repo: Path) -> PolicyRepo:
    return PolicyRepo(repo / "conf" / "reconciler.yaml")


def test_head_is_the_commit_only_while_config_and_policies_are_as_committed(repo: Path) -> None:
    assert head(repo).head([repo / "policies"]).why_not == "the policy repository has no commit yet"
    first = commit_all(repo, "first")
    assert head(repo).head([repo / "policies"]).commit == first
    (repo / "README").write_text("changed, and not a policy\n")
    assert head(repo).head([repo / "policies"]).commit == first
    for change in (
        lambda: (repo / "policies" / "a.yaml").write_text("version: 1\n# edited\n"),  # modified
        lambda: (repo / "policies" / "b.yaml").write_text("version: 1\n"),  # untracked
        lambda: (repo / "conf" / "reconciler.yaml").write_text("policies: ../other\n"),  # the config
    ):
        change()
        found = head(repo).head([repo / "policies"])
        assert found.commit is None and f"differ from commit {first[:12]}" in found.why_not
        git(repo, "checkout", "--quiet", "--", ".")
        git(repo, "clean", "--quiet", "-fdx")
    # an ignored file in the policies is read by the tool but is in no commit
    (repo / ".gitignore").write_text("*.local.yaml\n")
    commit_all(repo, "ignore")
    (repo / "policies" / "x.local.yaml").write_text("version: 1\n")
    assert head(repo).head([repo / "policies"]).commit is None


def test_outside_a_repository_there_is_no_commit(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text("policies: p\n")
    found = PolicyRepo(tmp_path / "reconciler.yaml").head([tmp_path / "p"])
    assert found.commit is None and "is not in a git checkout" in found.why_not


def test_ancestry_and_a_commits_files(repo: Path) -> None:
    first = commit_all(repo, "first")
    (repo / "policies" / "a.yaml").write_text("version: 1\n# second\n")
    second = commit_all(repo, "second")
    git(repo, "checkout", "--quiet", "-b", "side", first)
    (repo / "policies" / "c.yaml").write_text("version: 1\n")
    side = commit_all(repo, "side")
    policy_repo = head(repo)
    assert policy_repo.is_ancestor(first, second) and policy_repo.is_ancestor(second, second)
    assert not policy_repo.is_ancestor(second, first) and not policy_repo.is_ancestor(side, second)
    assert not policy_repo.is_ancestor("0" * 40, second)
    with policy_repo.files_at(first, [repo / "policies"]) as config:
        assert config.read_text() == "policies: ../policies\n"
        assert (config.parent.parent / "policies" / "a.yaml").read_text() == "version: 1\n"
        assert not (config.parent.parent / "policies" / "c.yaml").exists()
        assert not (config.parent.parent / "README").exists()  # only the configuration and the policies
        scratch = config.parent.parent
    assert not scratch.exists()  # removed after use
    with pytest.raises(LookupError, match="is not in this checkout"), policy_repo.files_at("1" * 40, []):
        pass
    (repo / "more").mkdir()
    added = pytest.raises(LookupError, match=re.escape("had no conf/reconciler.yaml or more"))
    with added, policy_repo.files_at(first, [repo / "more"]):  # a policy folder added since
        pass
