"""Compare what policy wants with what is live (and the expiry ledger) and name every change."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from itertools import chain, filterfalse, product
from typing import Literal, NamedTuple

from reconciler.core.ledger import Ledger
from reconciler.core.policy import Expiry, Rolling, UnknownExpiry, latest_day
from reconciler.core.resolve import Desired
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Cell, CellRows, Target

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
        return self.user_in_scope(cell[0]) and self.target_in_scope(cell[1])

    def user_in_scope(self, user: str) -> bool:
        return self.users is None or user in self.users

    def target_in_scope(self, target: Target) -> bool:
        return self.targets is None or target in self.targets


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
    be read back to confirm (see `ledger`): they are granted again with the policy's day.

    Decided a user at a time, once per distinct (desired row, live row, ledger row): a tenant's users share a
    few hundred of each, so millions of cells cost a lookup per user, and the changes are rows too."""
    options = options or DiffOptions()
    wanted = desired.cells
    recorded = ledger.rows() if isinstance(ledger, Ledger) else _rows(ledger)
    pending: dict[str, set[Target]] = defaultdict(set)
    for user, target in unconfirmed:
        pending[user].add(target)
    decide = _RowDiff(desired, today, options)
    grants: dict[dt.date, dict[str, frozenset[Target]]] = defaultdict(dict)
    regrantable: dict[dt.date, dict[str, frozenset[Target]]] = defaultdict(dict)
    revoked: dict[str, frozenset[Target]] = {}
    protected: list[Cell] = []
    unmanaged: list[Cell] = []
    beyond: list[Cell] = []
    unchanged = skipped = out_of_scope = 0
    users = chain(wanted.rows, filterfalse(wanted.rows.__contains__, snapshot.grants))
    for user in users:
        rows = _UserRows(
            wanted.row(user),
            snapshot.grants.get(user),
            recorded.get(user, _NOTHING_RECORDED),
            user in desired.protected,
            options.user_in_scope(user),
        )
        row = decide(rows, pending.get(user))
        for day, targets in row.grants:
            grants[day][user] = targets
        for day, targets in row.regrantable:
            regrantable[day][user] = targets
        if row.revokes:
            revoked[user] = row.revokes
        if row.protected:
            protected.extend(product((user,), row.protected))
        if row.unmanaged:
            unmanaged.extend(product((user,), row.unmanaged))
        if row.beyond:
            beyond.extend(product((user,), row.beyond))
        unchanged += row.unchanged
        skipped += row.skipped
        out_of_scope += row.out_of_scope
    revokes = CellRows(revoked)
    return Changes(
        grants={day: CellRows(rows) for day, rows in grants.items()},
        revokes=frozenset(revokes),
        revocable=_revocable(desired, revokes, options),
        regrantable={day: CellRows(rows) for day, rows in regrantable.items()},
        protected=frozenset(protected),
        unmanaged=frozenset(unmanaged),
        unchanged=unchanged,
        skipped_revokes=skipped,
        out_of_scope=out_of_scope,
        beyond_policy=frozenset(beyond),
    )


_NOTHING_RECORDED: Mapping[Target, dt.date] = {}


class _UserRows(NamedTuple):
    """What the diff decides one user's changes from."""

    wanted: Mapping[Target, int]  # the desired row: target -> winning statement
    live: frozenset[Target] | None  # None: the user was not read
    recorded: Mapping[Target, dt.date]
    protected: bool
    in_scope: bool  # the user is within the run's --user scope


@dataclass(frozen=True)
class _RowChanges:
    """One user's changes, as targets: shared by every user with the same rows."""

    grants: tuple[tuple[dt.date, frozenset[Target]], ...]
    regrantable: tuple[tuple[dt.date, frozenset[Target]], ...]
    revokes: frozenset[Target]
    protected: frozenset[Target]
    unmanaged: frozenset[Target]
    beyond: frozenset[Target]
    unchanged: int
    skipped: int
    out_of_scope: int


