"""The audit log: one durable JSON line per API call, never a secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.vocabulary.base import utc_timestamp
from reconciler.vocabulary.files import append_text
from reconciler.vocabulary.redaction import SECRET_PARAMETERS


def _append(path: Path, record: dict[str, Any]) -> None:
    append_text(path, json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")


class AuditLog:
    """One JSON line per API call: time, action, parameters (never secrets), RequestId, outcome."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, action: str, params: dict[str, str], request_id: str, outcome: str) -> None:
        safe = {k: v for k, v in params.items() if k not in SECRET_PARAMETERS}
        _append(
            self.path,
            {
                "time": utc_timestamp(precise=True),
                "action": action,
                "params": safe,
                "request_id": request_id,
                "outcome": outcome,
            },
        )
