"""What a pull request's change means for its plan: exact when confined to grants, full otherwise."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from reconciler.application.config import config_changes, load_config
from reconciler.core.change import changed_users, full_plan_reason
from reconciler.core.policy import NEVER, Rolling
from reconciler.core.resolve import Desired, DesiredCells
from reconciler.vocabulary.cells import Target

TODAY = dt.date(2026, 11, 23)
SALES, Q4, OPS = Target("llm_cube", "c-sales"), Target("theme", "t-q4"), Target("llm_cube", "c-ops")


def desired(cells: dict, managed: frozenset | None = frozenset({SALES, Q4}), **more: object) -> Desired:
    protected = more.pop("protected", frozenset())
    return Desired(DesiredCells.of(cells), managed, protected, {}, {}, "", **more)  # type: ignore[arg-type]


def test_config_changes_name_the_settings_of_the_target(tmp_path: Path) -> None:
    base, head = tmp_path / "base.yaml", tmp_path / "head.yaml"
    text = (
        "policies: policies/\ntargets:\n  prod: {quickbi: {region: cn-hongkong}, qps: 40}\n"
        "  other: {quickbi: {region: ap-southeast-1}}\n"
    )
    base.write_text(text)
    head.write_text(text.replace("qps: 40", "qps: 20, state_dir: s").replace("ap-southeast-1", "ap-southeast-3"))
    assert config_changes(load_config(base), load_config(head), "prod") == [
        "targets.prod.qps",
        "targets.prod.state_dir",
    ]
    assert config_changes(load_config(base), load_config(base), "prod") == []  # another target's edit is not ours
    head.write_text(text.replace("policies: policies/", "policies: [policies/, more/]"))
    assert config_changes(load_config(base), load_config(head), "prod") == ["policies: more"]


def test_a_change_of_managed_targets_needs_a_full_plan() -> None:
    same = desired({("a", SALES): NEVER})
    assert full_plan_reason(same, desired({("b", SALES): NEVER})) is None
    assert (
        full_plan_reason(same, desired({}, frozenset({SALES, Q4, OPS}))) == "the managed targets changed (1 declared)"
    )
    assert full_plan_reason(same, desired({}, None)) == "manage_all_targets changed"
    assert (
        full_plan_reason(same, desired({}, removed=frozenset({OPS}))) == "the managed targets changed (removed targets)"
    )
    assert full_plan_reason(desired({}, None), desired({("a", OPS): NEVER}, None)) is None


def test_changed_users_include_what_the_ledger_says_a_full_apply_would_touch() -> None:
    rolling = Rolling(ttl=30, renew_within=7)
    before = desired({("a", SALES): NEVER, ("due", Q4): rolling, ("fresh", Q4): rolling, ("late", SALES): NEVER})
    after = desired({("a", SALES): NEVER, ("due", Q4): rolling, ("fresh", Q4): rolling, ("late", SALES): NEVER})
    ledger = {
        ("a", SALES): NEVER,  # as wanted: not read
        ("due", Q4): TODAY + dt.timedelta(days=3),  # renewal due: a full apply renews it
        ("fresh", Q4): TODAY + dt.timedelta(days=20),
        ("late", SALES): dt.date(2030, 1, 1),  # expiry differs from policy
        ("gone", SALES): NEVER,  # a grant nothing wants (a lapsed statement)
        ("elsewhere", OPS): NEVER,  # not managed: never touched
    }
    assert changed_users(before, after, ledger, TODAY) == {"due", "late", "gone"}
    moved = desired({("a", SALES): NEVER, ("b", Q4): NEVER}, protected=frozenset({"p"}))  # type: ignore[arg-type]
    assert changed_users(desired({("a", SALES): NEVER}), moved, {}, TODAY) == {"b", "p"}


def test_policy_changes_name_paths_and_ignore_where_a_statement_lives(tmp_path: Path) -> None:
    from reconciler.core.change import policy_changes
    from reconciler.core.policy import load_policy

    base, head = tmp_path / "base", tmp_path / "head"
    base.mkdir()
    head.mkdir()
    users = "version: 1\nusers: {a: {account: a}, b: {account: b}}\ngroups: {g: {members: [a]}}\n"
    grant = "version: 1\nresources: {llm_cubes: {s: {id: c-s}}}\ngrants:\n  - {to: [g], llm_cubes: [s]}\n"
    (base / "one.yaml").write_text(users + "grants:\n  - {to: [b], llm_cubes: [s], expires: 2027-01-01}\n")
    (base / "two.yaml").write_text(grant)
    # head: the statement for b moves to another file with a new expiry, and b joins group g
    (head / "one.yaml").write_text(users.replace("members: [a]", "members: [a, b]"))
    (head / "two.yaml").write_text(grant + "  - {to: [b], llm_cubes: [s], expires: 2027-03-01}\n")
    changes = policy_changes(load_policy([base], TODAY), load_policy([head], TODAY))
    assert changes == ["~ grants.to b: llm_cubes s", "+ groups.g.members: b"]
    assert policy_changes(load_policy([base], TODAY), load_policy([base], TODAY)) == []