class _RowDiff:
    """A user's changes from their desired, live and recorded rows, remembered per distinct rows."""

    def __init__(self, desired: Desired, today: dt.date, options: DiffOptions) -> None:
        self.expiries = desired.cells.expiries
        self.is_managed = desired.is_managed
        self.today = today
        self.options = options
        self.trust = options.unrecorded == "trust"
        # keyed by the rows' identities: every row is held by desired, snapshot or ledger for the whole diff
        self.decided: dict[tuple[int, int, int, bool, bool], _RowChanges] = {}

    def __call__(self, rows: _UserRows, pending: Set[Target] | None) -> _RowChanges:
        if pending:  # a user with unconfirmed cells: their own decision
            return self._decide(rows, pending)
        key = (id(rows.wanted), id(rows.live), id(rows.recorded), rows.protected, rows.in_scope)
        found = self.decided.get(key)
        if found is None:
            found = self.decided[key] = self._decide(rows, frozenset())
        return found

    def _decide(self, rows: _UserRows, pending: Set[Target]) -> _RowChanges:
        wanted, live, recorded, protected, user_in_scope = rows
        options, today = self.options, self.today

        def in_scope(target: Target) -> bool:  # the user's part is decided once per row
            return user_in_scope and options.target_in_scope(target)

        held = live if live is not None else frozenset()
        grants: dict[dt.date, set[Target]] = defaultdict(set)
        regrantable: dict[dt.date, set[Target]] = defaultdict(set)
        beyond: set[Target] = set()
        unchanged = out_of_scope = skipped = 0
        for target, index in wanted.items():
            expiry = self.expiries[index]
            if target not in held:
                if isinstance(expiry, UnknownExpiry):
                    continue  # kept while live, never granted
                if in_scope(target):
                    grants[latest_day(expiry, today)].add(target)
                elif live is not None:  # a user not read has changes nobody knows: not counted as known ones
                    out_of_scope += 1
                continue
            was = recorded.get(target)
            if type(expiry) is dt.date and (was == expiry or (was is None and self.trust)):
                day = None
            else:
                # a rolling grant can never have been set later than today + ttl: such a ledger day was edited,
                # and is ignored (state only narrows); a later fixed day is a policy change, granted again
                if isinstance(expiry, Rolling) and was is not None and was > latest_day(expiry, today):
                    beyond.add(target)
                day = _wanted_day(expiry, was, today, options.unrecorded)
            if day is None and target in pending:
                day = was  # sent once to a live cell, which no read can confirm: the same day again
            if day is None:
                unchanged += 1
                # (an unknown expiry is never sent, not even as a don't-care)
                if options.regrant and was is not None and in_scope(target) and not isinstance(expiry, UnknownExpiry):
                    regrantable[was].add(target)
            elif not in_scope(target):
                out_of_scope += 1
            else:
                grants[day].add(target)
        revokes: set[Target] = set()
        kept: set[Target] = set()
        unmanaged: set[Target] = set()
        for target in held:
            if target in wanted:
                continue
            if not self.is_managed(target):
                unmanaged.add(target)
            elif protected:
                kept.add(target)
            elif not in_scope(target):
                out_of_scope += 1
            elif options.additive:
                skipped += 1
            else:
                revokes.add(target)
        return _RowChanges(
            grants=tuple((day, frozenset(targets)) for day, targets in grants.items()),
            regrantable=tuple((day, frozenset(targets)) for day, targets in regrantable.items()),
            revokes=frozenset(revokes),
            protected=frozenset(kept),
            unmanaged=frozenset(unmanaged),
            beyond=frozenset(beyond),
            unchanged=unchanged,
            skipped=skipped,
            out_of_scope=out_of_scope,
        )


def _revocable(desired: Desired, revokes: CellRows, options: DiffOptions) -> dict[str, frozenset[Target]]:
    """Per user with a revoke, the targets a revoke batch may touch: managed, not desired (the user is not
    protected, or they would have no revoke)."""
    if not revokes:
        return {}
    managed = (
        frozenset(chain.from_iterable(revokes.rows.values()))
        if desired.managed is None
        else desired.managed | desired.removed
    )
    if options.targets is not None:
        managed &= options.targets
    left: dict[int, frozenset[Target]] = {}  # by desired row: users with the same row share the result
    revocable: dict[str, frozenset[Target]] = {}
    for user in revokes.rows:
        row = desired.cells.row(user)
        if id(row) not in left:
            left[id(row)] = managed - row.keys()
        revocable[user] = left[id(row)]
    return revocable


def _rows(recorded: Mapping[Cell, dt.date]) -> dict[str, dict[Target, dt.date]]:
    rows: dict[str, dict[Target, dt.date]] = defaultdict(dict)
    for (user, target), day in recorded.items():
        rows[user][target] = day
    return rows


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
