"""The policy repository as git sees it: which commit the policies are, and that commit's files at another.

An incremental apply needs both: the commit it applies (recorded when it succeeds) and the files of the commit
the last apply recorded (the base it plans from). Every question here has a plain answer or a reason why not,
one line, since the caller then falls back to a full apply and says why.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

GIT_SECONDS = 120  # a policy repository is small; a git that hangs (a lock, a prompt) must not hold the apply


@dataclass(frozen=True)
class Commit:
    """The commit the policy files are, or (`commit` None) why they are not one commit."""

    commit: str | None
    why_not: str = ""


class PolicyRepo:
    """The git repository holding a configuration file."""

    def __init__(self, config: Path) -> None:
        self.config = config.resolve()

    def head(self, paths: Sequence[Path]) -> Commit:
        """HEAD, when the configuration and every policy path are exactly as committed there (nothing modified,
        staged, untracked or ignored under them): only then is HEAD what an apply makes live."""
        top = self._git("rev-parse", "--show-toplevel")
        if top is None:
            return Commit(None, f"{self.config.parent} is not in a git checkout")
        head = self._git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        if head is None:
            return Commit(None, "the policy repository has no commit yet")
        listed = [str(p.resolve()) for p in (self.config, *paths)]
        status = self._git("status", "--porcelain", "--untracked-files=all", "--ignored=matching", "--", *listed)
        if status is None:
            return Commit(None, "git status failed in the policy repository")
        if status.strip():
            first = status.splitlines()[0][3:]
            return Commit(None, f"the configuration or policies differ from commit {head[:12]} ({first}, …)")
        return Commit(head)

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        """`ancestor` is `commit` or one of its ancestors, and both are in this checkout's history."""
        return self._git("merge-base", "--is-ancestor", ancestor, commit) is not None

    @contextlib.contextmanager
    def files_at(self, commit: str, paths: Sequence[Path]) -> Iterator[Path]:
        """The configuration file's path inside a scratch copy of the configuration and `paths` (the policies)
        as they were at `commit`; only those, however large the rest of the repository."""
        top = self._git("rev-parse", "--show-toplevel")
        assert top is not None, "files_at is asked only of a checkout that head() found"
        root = Path(top).resolve()
        wanted = [str(p.resolve().relative_to(root)) for p in (self.config, *paths) if p.resolve().is_relative_to(root)]
        # pathspecs from the top, whichever folder git runs in
        archive = self._run("-C", top, "archive", "--format=tar", commit, "--", *(f":(top,literal){w}" for w in wanted))
        if archive is None:
            raise LookupError(
                f"commit {commit[:12]} is not in this checkout, or had no {' or '.join(wanted)} (a first policy?)"
            )
        folder = Path(tempfile.mkdtemp(prefix="reconciler-base-"))
        try:
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(folder, filter="data")
            yield folder / self.config.relative_to(root)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _git(self, *args: str) -> str | None:
        done = self._run(*args)
        return None if done is None else done.stdout.decode("utf-8", "replace").strip()

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes] | None:
        """git in the configuration's folder, never prompting; None when it fails or cannot run."""
        try:
            done = subprocess.run(
                ["git", "-C", str(self.config.parent), *args],
                capture_output=True,
                timeout=GIT_SECONDS,
                env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done if done.returncode == 0 else None
