"""What a change between two versions of a repository (a pull request's base and head) means for a plan.

A pull request's plan reads live only the users whose access the change touches. That is exact only when the
change is confined to who is granted what: grant statements, groups, users, protection, embeds, tests. A
change of configuration (policy paths, the target's endpoint, state location, read-back mode) or of the set of
managed targets can move grants nobody's statement names, so such a change gets a full plan, and says why.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Set
from typing import Any

from reconciler.core.policy import Expiry, Policy, Rolling, Rule, UnknownExpiry
from reconciler.core.resolve import Desired
from reconciler.vocabulary.base import changed_paths
from reconciler.vocabulary.cells import Cell

MAX_POLICY_CHANGES = 30


def full_plan_reason(before: Desired, after: Desired) -> str | None:
    """Why a change of policy needs a full plan (one line), or None when reading the users it touches is exact."""
    if (before.managed is None) != (after.managed is None):
        return "manage_all_targets changed"
    if before.managed is None:  # every target managed before and after: the grants alone decide
        return None
    if before.managed != after.managed or before.removed != after.removed or before.released != after.released:
        was, now = before.managed or frozenset(), after.managed or frozenset()
        parts = [
            f"{len(now - was)} declared" if now - was else "",
            f"{len(was - now)} no longer declared" if was - now else "",
            f"{len(before.released ^ after.released)} released or unreleased"
            if before.released != after.released
            else "",
        ]
        return f"the managed targets changed ({', '.join(p for p in parts if p) or 'removed targets'})"
    return None


def changed_users(
    before: Desired,
    after: Desired,
    ledger: Mapping[Cell, dt.date],
    today: dt.date,
    unconfirmed: Set[Cell] = frozenset(),
) -> set[str]:
    """The users a full apply after the change could touch, given that the base was applied and nothing moved
    outside the policy since: those whose desired cells or expiries differ, whose protection changed, and those
    the ledger says hold a grant the head does not want, an expiry the head does not want, a rolling grant due
    for renewal, or an `unconfirmed` expiry (a full apply sends those whatever the change)."""
    users = {u for u, _ in unconfirmed}
    users |= {u for (u, t), expiry in after.cells.items() if before.cells.get((u, t)) != expiry}
    users |= {u for u, t in before.cells if (u, t) not in after.cells}
    users |= before.protected ^ after.protected
    for cell, recorded in ledger.items():
        user = cell[0]
        if user in users or user in after.protected or not after.is_managed(cell[1]):
            continue
        wanted = after.cells.get(cell)
        if wanted is None:
            users.add(user)
        elif isinstance(wanted, UnknownExpiry):
            continue  # kept as it is, whatever the ledger says
        elif isinstance(wanted, Rolling):
            if not wanted.keeps(recorded, today):
                users.add(user)
        elif recorded != wanted:
            users.add(user)
    return users


def policy_changes(base: Policy, head: Policy) -> list[str]:
    """What a pull request changes in the policy, by path, for the top of its plan: `+ groups.sales.members:
    ivan`, `- grants.to sales: llm_cubes sales` (a statement gone), `~ grants.to ivan: themes q4` (its expiry).
    At most MAX_POLICY_CHANGES lines, then how many more."""
    lines = [f"{sign} {path}" for sign, path in changed_paths(_policy_view(base), _policy_view(head))]
    if len(lines) > MAX_POLICY_CHANGES:
        lines = [*lines[:MAX_POLICY_CHANGES], f"… and {len(lines) - MAX_POLICY_CHANGES} more"]
    return lines


def _policy_view(policy: Policy) -> dict[str, Any]:
    """A policy as plain data without file locations, so that moving a statement between files is no change."""
    seen: Counter[str] = Counter()
    grants: dict[str, str] = {}
    for rule in policy.rules:
        name = _statement(rule)
        seen[name] += 1
        grants[name if seen[name] == 1 else f"{name} #{seen[name]}"] = _expiry(rule.expires)
    return {
        "users": {alias: user.ref.model_dump(exclude_none=True) for alias, user in policy.users.items()},
        "groups": {
            name: {"members": list(group.members), "quickbi_group": group.quickbi_group}
            for name, group in policy.groups.items()
        },
        "resources": {
            f"{kind}s.{alias}": resource.ref.model_dump(exclude_none=True)
            for (kind, alias), resource in policy.resources.items()
        },
        "grants": grants,
        "protected_users": [name for name, _ in policy.protected],
        "released": [f"{name.kind}:{name.name}" for name in policy.released],
        "manage_all_targets": policy.manage_all_targets,
        "copilot_embeds": {
            name: {
                "copilot_id": embed.copilot_id,
                "to": [who for who, _ in embed.principals],
                "data_range": "all" if embed.data_range is None else [t.name for t in embed.data_range],
                "max_uses": embed.max_uses,
                "max_minutes": embed.max_minutes,
            }
            for name, embed in policy.embeds.items()
        },
        "dataarts_embeds": {
            name: {"embed_id": embed.embed_id, "holders": sorted(embed.holders), "max_uses": embed.max_uses}
            for name, embed in policy.dataarts_embeds.items()
        },
    }


def _statement(rule: Rule) -> str:
    """A grant statement named by what it grants to whom (its expiry is its value)."""
    by_kind: dict[str, list[str]] = {}
    for target in rule.targets:
        by_kind.setdefault(f"{target.kind}s", []).append(target.name)
    granted = "; ".join(f"{kind} {', '.join(names)}" for kind, names in sorted(by_kind.items()))
    return f"to {', '.join(name for name, _ in rule.principals)}: {granted}"


def _expiry(expires: Expiry) -> str:
    return expires.describe() if isinstance(expires, Rolling | UnknownExpiry) else expires.isoformat()
