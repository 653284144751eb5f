"""Why a user has access, who has access to a target, and policy tests: pure functions over the resolved
policy, the live grants and the ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.core.plan import Plan
from reconciler.core.policy import Expiry, PolicyTest, Rolling, UnknownExpiry
from reconciler.core.resolve import Desired
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Cell, Target
from reconciler.vocabulary.errors import Problem


@dataclass(frozen=True)
class AccessLine:
    """One cell of a user's access: its state, the expiry policy wants and the ledger recorded, and why."""

    user: str
    account: str
    target: str
    target_name: str
    state: str  # granted | to grant | to revoke | protected | unmanaged
    expiry: str | None
    recorded: str | None
    why: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def access_lines(
    desired: Desired,
    live: Snapshot,
    ledger: Mapping[Cell, dt.date],
    users: Collection[str] | None = None,
    targets: Collection[Target] | None = None,
) -> list[AccessLine]:
    """Every desired or live cell of `users` (all if None) on `targets` (all if None), explained."""

    def chosen(cell: Cell) -> bool:
        return (users is None or cell[0] in users) and (targets is None or cell[1] in targets)

    cells = {c for c in desired.cells if chosen(c)} | {c for c in live.cells() if chosen(c)}
    lines = []
    for cell in sorted(cells):
        user, target = cell
        is_live = live.has(cell)
        recorded = ledger.get(cell)
        wanted = desired.cells.get(cell)
        if wanted is not None:
            source = desired.provenance(cell)
            state = "granted" if is_live else "to grant"
            if isinstance(wanted, UnknownExpiry) and not is_live:
                state = "not live"  # never granted: kept only while live
            expiry = _expiry_text(wanted)
            why = str(source) if source else None
        else:
            expiry = None
            if not desired.is_managed(target):
                state, why = "unmanaged", "target not managed by the policy: left alone"
            elif user in desired.protected:
                state, why = "protected", "no grant gives it; kept because the user is protected"
            elif target in desired.removed:
                state, why = "to revoke", "target removed from the policy since the last apply"
            else:
                state, why = "to revoke", "no grant in the policy gives it"
        lines.append(
            AccessLine(
                user,
                desired.directory.get(user, ""),
                str(target),
                desired.target_names.get(target, ""),
                state,
                expiry,
                recorded.isoformat() if recorded else None,
                why,
            )
        )
    return lines


def _expiry_text(expiry: Expiry) -> str:
    if isinstance(expiry, Rolling | UnknownExpiry):
        return expiry.describe()
    return expiry.isoformat()


def end_state(live: Snapshot, plan: Plan) -> set[Cell]:
    """The cells live once `plan` has been applied."""
    return (set(live.cells()) | set(plan.grant_cells())) - plan.revoke_cells()


def check_tests(
    tests: Collection[PolicyTest], desired: Desired, state: Callable[[], set[Cell]] | None = None
) -> list[Problem]:
    """Each failing assertion, at its line. Against `state()` (a planned end state, built only when there are
    tests: it is as large as the tenant), or the policy alone."""
    if not tests:
        return []
    reached = state() if state is not None else set(desired.cells)
    problems: list[Problem] = []
    for test in tests:
        users = desired.users_named(test.user)
        if len(users) != 1:
            what = "no user" if not users else f"{len(users)} users"
            problems.append(Problem(f"test names {what} for '{test.user}'", test.location, "name one user"))
            continue
        (user,) = users
        for ref, location in [*test.can, *test.cannot]:
            if not desired.targets_named(ref):
                problems.append(Problem(f"test names no target '{ref}'", location, "use a resource alias or id:<ID>"))
        for ref, location in test.can:
            missing = [t for t in sorted(desired.targets_named(ref)) if (user, t) not in reached]
            if missing:
                problems.append(
                    Problem(
                        f"test failed: {test.user} cannot reach {ref} ({missing[0]})", location, "no grant gives it"
                    )
                )
        for ref, location in test.cannot:
            for target in sorted(desired.targets_named(ref)):
                if (user, target) in reached:
                    source = desired.provenance((user, target))
                    kept = "still live after this plan: kept, not revoked by it"
                    because = f"granted by {source}" if source else kept
                    problems.append(Problem(f"test failed: {test.user} can reach {ref} ({target})", location, because))
                    break
    return problems


def embed_warnings(desired: Desired) -> list[Problem]:
    """Embeds through which a ticket holder could reach targets their grants do not give them (a ticket is
    access too), unless the embed says `widens_access: true`."""
    embeds = [embed for embed in desired.embeds.values() if not embed.widens_access]
    holders = frozenset().union(*(embed.users for embed in embeds))
    if not holders:
        return []
    rows: dict[str, set[Target]] = {}
    for user, target in desired.cells:
        if user in holders:
            rows.setdefault(user, set()).add(target)
    everything = frozenset(desired.target_names)
    warnings = []
    for embed in embeds:
        reach = embed.targets if embed.targets is not None else everything
        wider = sorted((user, sorted(reach - rows.get(user, set()))) for user in embed.users)
        wider = [(user, extra) for user, extra in wider if extra]
        if wider:
            user, extra = wider[0]
            example = f"{desired.directory.get(user, user)} → {desired.target_names.get(extra[0], str(extra[0]))}"
            warnings.append(
                Problem(
                    f"copilot embed '{embed.name}' lets {len(wider)} ticket holders reach targets their grants do "
                    f"not give them (e.g. {example})",
                    embed.location,
                    "narrow its data_range or its 'to', or say widens_access: true",
                )
            )
    return warnings
