"""Diff: what to grant (by expiry), revoke, keep, and leave alone; the ledger decides re-grants."""

from __future__ import annotations

import datetime as dt
import random

from reconciler.core.diff import DiffOptions, diff
from reconciler.core.policy import UNKNOWN, Rolling
from reconciler.core.resolve import CellExpiries, Desired
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Target

TODAY = dt.date(2026, 11, 23)
NEVER = dt.date(2099, 12, 31)
SALES, OPS, Q4 = Target("llm_cube", "c-sales"), Target("llm_cube", "c-ops"), Target("theme", "t-q4")


def desired(cells: dict, protected: frozenset[str] = frozenset()) -> Desired:
    return Desired(cells, frozenset({SALES, Q4}), protected, {}, {}, "sha256:x")


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


def _reference(want: Desired, live: Snapshot, ledger: dict, options: DiffOptions) -> tuple[dict, frozenset, int, int]:
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
        if day is None:
            unchanged += 1
        elif not options.in_scope(cell):
            out_of_scope += cell[0] in live.grants  # a user not read has no known changes
        else:
            grants.setdefault(day, set()).add(cell)
    undesired = [c for c in live.cells() if c not in want.cells and c[0] not in want.protected]
    out_of_scope += sum(not options.in_scope(c) for c in undesired)
    return grants, frozenset(filter(options.in_scope, undesired)), unchanged, out_of_scope


def test_set_algebra_matches_the_rules_cell_by_cell() -> None:
    """The diff works on whole sets (onboardings of millions of cells); every case it shortcuts is checked
    against the rules applied one cell at a time, over mixes of live, recorded, rolling and scoped cells."""
    rng = random.Random(7)
    users = [f"u{i}" for i in range(12)]
    targets = [SALES, Q4]
    rolling = Rolling(ttl=30, renew_within=7)
    expiries: list = [NEVER, dt.date(2027, 6, 30), rolling]
    for case in range(300):
        shared = rng.sample(expiries, rng.choice((1, 1, 2, 3)))  # one expiry for all: the onboarding shortcut
        cells = {(u, t): rng.choice(shared) for u in users for t in targets if rng.random() < 0.6}
        live = Snapshot({u: frozenset(t for t in targets if rng.random() < 0.4) for u in users if rng.random() < 0.8})
        ledger = {c: rng.choice([NEVER, TODAY + dt.timedelta(days=rng.choice((3, 20)))]) for c in live.cells()}
        options = rng.choice(
            [
                DiffOptions(),
                DiffOptions(unrecorded="regrant"),
                DiffOptions(users=frozenset(users[:4])),
                DiffOptions(targets=frozenset({Q4})),
            ]
        )
        want = desired(cells, frozenset({"u11"}))
        changes = diff(want, live, ledger, TODAY, options)
        grants, revokes, unchanged, out_of_scope = _reference(want, live, ledger, options)
        assert {day: set(c) for day, c in changes.grants.items()} == grants, case
        assert changes.revokes == revokes, case
        assert (changes.unchanged, changes.out_of_scope) == (unchanged, out_of_scope), case


def test_the_distinct_expiries_are_those_some_cell_has() -> None:
    june = dt.date(2027, 6, 30)
    plain = desired({("alice", SALES): NEVER, ("bob", Q4): june, ("carol", Q4): june})
    assert sorted(plain.distinct_expiries()) == [june, NEVER]
    unused = dt.date(2030, 1, 1)  # a statement that wins no cell
    viewed = desired(CellExpiries({("alice", SALES): 0, ("bob", Q4): 2}, [NEVER, unused, june]))
    assert viewed.distinct_expiries() == [NEVER, june]
    # every cell not live is granted on the one day they share, found from those few expiries
    changes = diff(viewed, Snapshot({"alice": frozenset(), "bob": frozenset()}), {}, TODAY)
    assert changes.grants == {NEVER: frozenset({("alice", SALES)}), june: frozenset({("bob", Q4)})}
