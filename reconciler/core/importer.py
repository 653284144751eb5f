"""`import`: turn a tenant's live grants into policy that reproduces them exactly and reads like one written by
hand, so a team can adopt reconciler without its first plan revoking what the policy forgets.

Users become aliases (their account names). Their grants are mined into roles (`roles.mine_roles`): each role
is a group of users and the targets they all hold, and one grant statement gives the group its targets, so a
tenant whose access follows a few dozen roles reads as a few dozen statements. A Quick BI user group whose
active members are exactly a role's users is used as that group; a role of one user is granted to the user.

Expiries: where the ledger knows a cell's expiry it is written; where it does not, the statement says
`expires: unknown`, which keeps the live grant as it is (never renewed, shortened or granted again once it
lapses). Deactivated users cannot hold policy grants: they are left out and counted, as are live grants on
targets Quick BI no longer lists.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.core.policy import NEVER
from reconciler.core.roles import Role, mine_roles
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.base import plural
from reconciler.vocabulary.cells import Cell, Target

UNKNOWN_EXPIRY = "unknown"
MEMBERS_ON_ONE_LINE = 8  # longer member lists are written one per line, to read and diff
# a column of the mined matrix: a target and the expiry its statement must carry ("never", a day, "unknown")
Column = tuple[Target, str]


@dataclass(frozen=True)
class Imported:
    text: str
    users: int  # users declared
    groups: int  # policy groups written (roles of two or more users)
    quickbi_groups: int  # of which Quick BI user groups
    roles: int
    statements: int
    cells: int  # live cells the policy reproduces
    distinct_rows: int  # distinct (target, expiry) sets among users
    unknown_expiry_cells: int
    deactivated_users: int
    deactivated_cells: int
    unlisted_cells: int  # live grants on targets Quick BI does not list: not expressible as policy

    @property
    def cells_per_statement(self) -> float:
        return self.cells / self.statements if self.statements else 0.0

    def report(self) -> list[str]:
        """What was found and written, and what could not be, for the person adopting the tenant."""
        lines = [
            f"{plural(self.roles, 'role')} found for {plural(self.distinct_rows, 'distinct access pattern')}: "
            f"{plural(self.statements, 'grant statement')} reproduce {self.cells:,} live cells "
            f"({self.cells_per_statement:,.1f} per statement), with {plural(self.groups, 'group')} "
            f"({self.quickbi_groups} from Quick BI user groups) and {plural(self.users, 'user')}."
        ]
        if self.unknown_expiry_cells:
            lines.append(
                f"{plural(self.unknown_expiry_cells, 'live cell')} had no expiry in the ledger: written as "
                "`expires: unknown`, kept as they are (never renewed, and not granted again once they lapse)."
            )
        if self.deactivated_cells:
            lines.append(
                f"{plural(self.deactivated_users, 'deactivated user')}, holding "
                f"{plural(self.deactivated_cells, 'live cell')} on managed targets: left out of the policy, so the "
                "next apply revokes those grants."
            )
        if self.unlisted_cells:
            lines.append(
                f"{plural(self.unlisted_cells, 'live cell')} on targets Quick BI no longer lists could not be "
                "expressed as policy: left out, and left alone."
            )
        return lines


def import_policy(
    target: str,
    accounts: Mapping[str, str],
    quickbi_groups: Mapping[str, frozenset[str]],
    live: Snapshot,
    ledger: Mapping[Cell, dt.date],
    names: Mapping[Target, str],
    managed: frozenset[Target] | None,
    today: dt.date,
    deactivated: Collection[str] = frozenset(),
    protected: Collection[str] = frozenset(),
    listed: Collection[Target] | None = None,
) -> Imported:
    """Policy YAML reproducing `live` on the `managed` targets (all targets if None). `listed` are the targets
    Quick BI lists (None: every live one); a grant on another cannot be declared, and is left out. Targets
    named by dataset ID are not in Quick BI's lists, and are taken as they are."""
    rows: dict[str, frozenset[Column]] = {}
    dropped_users: set[str] = set()
    dropped = unlisted = 0
    for user, targets in sorted(live.grants.items()):
        kept = [t for t in targets if managed is None or t in managed]
        known = [t for t in kept if listed is None or t in listed or t.kind == "dataset"]
        unlisted += len(kept) - len(known)
        if not known:
            continue
        if user in deactivated:
            dropped_users.add(user)
            dropped += len(known)
            continue
        rows[user] = frozenset((t, _expiry(ledger.get((user, t)), today)) for t in known)
    roles = mine_roles(rows)
    aliases = _user_aliases(accounts, rows)
    resources = _resource_aliases(names, {t for row in rows.values() for t, _ in row} | set(managed or ()))
    principals, groups, quickbi = _principals(roles, aliases, quickbi_groups, set(aliases.values()), resources)
    statements = _statements(roles, principals, resources)
    referenced = {
        user
        for role, name in zip(roles, principals, strict=True)
        if "members" in groups.get(name, {}) or name not in groups
        for user in role.users
    }
    listed_users = sorted(referenced | (set(protected) & set(accounts)), key=lambda u: aliases.get(u) or u)
    taken = set(aliases.values())
    for user in listed_users:
        if user not in aliases:  # a protected user without grants
            aliases[user] = _unique_alias(user, accounts, taken)
    sections: dict[str, Any] = {
        "version": 1,
        "users": {aliases[u]: _user_ref(u, accounts) for u in sorted(listed_users, key=aliases.__getitem__)},
    }
    resource_section = {
        "llm_cubes": {a: _target_ref(t) for a, t in sorted((a, t) for t, a in resources.items() if t.kind != "theme")},
        "themes": {a: {"id": t.id} for a, t in sorted((a, t) for t, a in resources.items() if t.kind == "theme")},
    }
    cells = sum(map(len, rows.values()))
    unknown = sum(1 for row in rows.values() for _, expiry in row if expiry == UNKNOWN_EXPIRY)
    header = _header(target, today, len(roles), len(statements), cells, unknown)
    text = header + _dump(sections)
    text += _groups_text(groups, roles, principals, aliases)
    text += _dump({"resources": {k: v for k, v in resource_section.items() if v}, "grants": statements})
    if protected:
        text += _dump({"protected_users": sorted(aliases[u] for u in protected if u in aliases)})
    return Imported(
        text=text,
        users=len(listed_users),
        groups=len(groups),
        quickbi_groups=quickbi,
        roles=len(roles),
        statements=len(statements),
        cells=cells,
        distinct_rows=len(set(rows.values())),
        unknown_expiry_cells=unknown,
        deactivated_users=len(dropped_users),
        deactivated_cells=dropped,
        unlisted_cells=unlisted,
    )


