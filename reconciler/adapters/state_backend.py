"""Where a target's state (expiry ledger, managed-target record, audit log) lives, and how applies exclude
each other: a local folder with a lock file, or a branch of a git repository whose tip is the lock.

Both hand the run a local folder: read-only commands get the state as it is; an apply gets it exclusively and,
for git, its changes are pushed as one commit when it ends. The interface is small so that object storage
(e.g. Alibaba OSS with conditional writes) can follow.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler.core.lock import TargetLock
from reconciler.core.state import APPLIED_COMMIT
from reconciler.vocabulary.base import utc_timestamp
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.files import MAX_SMALL_FILE_BYTES, check_state_folder, read_json_file

LOCK_FILE = "lock.json"
POLL_SECONDS = 3.0
MAX_ATTEMPTS = 10_000  # a bound on re-reads while waiting for the lock (lock_timeout decides first)


class StateBackend(Protocol):
    def describe(self) -> str: ...

    def reading(self) -> AbstractContextManager[Path]:
        """The state as it is now, in a local folder, for commands that do not change it."""

    def applying(self, break_lock: bool = False) -> AbstractContextManager[Path]:
        """The state, exclusively: no other apply of the target runs until the block ends and is saved."""


@dataclass(frozen=True)
class LocalState:
    """State in a folder on this machine, one apply at a time through a lock file beside it."""

    folder: Path
    target: str

    def describe(self) -> str:
        return str(self.folder)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Path]:
        check_state_folder(self.folder)
        yield self.folder

    @contextlib.contextmanager
    def applying(self, break_lock: bool = False) -> Iterator[Path]:
        check_state_folder(self.folder)
        with TargetLock(self.folder / "apply.lock", self.target, break_lock):
            yield self.folder


def run_identity() -> dict[str, str]:
    """Who holds a lock: user and host, and on CI the run's address, so a stuck lock can be traced."""
    owner = {"owner": f"{getpass.getuser()}@{socket.gethostname()}", "pid": str(os.getpid()), "since": utc_timestamp()}
    server, repository, run = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repository and run:
        owner["run_url"] = f"{server}/{repository}/actions/runs/{run}"
    return owner


