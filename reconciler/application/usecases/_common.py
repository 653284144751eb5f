"""What every command's use case shares: options, the target's state, resolving and reading live grants."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

from reconciler.application.workspace import Session
from reconciler.core.access import check_tests, end_state
from reconciler.core.diff import DiffOptions
from reconciler.core.embeds import EmbedDrift, LiveEmbed, embed_drift
from reconciler.core.ledger import Ledger
from reconciler.core.plan import Plan
from reconciler.core.policy import Policy
from reconciler.core.resolve import Desired, resolve
from reconciler.core.snapshot import Snapshot, refresh
from reconciler.core.state import LEDGER, ManagedRecord, read_state
from reconciler.vocabulary.base import plural
from reconciler.vocabulary.cells import Target
from reconciler.vocabulary.errors import Problem, ReconcilerError

Progress = Callable[[], None]
Tracker = Callable[[int, str], AbstractContextManager[Progress]]
Confirm = Callable[[Plan], bool]


@dataclass(frozen=True)
class PlanOptions:
    diff: DiffOptions = field(default_factory=DiffOptions)
    allow_regrant: bool = False
    # limit the run (Terraform's -target): users, groups (their members) and resources, by policy names or IDs
    only_users: tuple[str, ...] = ()
    only_groups: tuple[str, ...] = ()
    only_resources: tuple[str, ...] = ()

    @property
    def limited(self) -> bool:
        """Limited to some users or targets: embed data ranges are left to a full run."""
        return bool(self.only_users or self.only_groups or self.only_resources)

    def scoped(self, desired: Desired) -> DiffOptions:
        """The diff options with the --user/--group/--resource names resolved to UserIds and targets."""
        users: set[str] = set()
        for ref in (*self.only_users, *self.only_groups):
            found = desired.users_named(ref)
            if not found:
                raise ReconcilerError(Problem(f"no user or group named '{ref}'", hint="check --user/--group"))
            users |= found
        targets: set[Target] = set()
        for ref in self.only_resources:
            named = desired.targets_named(ref)
            if not named:
                raise ReconcilerError(Problem(f"no target named '{ref}'", hint="check --resource"))
            targets |= named
        if self.diff.users is not None:  # already limited (a pull request's touched users): narrow further
            users &= self.diff.users
        return replace(
            self.diff,
            users=frozenset(users) if self.only_users or self.only_groups else self.diff.users,
            targets=frozenset(targets) if self.only_resources else self.diff.targets,
        )


def ledger_for(session: Session) -> Ledger:
    return Ledger(session.state_dir / LEDGER)


def state_of(session: Session) -> tuple[ManagedRecord, Ledger]:
    """The target's state: the managed-target record (with every target the ledger holds grants on) and the
    expiry ledger, each read once."""
    record = read_state(session.state_dir)
    ledger = ledger_for(session)
    return record.including(ledger), ledger


@contextlib.contextmanager
def _untracked(total: int, label: str) -> Iterator[Progress]:
    yield lambda: None


async def desired_and_snapshot(
    session: Session,
    policy: Policy,
    today: dt.date,
    snapshot: Snapshot | None = None,
    track: Tracker | None = None,
    record: ManagedRecord | None = None,
) -> tuple[Desired, Snapshot]:
    """Resolve the policy, then read every user's live grants (unless a snapshot is given).

    `track(total, label)` may supply a per-user tick, e.g. a progress bar: one read per user takes a while
    for a large organisation (100,000 users at 50 QPS is over half an hour).
    """
    record = record or state_of(session)[0]
    desired = await resolve(policy, session.service, today, record.targets)
    if snapshot is None:
        snapshot = await _read_users(session, desired.directory, track)
    return desired, snapshot


async def _read_users(session: Session, users: Collection[str], track: Tracker | None) -> Snapshot:
    """One read per user, with progress: a large organisation takes a while at the read quota."""
    with (track or _untracked)(len(users), "refresh") as tick:
        return await refresh(session.service, users, tick)


def _one_user(desired: Desired, ref: str) -> str:
    users = desired.users_named(ref)
    if len(users) != 1:
        what = "no user" if not users else f"{len(users)} users"
        raise ReconcilerError(Problem(f"{what} named '{ref}'", hint="give an alias, account name or id:<UserId>"))
    (user,) = users
    return user


async def _embeds_into(session: Session, plan: Plan, desired: Desired, options: PlanOptions) -> Plan:
    """A plan with the embed data ranges to set, unless the run is limited to some users or targets."""
    return plan if options.limited else _with_embeds(plan, (await _live_embeds(session, desired))[1], desired)


async def _live_embeds(session: Session, desired: Desired) -> tuple[dict[str, LiveEmbed], EmbedDrift]:
    """The modules Quick BI has (one call; none when the policy has no embeds) and how they differ from policy."""
    live = await session.service.embeds() if desired.embeds else {}
    return live, embed_drift(desired, live)


def _with_embeds(plan: Plan, found: EmbedDrift, desired: Desired) -> Plan:
    """The plan with the embed data ranges to set (and the names to show them by)."""
    shown = {Target(c.after.kind, i) for c in found.changes for i in c.after.ids}
    names = {**plan.names, **{str(t): n for t, n in desired.target_names.items() if t in shown}}
    missing = [
        f"copilot embed '{name}': Quick BI has no module {copilot_id}; tickets for it cannot be issued"
        for name, copilot_id in found.missing
    ]
    return plan.model_copy(update={"embed_changes": found.changes, "notes": [*plan.notes, *missing], "names": names})


async def _resolved(session: Session, policy: Policy, today: dt.date) -> tuple[Desired, Ledger]:
    record, ledger = state_of(session)
    return await resolve(policy, session.service, today, record.targets), ledger


def _test_failures(policy: Policy, desired: Desired, live: Snapshot, plan: Plan) -> list[Problem]:
    """The policy's tests against the plan's end state; a partial plan leaves other users' and targets' live
    grants as they are, so it is judged by the policy alone."""
    return check_tests(policy.tests, desired, None if plan.partial else lambda: end_state(live, plan))


def _partial(options: DiffOptions, desired: Desired) -> str | None:
    if not options.partial:
        return None
    parts = []
    if options.users is not None:
        names = sorted(desired.directory.get(u, u) for u in options.users)
        parts.append(f"{plural(len(names), 'user')} ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})")
    if options.targets is not None:
        names = sorted(desired.target_names.get(t, str(t)) for t in options.targets)
        parts.append(f"{plural(len(names), 'target')} ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})")
    return "limited to " + " and ".join(parts)


def _state_notes(record: ManagedRecord) -> list[str]:
    note = record.note()
    return [note] if note else []
