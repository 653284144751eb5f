"""Compare what policy wants with what is live (and the expiry ledger) and name every change."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from reconciler.cells import Cell, Target
from reconciler.policy import Rolling
from reconciler.resolve import Desired
from reconciler.snapshot import Snapshot

UnrecordedRule = Literal["trust", "regrant"]


@dataclass(frozen=True)
class DiffOptions:
    additive: bool = False  # never revoke
    # a live desired cell with no ledger record: trust it (no call) or re-grant it to pin its expiry
    unrecorded: UnrecordedRule = "trust"


@dataclass(frozen=True)
class Changes:
    grants: dict[dt.date, frozenset[Cell]]
    revokes: frozenset[Cell]
    # per user, the targets a revoke batch may touch: managed, not desired, user not protected
    revocable: dict[str, frozenset[Target]]
    # desired cells already live whose ledger expiry matches, by day: safe to re-grant if the user allows it
    regrantable: dict[dt.date, frozenset[Cell]] = field(default_factory=dict)
    protected: frozenset[Cell] = frozenset()
    unmanaged: frozenset[Cell] = frozenset()
    unchanged: int = 0

    @property
    def grant_cells(self) -> int:
        return sum(len(cells) for cells in self.grants.values())

    @property
    def empty(self) -> bool:
        return not self.grants and not self.revokes


def diff(
    desired: Desired,
    snapshot: Snapshot,
    ledger: Mapping[Cell, dt.date],
    today: dt.date,
    options: DiffOptions | None = None,
) -> Changes:
    options = options or DiffOptions()
    grants: dict[dt.date, set[Cell]] = defaultdict(set)
    regrantable: dict[dt.date, set[Cell]] = defaultdict(set)
    unchanged = 0
    for cell, expiry in desired.cells.items():
        user, target = cell
        live = target in snapshot.grants.get(user, frozenset())
        day = _wanted_day(expiry, ledger.get(cell) if live else None, live, today, options.unrecorded)
        if day is None:
            unchanged += 1
            recorded = ledger.get(cell)
            if recorded is not None:
                regrantable[recorded].add(cell)
        else:
            grants[day].add(cell)
    revokes: set[Cell] = set()
    protected: set[Cell] = set()
    unmanaged: set[Cell] = set()
    for cell in snapshot.cells():
        if cell in desired.cells:
            continue
        user, target = cell
        if not desired.is_managed(target):
            unmanaged.add(cell)
        elif user in desired.protected:
            protected.add(cell)
        elif not options.additive:
            revokes.add(cell)
    revocable: dict[str, frozenset[Target]] = {}
    if revokes:
        managed = desired.managed if desired.managed is not None else frozenset(t for _, t in revokes)
        wanted: dict[str, set[Target]] = defaultdict(set)
        for user, target in desired.cells:
            wanted[user].add(target)
        for user in {u for u, _ in revokes}:
            revocable[user] = frozenset(managed - wanted.get(user, set()))
    return Changes(
        grants={day: frozenset(cells) for day, cells in grants.items()},
        revokes=frozenset(revokes),
        revocable=revocable,
        regrantable={day: frozenset(cells) for day, cells in regrantable.items()},
        protected=frozenset(protected),
        unmanaged=frozenset(unmanaged),
        unchanged=unchanged,
    )


def _wanted_day(
    expiry: dt.date | Rolling,
    recorded: dt.date | None,
    live: bool,
    today: dt.date,
    unrecorded: UnrecordedRule,
) -> dt.date | None:
    """The expiry day to grant, or None when the live cell already serves the policy."""
    if isinstance(expiry, Rolling):
        if live and recorded is not None and (recorded - today).days > expiry.renew_within:
            return None
        if live and recorded is None and unrecorded == "trust":
            return None
        return today + dt.timedelta(days=expiry.ttl)
    if not live:
        return expiry
    if recorded is None:
        return None if unrecorded == "trust" else expiry
    return None if recorded == expiry else expiry