def _expiry(recorded: dt.date | None, today: dt.date) -> str:
    """How a cell's expiry is written: the ledger's day, or unknown. A recorded day already past cannot be a
    live grant's (Quick BI drops grants that lapsed): the ledger is wrong there, and the expiry unknown."""
    if recorded is None or recorded < today:
        return UNKNOWN_EXPIRY
    return "never" if recorded == NEVER else recorded.isoformat()


def _header(target: str, today: dt.date, roles: int, statements: int, cells: int, unknown: int) -> str:
    lines = [
        f"# Imported by `reconciler import` from the live grants of target '{target}' on {today.isoformat()}.",
        f"# {plural(roles, 'role')} mined from {cells:,} live cells, written as "
        f"{plural(statements, 'grant statement')}.",
        "# A grant without `expires` never expires; `expires: unknown` keeps a grant whose expiry was never",
        "# recorded as it is, and does not grant it again once it lapses.",
    ]
    if unknown:
        lines.append(f"# Without a recorded expiry (expires: unknown): {plural(unknown, 'cell')}.")
    return "\n".join(lines) + "\n"


def _dump(section: dict[str, Any]) -> str:
    return yaml.safe_dump(section, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)


def _principals(
    roles: list[Role[str, Column]],
    aliases: Mapping[str, str],
    quickbi_groups: Mapping[str, frozenset[str]],
    taken: set[str],
    resources: Mapping[Target, str],
) -> tuple[list[str], dict[str, dict[str, Any]], int]:
    """Who each role's statements go to: its one user, a Quick BI group with exactly its users, or a new group
    named after what it grants. Returns the principal per role, the groups to declare, and how many are Quick
    BI groups."""
    by_members = {members: name for name, members in sorted(quickbi_groups.items()) if members}
    principals: list[str] = []
    groups: dict[str, dict[str, Any]] = {}
    quickbi = 0
    for role in roles:
        existing = by_members.get(frozenset(role.users))
        if existing is not None:
            name = _unique(_slug(existing), taken)
            groups[name] = {"quickbi_group": existing}
            quickbi += 1
        elif len(role.users) == 1:
            name = aliases[next(iter(role.users))]
        else:
            name = _unique(_role_name(role, resources), taken)
            groups[name] = {"members": sorted(aliases[u] for u in role.users)}
        principals.append(name)
    return principals, groups, quickbi


