"""Drift: everything a plan would act on, by kind, plus what policy leaves alone; for reports and schedules.

Drift is computed from the same diff as a plan, so a clean report means an empty plan and the other way round.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.cells import Cell
from reconciler.diff import diff
from reconciler.policy import Rolling
from reconciler.resolve import Desired
from reconciler.snapshot import Snapshot

# (user, target, detail): detail says what differs, e.g. the recorded and wanted expiry
Finding = tuple[str, str, str]

# kinds a plan acts on (exit 2), then kinds reported for information
ACTIONABLE = ("missing", "unexpected", "removed_target", "expiry_differs", "renewal_due")
INFORMATIONAL = ("unrecorded_expiry", "protected", "unmanaged")
HEADINGS = {
    "missing": "Missing (policy grants, not live)",
    "unexpected": "Unexpected (live, policy does not grant)",
    "removed_target": "On targets removed from policy (live, to be revoked)",
    "expiry_differs": "Expiry differs from policy (ledger → policy)",
    "renewal_due": "Rolling expiry due for renewal (ledger → renewed)",
    "unrecorded_expiry": "Live, expiry unknown (not set by reconciler; see --unrecorded)",
    "protected": "Protected (live, not in policy, kept for protected users)",
    "unmanaged": "Unmanaged (live on targets no policy manages)",
}


@dataclass(frozen=True)
class DriftReport:
    target: str
    findings: dict[str, list[Finding]]
    names: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def drift_count(self) -> int:
        return sum(len(self.findings.get(kind, [])) for kind in ACTIONABLE)

    @property
    def clean(self) -> bool:
        return self.drift_count == 0

    def to_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {"target": self.target, "clean": self.clean, "notes": self.notes}
        for kind in (*ACTIONABLE, *INFORMATIONAL):
            report[kind] = [
                {"user": u, "target": t, **({"detail": d} if d else {})} for u, t, d in self.findings.get(kind, [])
            ]
        return report


def drift(
    target: str,
    desired: Desired,
    snapshot: Snapshot,
    ledger: Mapping[Cell, dt.date],
    today: dt.date,
    notes: list[str] | None = None,
) -> DriftReport:
    changes = diff(desired, snapshot, ledger, today)
    findings: dict[str, list[Finding]] = {kind: [] for kind in (*ACTIONABLE, *INFORMATIONAL)}
    for day, cells in changes.grants.items():
        for user, cell_target in cells:
            live = snapshot.has((user, cell_target))
            recorded = ledger.get((user, cell_target))
            if not live:
                kind, detail = "missing", f"expires {day.isoformat()}"
            elif isinstance(desired.cells[(user, cell_target)], Rolling):
                kind, detail = "renewal_due", f"{_day(recorded)} → {day.isoformat()}"
            else:
                kind, detail = "expiry_differs", f"{_day(recorded)} → {day.isoformat()}"
            findings[kind].append((user, str(cell_target), detail))
    for user, cell_target in changes.revokes:
        kind = "removed_target" if cell_target in desired.removed else "unexpected"
        findings[kind].append((user, str(cell_target), ""))
    for user, cell_target in snapshot.cells():
        if (user, cell_target) in desired.cells and (user, cell_target) not in ledger:
            findings["unrecorded_expiry"].append((user, str(cell_target), ""))
    findings["protected"] = [(u, str(t), "") for u, t in changes.protected]
    findings["unmanaged"] = [(u, str(t), "") for u, t in changes.unmanaged]
    names = dict(desired.directory)
    names.update({str(t): n for t, n in desired.target_names.items()})
    return DriftReport(target, {k: sorted(v) for k, v in findings.items()}, names, notes or [])


def _day(day: dt.date | None) -> str:
    return day.isoformat() if day else "unrecorded"
