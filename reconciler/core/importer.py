"""`import`: turn a tenant's live grants into policy that reproduces them, so a team can adopt reconciler
without its first plan revoking everything the hand-written policy forgets.

Users get readable aliases (their account names); a Quick BI group whose members all hold exactly the same
grants is used as a policy group; users (and groups) with the same targets and expiry share one grant
statement. Expiries come from the ledger where it knows them; others are left to the default (`never`), which
reproduces them without a change, since a live grant whose expiry is unknown is trusted.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.core.policy import NEVER
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Cell, Target

HEADER = (
    "# Imported by `reconciler import` from the live grants of target '{target}' on {day}.\n"
    "# Statements: {statements} for {rows} distinct user x target rows ({ratio:.2f} per row).\n"
    "# Grants without `expires` never expire, or had no expiry recorded in the ledger (then kept as they are).\n"
)


@dataclass(frozen=True)
class Imported:
    text: str
    users: int
    groups: int
    statements: int
    distinct_rows: int

    @property
    def statements_per_row(self) -> float:
        return self.statements / self.distinct_rows if self.distinct_rows else 0.0


def import_policy(
    target: str,
    accounts: Mapping[str, str],
    quickbi_groups: Mapping[str, frozenset[str]],
    live: Snapshot,
    ledger: Mapping[Cell, dt.date],
    names: Mapping[Target, str],
    managed: frozenset[Target] | None,
    today: dt.date,
) -> Imported:
    """Policy YAML reproducing `live` on the `managed` targets (all targets if None)."""
    rows: dict[str, dict[Target, dt.date | None]] = {}
    for user, targets in sorted(live.grants.items()):
        # an expiry the ledger does not know is written as the default, `never`: the plan then trusts the
        # live grant as it is (`--unrecorded trust`), so the round trip changes nothing
        kept = {t: _known(ledger.get((user, t))) for t in targets if managed is None or t in managed}
        if kept:
            rows[user] = kept
    aliases = _user_aliases(accounts, rows)
    group_of, group_names = _groups(quickbi_groups, rows, set(aliases.values()))
    principals: dict[str, dict[Target, dt.date | None]] = {}
    for user, row in rows.items():
        principals[group_of.get(user) or aliases[user]] = row
    statements: dict[tuple[dt.date | None, frozenset[Target]], list[str]] = defaultdict(list)
    for principal, row in principals.items():
        by_day: dict[dt.date | None, set[Target]] = defaultdict(set)
        for cell_target, day in row.items():
            by_day[day].add(cell_target)
        for day, day_targets in by_day.items():
            statements[(day, frozenset(day_targets))].append(principal)
    resources = _resource_aliases(names, {t for row in rows.values() for t in row} | set(managed or ()))
    document: dict[str, Any] = {
        "version": 1,
        "defaults": {"expires": "never"},
        "users": {aliases[u]: _user_ref(u, accounts) for u in sorted(rows) if u not in group_of},
        "groups": {name: {"quickbi_group": group} for name, group in sorted(group_names.items())},
        "resources": {
            "llm_cubes": {a: _target_ref(t) for t, a in sorted(resources.items()) if t.kind != "theme"},
            "themes": {a: {"id": t.id} for t, a in sorted(resources.items()) if t.kind == "theme"},
        },
        "grants": [
            _statement(sorted(principals_), targets, day, resources)
            for (day, targets), principals_ in sorted(statements.items(), key=_statement_order)
        ],
    }
    distinct_rows = len({frozenset(row.items()) for row in rows.values()})
    header = HEADER.format(
        target=target,
        day=today.isoformat(),
        statements=len(statements),
        rows=distinct_rows,
        ratio=len(statements) / distinct_rows if distinct_rows else 0.0,
    )
    text = header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)
    return Imported(text, len(document["users"]), len(group_names), len(statements), distinct_rows)


def _known(day: dt.date | None) -> dt.date | None:
    return None if day == NEVER else day


def _statement_order(item: tuple[tuple[dt.date | None, frozenset[Target]], list[str]]) -> tuple[Any, ...]:
    (day, targets), principals = item
    return (-len(principals), day or dt.date.max, sorted(targets))


def _statement(
    principals: list[str], targets: frozenset[Target], day: dt.date | None, resources: Mapping[Target, str]
) -> dict[str, Any]:
    statement: dict[str, Any] = {"to": principals}
    cubes = sorted(resources[t] for t in targets if t.kind != "theme")
    themes = sorted(resources[t] for t in targets if t.kind == "theme")
    if cubes:
        statement["llm_cubes"] = cubes
    if themes:
        statement["themes"] = themes
    if day is not None:
        statement["expires"] = day.isoformat()
    return statement


def _slug(text: str) -> str:
    slug = re.sub(r"[^0-9A-Za-z\u4e00-\u9fff]+", "-", text).strip("-").lower()
    return slug or "x"


def _unique(wanted: str, taken: set[str]) -> str:
    name, number = wanted, 2
    while name in taken or name.startswith(("id:", "account:")):
        name = f"{wanted}-{number}"
        number += 1
    taken.add(name)
    return name


def _user_aliases(accounts: Mapping[str, str], rows: Mapping[str, object]) -> dict[str, str]:
    taken: set[str] = set()
    return {user: _unique(_slug(accounts.get(user) or user), taken) for user in sorted(rows)}


def _user_ref(user: str, accounts: Mapping[str, str]) -> dict[str, str]:
    account = accounts.get(user)
    unique = account and sum(1 for a in accounts.values() if a == account) == 1
    return {"account": account} if unique and account else {"id": user}


def _groups(
    quickbi_groups: Mapping[str, frozenset[str]], rows: Mapping[str, Mapping[Target, dt.date | None]], taken: set[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Quick BI groups of two or more members who all hold exactly the same grants, largest first; each user
    is brought in by one group at most. Returns user -> policy group name, and policy group -> Quick BI group."""
    group_of: dict[str, str] = {}
    names: dict[str, str] = {}
    for group, members in sorted(quickbi_groups.items(), key=lambda item: (-len(item[1]), item[0])):
        if len(members) < 2 or any(m not in rows or m in group_of for m in members):
            continue
        first = rows[next(iter(members))]
        if all(rows[m] == first for m in members):
            name = _unique(_slug(group), taken)
            names[name] = group
            group_of.update(dict.fromkeys(members, name))
    return group_of, names


def _resource_aliases(names: Mapping[Target, str], targets: set[Target]) -> dict[Target, str]:
    taken: set[str] = set()
    return {t: _unique(_slug(names.get(t) or t.id), taken) for t in sorted(targets)}


def _target_ref(target: Target) -> dict[str, str]:
    return {"dataset": target.id} if target.kind == "dataset" else {"id": target.id}
