"""Compare what policy wants with what is live (and the expiry ledger) and name every change."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from itertools import filterfalse
from typing import Literal

from reconciler.core.ledger import Ledger
from reconciler.core.policy import Expiry, Rolling, UnknownExpiry, latest_day
from reconciler.core.resolve import Desired
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Cell, Target

UnrecordedRule = Literal["trust", "regrant"]


@dataclass(frozen=True)
class DiffOptions:
    additive: bool = False  # never revoke
    # a live desired cell with no ledger record: trust it (no call) or re-grant it to pin its expiry
    unrecorded: UnrecordedRule = "trust"
    # limit the run to these users and/or targets (Terraform's -target): other cells are left as they are
    users: frozenset[str] | None = None
    targets: frozenset[Target] | None = None
    # collect the live cells a grant batch may send again (`regrantable`, for --allow-regrant): in a steady
    # state that is every live desired cell, so it is gathered only when a plan may use it
    regrant: bool = False

    @property
    def partial(self) -> bool:
        return self.users is not None or self.targets is not None

    def in_scope(self, cell: Cell) -> bool:
        return (self.users is None or cell[0] in self.users) and (self.targets is None or cell[1] in self.targets)


@dataclass(frozen=True)
class Changes:
    grants: dict[dt.date, Set[Cell]]
    revokes: frozenset[Cell]
    # per user, the targets a revoke batch may touch: managed, not desired, user not protected
    revocable: dict[str, frozenset[Target]]
    # desired cells already live whose ledger expiry matches, by day: safe to re-grant if the user allows it
    regrantable: dict[dt.date, Set[Cell]] = field(default_factory=dict)
    protected: frozenset[Cell] = frozenset()
    unmanaged: frozenset[Cell] = frozenset()
    unchanged: int = 0
    skipped_revokes: int = 0  # revokes an additive run leaves for later
    # live rolling cells whose ledger expiry is later than the window allows: the ledger is ignored for them
    beyond_policy: frozenset[Cell] = frozenset()
    out_of_scope: int = 0  # changes a partial run leaves for later

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
    unconfirmed: Set[Cell] = frozenset(),
) -> Changes:
    """Every change the policy needs. `unconfirmed` are live cells whose recorded expiry was sent once and cannot
    be read back to confirm (see `ledger`): they are granted again with the policy's day."""
    options = options or DiffOptions()
    grants: dict[dt.date, set[Cell]] = defaultdict(set)
    regrantable: dict[dt.date, set[Cell]] = defaultdict(set)
    unchanged = skipped = out_of_scope = 0
    wanted = desired.cells.keys()
    # millions of cells: split at C speed, no set of the live cells is built, only what needs a decision is
    # looped over (an onboarding grants the desired cells themselves; a steady state keeps them)
    fresh: Set[Cell] = set(filterfalse(snapshot.has, wanted)) if any(snapshot.grants.values()) else wanted
    kept: Set[Cell]
    if fresh is wanted:  # nothing live: an onboarding
        kept = frozenset()
    elif fresh:
        kept = wanted - fresh
    else:  # a steady state keeps every desired cell: the desired cells themselves, not millions copied
        kept = wanted
    only_day = None if options.partial or not fresh else _only_fresh_day(desired, today)
    if only_day is None:
        read = snapshot.grants.keys()
        for cell, expiry in desired.expiries_of(fresh):
            if isinstance(expiry, UnknownExpiry):
                continue  # kept while live, never granted
            if options.in_scope(cell):
                grants[latest_day(expiry, today)].add(cell)
            elif cell[0] in read:  # a user not read has changes nobody knows: not counted as known ones
                out_of_scope += 1
    trust = options.unrecorded == "trust"
    beyond: set[Cell] = set()
    # the ledger's own rows when it has them: two lookups in C per cell rather than a method call
    row_of = ledger.rows().get if isinstance(ledger, Ledger) else _rows(ledger).get
    nothing: Mapping[Target, dt.date] = {}
    for cell, expiry in desired.expiries_of(kept):
        recorded = row_of(cell[0], nothing).get(cell[1])
        # a steady state is millions of live cells with their recorded expiry: decided inline, no call
        if type(expiry) is dt.date and (recorded == expiry or (recorded is None and trust)):
            day = None
        else:
            # a rolling grant can never have been set later than today + ttl: such a ledger day was edited, and
            # is ignored (state only narrows); a later fixed day is a policy change, granted again as usual
            if isinstance(expiry, Rolling) and recorded is not None and recorded > latest_day(expiry, today):
                beyond.add(cell)
            day = _wanted_day(expiry, recorded, today, options.unrecorded)
        if unconfirmed and day is None and cell in unconfirmed:
            day = recorded  # sent once to a live cell, which no read can confirm: the same day again
        if day is None:
            unchanged += 1
            if (
                options.regrant
                and recorded is not None
                and options.in_scope(cell)
                and not isinstance(expiry, UnknownExpiry)
            ):
                regrantable[recorded].add(cell)  # (an unknown expiry is never sent, not even as a don't-care)
        elif not options.in_scope(cell):
            out_of_scope += 1
        else:
            grants[day].add(cell)
    revokes: set[Cell] = set()
    protected: set[Cell] = set()
    unmanaged: set[Cell] = set()
    for cell in filterfalse(wanted.__contains__, snapshot.cells()):
        user, target = cell
        if not desired.is_managed(target):
            unmanaged.add(cell)
        elif user in desired.protected:
            protected.add(cell)
        elif not options.in_scope(cell):
            out_of_scope += 1
        elif options.additive:
            skipped += 1
        else:
            revokes.add(cell)
    revocable: dict[str, frozenset[Target]] = {}
    if revokes:
        every = frozenset(t for _, t in revokes)
        managed = every if desired.managed is None else desired.managed | desired.removed
        if options.targets is not None:
            managed &= options.targets
        targets_of: dict[str, set[Target]] = defaultdict(set)
        for user, target in wanted:
            targets_of[user].add(target)
        for user in {u for u, _ in revokes}:
            revocable[user] = frozenset(managed - targets_of.get(user, set()))
    return Changes(
        grants=_with_fresh(grants, only_day, fresh),
        revokes=frozenset(revokes),
        revocable=revocable,
        regrantable=dict(regrantable),
        protected=frozenset(protected),
        unmanaged=frozenset(unmanaged),
        unchanged=unchanged,
        skipped_revokes=skipped,
        out_of_scope=out_of_scope,
        beyond_policy=frozenset(beyond),
    )


