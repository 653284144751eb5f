"""Diff: what to grant (by expiry), revoke, keep, and leave alone; the ledger decides re-grants."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Set
from pathlib import Path

from reconciler.core.diff import DiffOptions, diff
from reconciler.core.ledger import Ledger
from reconciler.core.policy import UNKNOWN, Rolling
from reconciler.core.resolve import Desired, DesiredCells
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import CellRows, Target, shared_rows

TODAY = dt.date(2026, 11, 23)
NEVER = dt.date(2099, 12, 31)
SALES, OPS, Q4 = Target("llm_cube", "c-sales"), Target("llm_cube", "c-ops"), Target("theme", "t-q4")


def desired(cells: dict, protected: frozenset[str] = frozenset()) -> Desired:
    return Desired(DesiredCells.of(cells), frozenset({SALES, Q4}), protected, {}, {}, "sha256:x")


def test_grants_revokes_protected_and_unmanaged() -> None:
    want = desired({("alice", SALES): NEVER, ("bob", Q4): dt.date(2027, 6, 30)}, frozenset({"admin"}))
    live = Snapshot({"alice": frozenset({SALES}), "carol": frozenset({SALES, OPS}), "admin": frozenset({Q4})})
    changes = diff(want, live, {}, TODAY)
    assert changes.grants == {dt.date(2027, 6, 30): frozenset({("bob", Q4)})}
    assert changes.revokes == frozenset({("carol", SALES)})
    assert changes.protected == frozenset({("admin", Q4)})
    assert changes.unmanaged == frozenset({("carol", OPS)})
    assert changes.unchanged == 1
    assert changes.revocable["carol"] == frozenset({SALES, Q4})


def test_additive_never_revokes() -> None:
    changes = diff(desired({}), Snapshot({"carol": frozenset({SALES})}), {}, TODAY, DiffOptions(additive=True))
    assert changes.empty


def test_ledger_mismatch_regrants_and_unrecorded_rule() -> None:
    want = desired({("alice", SALES): NEVER})
    live = Snapshot({"alice": frozenset({SALES})})
    assert diff(want, live, {("alice", SALES): NEVER}, TODAY).empty
    wrong = diff(want, live, {("alice", SALES): dt.date(2027, 1, 1)}, TODAY)
    assert wrong.grants == {NEVER: frozenset({("alice", SALES)})}
    assert diff(want, live, {}, TODAY).empty
    pinned = diff(want, live, {}, TODAY, DiffOptions(unrecorded="regrant"))
    assert pinned.grants == {NEVER: frozenset({("alice", SALES)})}


def test_an_unknown_expiry_keeps_a_live_grant_and_never_grants_renews_or_shortens() -> None:
    want = desired({("alice", SALES): UNKNOWN, ("bob", SALES): UNKNOWN, ("carol", Q4): NEVER})
    live = Snapshot({"alice": frozenset({SALES}), "bob": frozenset(), "carol": frozenset()})
    for unrecorded in ("trust", "regrant"):
        changes = diff(want, live, {}, TODAY, DiffOptions(unrecorded=unrecorded))  # type: ignore[arg-type]
        assert changes.grants == {NEVER: frozenset({("carol", Q4)})} and not changes.revokes
    # whatever the ledger holds, a live grant of unknown expiry is neither renewed nor shortened
    assert diff(want, live, {("alice", SALES): dt.date(2026, 12, 1)}, TODAY).grants == {
        NEVER: frozenset({("carol", Q4)})
    }
    recorded = diff(want, live, {("alice", SALES): NEVER}, TODAY, DiffOptions(regrant=True))
    assert ("alice", SALES) not in recorded.regrantable.get(NEVER, set())  # not even as an --allow-regrant extra
    only_unknown = desired({("bob", SALES): UNKNOWN})
    assert diff(only_unknown, Snapshot({"bob": frozenset()}), {}, TODAY).empty


def test_rolling_expiry_renews_inside_the_window() -> None:
    rolling = Rolling(ttl=30, renew_within=7)
    want = desired({("alice", SALES): rolling})
    live = Snapshot({"alice": frozenset({SALES})})
    fresh = {("alice", SALES): TODAY + dt.timedelta(days=20)}
    assert diff(want, live, fresh, TODAY).empty
    due = {("alice", SALES): TODAY + dt.timedelta(days=5)}
    assert diff(want, live, due, TODAY).grants == {TODAY + dt.timedelta(days=30): frozenset({("alice", SALES)})}
    missing = diff(want, Snapshot({"alice": frozenset()}), {}, TODAY)
    assert missing.grants == {TODAY + dt.timedelta(days=30): frozenset({("alice", SALES)})}


def test_regrantable_cells_are_those_with_a_recorded_expiry() -> None:
    want = desired({("alice", SALES): NEVER, ("bob", SALES): NEVER})
    live = Snapshot({"alice": frozenset({SALES}), "bob": frozenset({SALES})})
    changes = diff(want, live, {("alice", SALES): NEVER}, TODAY, DiffOptions(regrant=True))
    assert changes.regrantable == {NEVER: frozenset({("alice", SALES)})}
    # gathered only for a plan that may re-grant: a steady state's every live cell, otherwise
    assert diff(want, live, {("alice", SALES): NEVER}, TODAY).regrantable == {}


def _reference(
    want: Desired, live: Snapshot, ledger: Mapping, options: DiffOptions, unconfirmed: Set = frozenset()
) -> tuple[dict, frozenset, int, int]:
    """The diff's rules applied one cell at a time, as written in docs/reference.md."""
    grants: dict[dt.date, set] = {}
    unchanged = out_of_scope = 0
    for cell, expiry in want.cells.items():
        is_live = live.has(cell)
        recorded = ledger.get(cell) if is_live else None
        day: dt.date | None
        if isinstance(expiry, Rolling):
            keep = is_live and (
                (recorded is not None and expiry.renew_within < (recorded - TODAY).days <= expiry.ttl)
                or (recorded is None and options.unrecorded == "trust")
            )
            day = None if keep else TODAY + dt.timedelta(days=expiry.ttl)
        elif not is_live:
            day = expiry
        elif recorded is None:
            day = None if options.unrecorded == "trust" else expiry
        else:
            day = None if recorded == expiry else expiry
        if day is None and cell in unconfirmed:
            day = recorded  # sent once, never confirmed: sent again
        if day is None:
            unchanged += 1
        elif not options.in_scope(cell):
            out_of_scope += cell[0] in live.grants  # a user not read has no known changes
        else:
            grants.setdefault(day, set()).add(cell)
    undesired = [
        c for c in live.cells() if c not in want.cells and want.is_managed(c[1]) and c[0] not in want.protected
    ]
    out_of_scope += sum(not options.in_scope(c) for c in undesired)
    return grants, frozenset(filter(options.in_scope, undesired)), unchanged, out_of_scope