def _role_name(role: Role[str, Column], resources: Mapping[Target, str]) -> str:
    """Readable and deterministic: the aliases of what the role grants, the first two and how many more."""
    targets = sorted({resources[t] for t, _ in role.permissions})
    if len(targets) <= 2:
        return "can-" + "-".join(targets)
    return f"can-{targets[0]}-and-{len(targets) - 1}-more"


def _groups_text(
    groups: Mapping[str, dict[str, Any]],
    roles: list[Role[str, Column]],
    principals: list[str],
    aliases: Mapping[str, str],
) -> str:
    """The groups, each with a comment saying how many users and targets it covers."""
    if not groups:
        return ""
    role_of = {name: role for role, name in zip(roles, principals, strict=True) if name in groups}
    lines = ["groups:"]
    for name in sorted(groups):
        role = role_of[name]
        targets = len({t for t, _ in role.permissions})
        lines.append(f"  # {plural(len(role.users), 'user')}, {plural(targets, 'target')}")
        members = groups[name].get("members")
        if members is not None and len(members) > MEMBERS_ON_ONE_LINE:
            lines += [f"  {name}:", "    members:", *(f"      - {_dump(m).splitlines()[0]}" for m in members)]
        else:
            lines.extend("  " + line for line in _dump({name: groups[name]}).splitlines())
    return "\n".join(lines) + "\n"


def _statements(
    roles: list[Role[str, Column]], principals: list[str], resources: Mapping[Target, str]
) -> list[dict[str, Any]]:
    """One statement per (targets, expiry), to every role that has exactly that part; largest first."""
    parts: dict[tuple[str, frozenset[Target]], list[str]] = defaultdict(list)
    for role, principal in zip(roles, principals, strict=True):
        by_expiry: dict[str, set[Target]] = defaultdict(set)
        for target, expiry in role.permissions:
            by_expiry[expiry].add(target)
        for expiry, targets in by_expiry.items():
            parts[(expiry, frozenset(targets))].append(principal)
    ordered = sorted(parts.items(), key=lambda item: (-len(item[1]), item[0][0], sorted(map(str, item[0][1]))))
    return [_statement(sorted(to), targets, expiry, resources) for (expiry, targets), to in ordered]


def _statement(
    principals: list[str], targets: frozenset[Target], expiry: str, resources: Mapping[Target, str]
) -> dict[str, Any]:
    statement: dict[str, Any] = {"to": principals}
    cubes = sorted(resources[t] for t in targets if t.kind != "theme")
    themes = sorted(resources[t] for t in targets if t.kind == "theme")
    if cubes:
        statement["llm_cubes"] = cubes
    if themes:
        statement["themes"] = themes
    if expiry != "never":
        statement["expires"] = expiry if expiry == UNKNOWN_EXPIRY else dt.date.fromisoformat(expiry)
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
    return {user: _unique_alias(user, accounts, taken) for user in sorted(rows)}


def _unique_alias(user: str, accounts: Mapping[str, str], taken: set[str]) -> str:
    return _unique(_slug(accounts.get(user) or user), taken)


def _user_ref(user: str, accounts: Mapping[str, str]) -> dict[str, str]:
    account = accounts.get(user)
    unique = account and sum(1 for a in accounts.values() if a == account) == 1
    return {"account": account} if unique and account else {"id": user}


def _resource_aliases(names: Mapping[Target, str], targets: set[Target]) -> dict[Target, str]:
    taken: set[str] = set()
    return {t: _unique(_slug(names.get(t) or t.id), taken) for t in sorted(targets)}


def _target_ref(target: Target) -> dict[str, str]:
    return {"dataset": target.id} if target.kind == "dataset" else {"id": target.id}
