"""One apply at a time per target: a lock file next to the target's state."""

from __future__ import annotations

import getpass
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from reconciler.vocabulary.base import utc_timestamp
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.files import MAX_SMALL_FILE_BYTES, read_json_file


class TargetLock:
    def __init__(self, path: Path, target: str, break_stale: bool = False) -> None:
        self.path = path
        self.target = target
        self.break_stale = break_stale
        self._held = False

    def __enter__(self) -> TargetLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.break_stale or self._holder_is_dead():
            # a holder on this host whose process is gone cannot be applying: its lock is safe to take over
            self.path.unlink(missing_ok=True)
        owner = {
            "owner": f"{getpass.getuser()}@{socket.gethostname()}",
            "pid": os.getpid(),
            "since": utc_timestamp(),
        }
        try:
            descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise ReconcilerError(self._held_by()) from None
        with os.fdopen(descriptor, "w") as stream:
            json.dump(owner, stream)
        self._held = True
        return self

    def _holder_is_dead(self) -> bool:
        try:
            holder = read_json_file(self.path, "lock", MAX_SMALL_FILE_BYTES)
            on_this_host = str(holder["owner"]).endswith("@" + socket.gethostname())
            return on_this_host and not _pid_alive(int(holder["pid"]))
        except (ReconcilerError, ValueError, KeyError, TypeError, AttributeError):
            return False

    def _held_by(self) -> Problem:
        try:
            holder = read_json_file(self.path, "lock", MAX_SMALL_FILE_BYTES)
            who = f"{holder['owner']} (pid {holder['pid']}) since {holder['since']}"
        except (ReconcilerError, KeyError, TypeError):
            who = "an unknown owner"
        return Problem(
            f"target '{self.target}' is locked by {who} ({self.path})",
            hint="wait for the other apply, or if it is dead re-run with --break-lock",
        )

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