@dataclass
class GitState:
    """State on a branch of a git repository (the policy repository itself will do).

    Taking the lock is a push of a commit holding `lock.json` that succeeds only if the branch is still where
    it was read (`--force-with-lease`): compare-and-swap on the branch tip. Releasing it replaces that commit
    by one commit with what the apply changed, again only if nobody moved the branch meanwhile. A run that
    dies holding the lock leaves the lock commit on the branch, naming its owner and run.
    """

    url: str
    branch: str
    target: str
    lock_timeout: float = 300.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def describe(self) -> str:
        return f"{self.url} branch {self.branch}"

    @contextlib.contextmanager
    def reading(self) -> Iterator[Path]:
        with self._checkout() as (folder, _):
            yield folder

    @contextlib.contextmanager
    def applying(self, break_lock: bool = False) -> Iterator[Path]:
        deadline = time.monotonic() + self.lock_timeout
        for attempt in range(MAX_ATTEMPTS):
            if attempt >= 3 and time.monotonic() >= deadline:
                break
            with self._checkout() as (folder, base):
                holder = _lock_holder(folder)
                if holder and not break_lock:
                    if time.monotonic() >= deadline:
                        raise ReconcilerError(
                            Problem(
                                f"target '{self.target}' state ({self.describe()}) is locked by {holder}",
                                hint="wait for that apply, or if it died re-run with --break-lock",
                            )
                        )
                else:
                    locked = self._take(folder, base)
                    if locked is not None:
                        try:
                            yield folder
                        finally:
                            self._release(folder, base, locked)
                        return
            # someone moved the branch or holds the lock: read it again after a short, jittered pause
            self.sleep(min(POLL_SECONDS * (0.5 + random.random()), max(deadline - time.monotonic(), 0.1)))
        raise ReconcilerError(
            Problem(
                f"target '{self.target}' state ({self.describe()}) kept moving: could not take its lock",
                hint="another process is pushing to the state branch; check what writes to it",
            )
        )

    # ---- git ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _checkout(self) -> Iterator[tuple[Path, str | None]]:
        """A fresh working folder with the branch's tip checked out; the tip's commit, or None if no branch yet."""
        folder = Path(tempfile.mkdtemp(prefix=f"reconciler-state-{self.target}-"))
        try:
            self._git(folder, "init", "--quiet")
            fetched = subprocess.run(
                ["git", "fetch", "--quiet", "--depth=1", self.url, f"refs/heads/{self.branch}"],
                cwd=folder,
                capture_output=True,
                text=True,
                env=_git_env(),
            )
            if fetched.returncode != 0:
                if "couldn't find remote ref" not in fetched.stderr:
                    raise ReconcilerError(
                        Problem(
                            f"cannot read state from {self.describe()}: {_first_line(fetched.stderr)}",
                            hint="check state_repo.url and that this runner may fetch it",
                        )
                    )
                yield folder, None
                return
            base = self._git(folder, "rev-parse", "FETCH_HEAD")
            self._git(folder, "checkout", "--quiet", "--detach", base)
            check_state_folder(folder, recursive=True)
            yield folder, base
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _take(self, folder: Path, base: str | None) -> str | None:
        """Push a lock commit on top of `base`; its commit, or None when the branch moved under us."""
        (folder / LOCK_FILE).write_text(json.dumps(run_identity(), indent=1) + "\n", encoding="utf-8")
        self._git(folder, "add", "--all")
        # the apply reads the record from the folder; the lock commit, all a killed run leaves, must not carry
        # it: which commit is live is unknown once an apply may have sent anything
        self._git(folder, "rm", "--cached", "--quiet", "--ignore-unmatch", APPLIED_COMMIT)
        self._commit(folder, f"lock: apply of {self.target} by {run_identity()['owner']}")
        locked = self._git(folder, "rev-parse", "HEAD")
        return locked if self._push(folder, locked, base) else None

    def _release(self, folder: Path, base: str | None, locked: str) -> None:
        """Replace the lock commit by one commit with what changed (or by nothing if nothing did)."""
        (folder / LOCK_FILE).unlink(missing_ok=True)
        self._git(folder, "add", "--all")
        if base is not None:
            self._git(folder, "reset", "--quiet", "--soft", base)
        else:
            self._git(folder, "update-ref", "-d", "HEAD")
        changed = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=folder, env=_git_env()).returncode != 0
        if base is None or changed:
            self._commit(folder, f"apply: {self.target} state after an apply by {run_identity()['owner']}")
        final = self._git(folder, "rev-parse", "HEAD")
        if not self._push(folder, final, locked):
            raise ReconcilerError(
                Problem(
                    f"target '{self.target}' state branch moved while this apply held its lock; the state of this "
                    f"run was not saved ({self.describe()})",
                    hint="someone broke the lock: check the branch history before the next apply",
                )
            )

    def _commit(self, folder: Path, message: str) -> None:
        self._git(folder, "commit", "--quiet", "--allow-empty", "-m", message)

    def _push(self, folder: Path, commit: str, expected: str | None) -> bool:
        lease = f"--force-with-lease=refs/heads/{self.branch}:{expected or ''}"
        pushed = subprocess.run(
            ["git", "push", "--quiet", lease, self.url, f"{commit}:refs/heads/{self.branch}"],
            cwd=folder,
            capture_output=True,
            text=True,
            env=_git_env(),
        )
        if pushed.returncode == 0:
            return True
        if "stale info" in pushed.stderr or "rejected" in pushed.stderr or "fetch first" in pushed.stderr:
            return False
        raise ReconcilerError(
            Problem(
                f"cannot write state to {self.describe()}: {_first_line(pushed.stderr)}",
                hint="the apply role needs push access to the state branch",
            )
        )

    def _git(self, folder: Path, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, env=_git_env())
        if done.returncode != 0:
            raise ReconcilerError(Problem(f"git {args[0]} failed for the state repository: {_first_line(done.stderr)}"))
        return done.stdout.strip()


def _lock_holder(folder: Path) -> str | None:
    path = folder / LOCK_FILE
    if not path.exists():
        return None
    try:
        holder = read_json_file(path, "state lock", MAX_SMALL_FILE_BYTES)
        where = f", run {holder['run_url']}" if holder.get("run_url") else ""
        return f"{holder['owner']} since {holder['since']}{where}"
    except (ReconcilerError, KeyError, TypeError, AttributeError):
        return "an unreadable lock.json"


def _git_env() -> dict[str, str]:
    """git without prompts or the user's hooks, with an identity for state commits if none is configured."""
    env = dict(os.environ)
    env.setdefault("GIT_AUTHOR_NAME", "reconciler")
    env.setdefault("GIT_AUTHOR_EMAIL", "reconciler@localhost")
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else "no message"
