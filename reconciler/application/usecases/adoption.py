"""Adopting a tenant: policy written from its live grants."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict

from reconciler.application.usecases._common import Tracker, _read_users, state_of
from reconciler.application.workspace import Session
from reconciler.core.importer import Imported, import_policy
from reconciler.core.policy import Policy
from reconciler.core.ports import DirectoryOnce
from reconciler.core.resolve import resolve


async def import_live(
    session: Session, policy: Policy | None, today: dt.date, track: Tracker | None = None
) -> Imported:
    """Policy reproducing today's live grants: on the targets `policy` manages, or on every target if None."""
    directory = DirectoryOnce(session.service)  # resolving the current policy reads the same directory
    users, groups, catalogue = await asyncio.gather(directory.users(), directory.groups(), directory.catalogue())
    managed = None
    protected: frozenset[str] = frozenset()
    record, ledger = state_of(session)
    if policy is not None:
        desired = await resolve(policy, directory, today, record.targets)
        managed = desired.managed_record()
        protected = desired.protected
    by_name: dict[str, list[str]] = defaultdict(list)
    for group in groups:
        by_name[group.name].append(group.group_id)
    unique = {name: ids[0] for name, ids in by_name.items() if len(ids) == 1}
    members = await asyncio.gather(*(directory.group_users(gid) for gid in unique.values()))
    live = await _read_users(session, [u.user_id for u in users], track)
    active = {u.user_id for u in users if not u.deactivated}
    return import_policy(
        session.name,
        {u.user_id: u.account for u in users},
        {name: frozenset(m) & active for name, m in zip(unique, members, strict=True)},
        live,
        ledger,
        catalogue,
        managed,
        today,
        deactivated={u.user_id for u in users if u.deactivated},
        protected=protected,
        listed=catalogue.keys(),
    )
