"""Drift: everything a plan would act on, by kind, plus what policy leaves alone; for reports and schedules.

Drift is computed from the same diff as a plan, so a clean report means an empty plan and the other way round.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Set
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

from reconciler.core.diff import diff
from reconciler.core.embeds import EmbedDrift
from reconciler.core.policy import Rolling
from reconciler.core.resolve import Desired
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Cell

# (user, target, detail): detail says what differs, e.g. the recorded and wanted expiry; for embed kinds
# (embed name, module ID, detail)
Finding = tuple[str, str, str]

# kinds a plan acts on (exit 2), then kinds reported for information
ACTIONABLE = ("missing", "unexpected", "removed_target", "expiry_differs", "renewal_due", "embed_range")
EMBED_KINDS = ("embed_range",)
INFORMATIONAL = ("unconfirmed_expiry", "unrecorded_expiry", "protected", "unmanaged")
HEADINGS = {
    "missing": "Missing (policy grants, not live)",
    "unexpected": "Unexpected (live, policy does not grant)",
    "removed_target": "On targets removed from policy (live, to be revoked)",
    "expiry_differs": "Expiry differs from policy (ledger → policy)",
    "renewal_due": "Rolling expiry due for renewal (ledger → renewed)",
    "embed_range": "Embedded Smart Q module data range differs from policy (live → policy)",
    "unconfirmed_expiry": "Expiry sent once to a live grant; Quick BI cannot confirm it (next apply sends it again)",
    "unrecorded_expiry": "Live, expiry unknown (not set by reconciler; see --unrecorded)",
    "protected": "Protected (live, not in policy, kept for protected users)",
    "unmanaged": "Unmanaged (live on targets no policy manages)",
}


@dataclass(frozen=True)
class Scope:
    """What a report covers, for a reader who wants to see access rather than read it: every user and target
    with a cell in the report, each user's policy group (for grouping; "" for none), the cells that are as the
    policy says, and the policy line that explains each cell the policy wants."""

    read_at: str = ""
    users: dict[str, str] = field(default_factory=dict)  # UserId -> policy group
    targets: list[str] = field(default_factory=list)  # "kind:id"
    in_sync: list[tuple[str, str]] = field(default_factory=list)
    why: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftReport:
    target: str
    findings: dict[str, list[Finding]]
    names: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # what the JSON and the access map add: as large as the tenant, so made only when they are asked for
    scoped: Callable[[], Scope] = field(default=Scope, repr=False, compare=False)

    @cached_property
    def scope(self) -> Scope:
        return self.scoped()

    @property
    def drift_count(self) -> int:
        return sum(len(self.findings.get(kind, [])) for kind in ACTIONABLE)

    @property
    def clean(self) -> bool:
        return self.drift_count == 0

    def to_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "target": self.target,
            "clean": self.clean,
            "notes": self.notes,
            "read_at": self.scope.read_at,
            "users": [
                {"id": user, "account": self.names.get(user, ""), "group": group}
                for user, group in sorted(self.scope.users.items())
            ],
            "targets": [
                {"id": target, "name": self.names.get(target, ""), "kind": target.partition(":")[0]}
                for target in self.scope.targets
            ],
            "in_sync": [self._cell(user, target, "") for user, target in self.scope.in_sync],
        }
        for kind in (*ACTIONABLE, *INFORMATIONAL):
            if kind in EMBED_KINDS:
                report[kind] = [
                    {"embed": e, "copilot_id": c, **({"detail": d} if d else {})} for e, c, d in self.findings[kind]
                ]
                continue
            report[kind] = [self._cell(user, target, detail) for user, target, detail in self.findings.get(kind, [])]
        return report

    def _cell(self, user: str, target: str, detail: str) -> dict[str, str]:
        """A finding on a cell, with the account name and the target's display name beside the ids."""
        finding = {"user": user, "target": target}
        if user in self.names:
            finding["account"] = self.names[user]
        if target in self.names:
            finding["target_name"] = self.names[target]
        why = self.scope.why.get((user, target))
        return {**finding, **({"detail": detail} if detail else {}), **({"why": why} if why else {})}


