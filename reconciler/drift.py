"""Drift: how the live grants differ from the policy, for reports and scheduled checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.cells import Cell
from reconciler.resolve import Desired
from reconciler.snapshot import Snapshot

CellNames = list[tuple[str, str]]


@dataclass(frozen=True)
class DriftReport:
    target: str
    missing: CellNames
    unexpected: CellNames
    protected: CellNames
    unmanaged: CellNames
    names: dict[str, str] = field(default_factory=dict)

    @property
    def drift_count(self) -> int:
        return len(self.missing) + len(self.unexpected)

    @property
    def clean(self) -> bool:
        return self.drift_count == 0

    def to_dict(self) -> dict[str, Any]:
        def cells(items: CellNames) -> list[dict[str, str]]:
            return [{"user": u, "target": t} for u, t in items]

        return {
            "target": self.target,
            "clean": self.clean,
            "missing": cells(self.missing),
            "unexpected": cells(self.unexpected),
            "protected": cells(self.protected),
            "unmanaged": cells(self.unmanaged),
        }


def drift(target: str, desired: Desired, snapshot: Snapshot) -> DriftReport:
    live = set(snapshot.cells())
    wanted = set(desired.cells)
    missing = wanted - live
    extra = live - wanted
    unmanaged = {c for c in extra if not desired.is_managed(c[1])}
    protected = {c for c in extra - unmanaged if c[0] in desired.protected}
    unexpected = extra - unmanaged - protected

    def listed(cells: set[Cell]) -> CellNames:
        return [(u, str(t)) for u, t in sorted(cells)]

    names = dict(desired.directory)
    names.update({str(t): n for t, n in desired.target_names.items()})
    return DriftReport(target, listed(missing), listed(unexpected), listed(protected), listed(unmanaged), names)
