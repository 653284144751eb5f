"""Diff: what to grant (by expiry), revoke, keep, and leave alone; the ledger decides re-grants."""

from __future__ import annotations

import datetime as dt

from reconciler.cells import Target
from reconciler.diff import DiffOptions, diff
from reconciler.policy import Rolling
from reconciler.resolve import Desired
from reconciler.snapshot import Snapshot

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
    changes = diff(want, live, {("alice", SALES): NEVER}, TODAY)
    assert changes.regrantable == {NEVER: frozenset({("alice", SALES)})}