def drift(
    target: str,
    desired: Desired,
    snapshot: Snapshot,
    ledger: Mapping[Cell, dt.date],
    today: dt.date,
    notes: list[str] | None = None,
    embeds: EmbedDrift | None = None,
    unconfirmed: Set[Cell] = frozenset(),
    groups: Collection[str] = (),
    read_at: str = "",
) -> DriftReport:
    """The report; `groups` are the policy's group names (users are grouped by the smallest that holds them)."""
    changes = diff(desired, snapshot, ledger, today, unconfirmed=unconfirmed)
    findings: dict[str, list[Finding]] = {kind: [] for kind in (*ACTIONABLE, *INFORMATIONAL)}
    for day, cells in changes.grants.items():
        for user, cell_target in cells:
            live = snapshot.has((user, cell_target))
            recorded = ledger.get((user, cell_target))
            if not live:
                kind, detail = "missing", f"expires {day.isoformat()}"
            elif recorded == day and (user, cell_target) in unconfirmed:
                kind, detail = "unconfirmed_expiry", day.isoformat()
            elif isinstance(desired.cells[(user, cell_target)], Rolling):
                kind, detail = "renewal_due", f"{_day(recorded)} → {day.isoformat()}"
            else:
                kind, detail = "expiry_differs", f"{_day(recorded)} → {day.isoformat()}"
            if (user, cell_target) in changes.beyond_policy:
                detail += "; the ledger's day is later than the policy allows"
            findings[kind].append((user, str(cell_target), detail))
    for user, cell_target in changes.revokes:
        kind = "removed_target" if cell_target in desired.removed else "unexpected"
        findings[kind].append((user, str(cell_target), ""))
    for user, cell_target in snapshot.cells():
        if (user, cell_target) in desired.cells and (user, cell_target) not in ledger:
            findings["unrecorded_expiry"].append((user, str(cell_target), ""))
    target_names = {str(t): n for t, n in desired.target_names.items()}
    for change in embeds.changes if embeds else []:
        wider = "; live reaches targets the policy does not give it" if change.narrows else ""
        findings["embed_range"].append(
            (change.embed, change.copilot_id, f"{change.before} → {change.after.describe(target_names)}{wider}")
        )
    notes = [
        *(notes or []),
        *(f"copilot embed '{n}': Quick BI has no module {c}" for n, c in (embeds.missing if embeds else [])),
    ]
    findings["protected"] = [(u, str(t), "") for u, t in changes.protected]
    findings["unmanaged"] = [(u, str(t), "") for u, t in changes.unmanaged]
    names = {**desired.directory, **target_names}
    findings = {k: sorted(v) for k, v in findings.items()}
    scope = partial(_scope, desired, snapshot, findings, changes.grants, groups, read_at)
    return DriftReport(target, findings, names, notes, scope)


def _scope(
    desired: Desired,
    snapshot: Snapshot,
    findings: Mapping[str, list[Finding]],
    grants: Mapping[dt.date, Set[Cell]],
    groups: Collection[str],
    read_at: str,
) -> Scope:
    regranted = set().union(*grants.values()) if grants else set()
    in_sync = sorted(cell for cell in desired.cells if cell not in regranted and snapshot.has(cell))
    locations: dict[int, str] = {}
    why = {}
    if desired.rules:
        for user, row in desired.cells.rows.items():
            for target, index in row.items():
                if index not in locations:
                    locations[index] = str(desired.rules[index].location)
                why[(user, str(target))] = locations[index]
    cells = [(u, str(t)) for u, t in in_sync]
    cells += [(u, t) for kind, found in findings.items() if kind not in EMBED_KINDS for u, t, _ in found]
    smallest_first = sorted(
        (name for name in groups if desired.principals.get(name)), key=lambda n: (len(desired.principals[n]), n)
    )
    group_of: dict[str, str] = {}
    for name in smallest_first:
        for user in desired.principals[name]:
            group_of.setdefault(user, name)
    users = {user: group_of.get(user, "") for user, _ in cells}
    targets = sorted({target for _, target in cells})
    return Scope(read_at, users, targets, cells[: len(in_sync)], why)


def _day(day: dt.date | None) -> str:
    return day.isoformat() if day else "unrecorded"
