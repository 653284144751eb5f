"""Append-only records written while applying: the batch journal (resume) and the audit log (one line per call)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from reconciler.redaction import SECRET_PARAMETERS


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


class Journal:
    """Which batches of one plan have finished, so an interrupted apply resumes without repeating them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    self.done.add(json.loads(line)["batch"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line: that batch simply runs again, which is idempotent

    def finished(self, batch_key: str) -> None:
        self.done.add(batch_key)
        _append(self.path, {"batch": batch_key, "at": _now()})

    def close(self) -> None:
        """The plan converged: the journal has served its purpose."""
        self.path.unlink(missing_ok=True)


class AuditLog:
    """One JSON line per API call: time, action, parameters (never secrets), RequestId, outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, action: str, params: dict[str, str], request_id: str, outcome: str) -> None:
        safe = {k: v for k, v in params.items() if k not in SECRET_PARAMETERS}
        _append(
            self.path,
            {"time": _now(), "action": action, "params": safe, "request_id": request_id, "outcome": outcome},
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