def test_the_diff_matches_the_rules_cell_by_cell(tmp_path: Path) -> None:
    """The diff decides once per distinct (desired, live, recorded) row and shares the result among users;
    every case is checked against the rules applied one cell at a time, over users who share rows (as a
    tenant's do) or not, with live, recorded, unconfirmed, rolling and scoped cells."""
    rng = random.Random(7)
    users = [f"u{i:02d}" for i in range(30)]
    targets = [SALES, Q4, OPS]
    rolling = Rolling(ttl=30, renew_within=7)
    expiries: list = [NEVER, dt.date(2027, 6, 30), rolling]
    days = [NEVER, TODAY + dt.timedelta(days=3), TODAY + dt.timedelta(days=20)]
    for case in range(300):
        # a few patterns each of desired, live and recorded rows, shared by the users drawing them
        wanted_rows = [{t: rng.randrange(3) for t in targets if rng.random() < 0.6} for _ in range(3)]
        live_rows = [frozenset(t for t in targets if rng.random() < 0.5) for _ in range(3)]
        recorded_rows = [{t: rng.choice(days) for t in targets if rng.random() < 0.7} for _ in range(3)]
        rows = {u: rng.choice(wanted_rows) for u in users if rng.random() < 0.9}
        want = Desired(
            DesiredCells({u: row for u, row in rows.items() if row}, expiries),
            frozenset({SALES, Q4}),
            frozenset({"u11"}),
            {},
            {},
            "sha256:x",
        )
        live = Snapshot(shared_rows((u, rng.choice(live_rows)) for u in users if rng.random() < 0.8))
        lines = [
            f"{u}\t{day}\t{' '.join(str(t) for t, d in row.items() if d == day)}\n"
            for u in users
            for row in [rng.choice(recorded_rows)]
            for day in sorted(set(row.values()))
        ]
        (tmp_path / "ledger.tsv").write_text("".join(lines))
        ledger = Ledger(tmp_path / "ledger.tsv")
        unconfirmed = {c for c in live.cells() if c in ledger and rng.random() < 0.1}
        options = rng.choice(
            [
                DiffOptions(),
                DiffOptions(unrecorded="regrant"),
                DiffOptions(users=frozenset(users[:8])),
                DiffOptions(targets=frozenset({Q4})),
                DiffOptions(additive=True),
            ]
        )
        changes = diff(want, live, ledger, TODAY, options, unconfirmed)
        grants, revokes, unchanged, out_of_scope = _reference(want, live, ledger, options, unconfirmed)
        if options.additive:
            assert changes.skipped_revokes == len(revokes), case
            revokes = frozenset()
        assert {day: set(c) for day, c in changes.grants.items()} == grants, case
        assert changes.revokes == revokes, case
        assert (changes.unchanged, changes.out_of_scope) == (unchanged, out_of_scope), case
        assert changes.unmanaged == {c for c in live.cells() if c[1] == OPS and c not in want.cells}, case


def test_users_with_the_same_rows_share_their_changes_as_rows() -> None:
    june = dt.date(2027, 6, 30)
    row = {SALES: 0, Q4: 1}
    want = Desired(
        DesiredCells({"alice": row, "bob": row, "carol": row, "dave": {SALES: 1}}, [NEVER, june]),
        frozenset({SALES, Q4}),
        frozenset(),
        {},
        {},
        "sha256:x",
    )
    held = frozenset({SALES})
    live = Snapshot({"alice": held, "bob": held, "carol": held, "dave": frozenset()})
    changes = diff(want, live, {}, TODAY, unconfirmed={("carol", SALES)})
    assert changes.grants == {
        june: {("alice", Q4), ("bob", Q4), ("carol", Q4), ("dave", SALES)},
    }
    granted = changes.grants[june]
    assert isinstance(granted, CellRows) and granted.rows["alice"] is granted.rows["bob"]
    assert changes.unchanged == 3  # carol's unconfirmed cell has no recorded day to send again