def _rows(recorded: Mapping[Cell, dt.date]) -> dict[str, dict[Target, dt.date]]:
    rows: dict[str, dict[Target, dt.date]] = defaultdict(dict)
    for (user, target), day in recorded.items():
        rows[user][target] = day
    return rows


def _with_fresh(
    grants: dict[dt.date, set[Cell]], only_day: dt.date | None, fresh: Set[Cell]
) -> dict[dt.date, Set[Cell]]:
    """The grants by day, with the cells not live added on their one day (when they all share one)."""
    by_day: dict[dt.date, Set[Cell]] = dict(grants)
    if only_day is not None and fresh:
        by_day[only_day] = fresh | grants[only_day] if only_day in grants else fresh
    return by_day


def _only_fresh_day(desired: Desired, today: dt.date) -> dt.date | None:
    """The one day every desired cell is granted on, if there is one (the expiries are a few shared objects)."""
    distinct = desired.distinct_expiries()
    if any(isinstance(expiry, UnknownExpiry) for expiry in distinct):
        return None  # those cells are not granted at all: decided one by one
    days = {latest_day(expiry, today) for expiry in distinct}
    return days.pop() if len(days) == 1 else None


def _wanted_day(
    expiry: Expiry,
    recorded: dt.date | None,
    today: dt.date,
    unrecorded: UnrecordedRule,
) -> dt.date | None:
    """The expiry day to re-grant a live cell, or None when it already serves the policy."""
    if isinstance(expiry, UnknownExpiry):
        return None
    if isinstance(expiry, Rolling):
        if recorded is not None and expiry.keeps(recorded, today):
            return None
        if recorded is None and unrecorded == "trust":
            return None
        return latest_day(expiry, today)
    if recorded is None:
        return None if unrecorded == "trust" else expiry
    return None if recorded == expiry else expiry
