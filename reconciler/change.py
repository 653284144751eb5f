"""What a change between two versions of a repository (a pull request's base and head) means for a plan.

A pull request's plan reads live only the users whose access the change touches. That is exact only when the
change is confined to who is granted what: grant statements, groups, users, protection, embeds, tests. A
change of configuration (policy paths, the target's endpoint, state location, read-back mode) or of the set of
managed targets can move grants nobody's statement names, so such a change gets a full plan, and says why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from reconciler.cells import Cell
from reconciler.policy import Rolling
from reconciler.resolve import Desired


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


def changed_users(before: Desired, after: Desired, ledger: Mapping[Cell, dt.date], today: dt.date) -> set[str]:
    """The users a full apply after the change could touch, given that the base was applied and nothing moved
    outside the policy since: those whose desired cells or expiries differ, whose protection changed, and those
    the ledger says hold a grant the head does not want, an expiry the head does not want, or a rolling grant
    due for renewal (a full apply renews it whatever the change)."""
    users = {u for (u, t), expiry in after.cells.items() if before.cells.get((u, t)) != expiry}
    users |= {u for u, t in before.cells if (u, t) not in after.cells}
    users |= before.protected ^ after.protected
    for cell, recorded in ledger.items():
        user = cell[0]
        if user in users or user in after.protected or not after.is_managed(cell[1]):
            continue
        wanted = after.cells.get(cell)
        if wanted is None:
            users.add(user)
        elif isinstance(wanted, Rolling):
            if (recorded - today).days <= wanted.renew_within or recorded > today + dt.timedelta(days=wanted.ttl):
                users.add(user)
        elif recorded != wanted:
            users.add(user)
    return users
