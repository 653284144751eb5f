"""The use cases behind the commands: each command is one call here over an open target, returning data.

The command line only parses options, renders what comes back and sets the exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from operator import itemgetter
from pathlib import Path

from reconciler.access import AccessLine, access_lines, check_tests, embed_warnings, end_state
from reconciler.admission import admit, lacking_changes
from reconciler.audit import AuditLog
from reconciler.base import bulk_data
from reconciler.cells import Cell, Target
from reconciler.change import changed_users, full_plan_reason, policy_changes
from reconciler.diff import Changes, DiffOptions, diff
from reconciler.drift import DriftReport, drift
from reconciler.embeds import EmbedChange, EmbedDrift, LiveEmbed, embed_drift
from reconciler.errors import Problem, ReconcilerError
from reconciler.executor import ApplyResult, Executor, Work, outstanding
from reconciler.importer import Imported, import_policy
from reconciler.ledger import Ledger
from reconciler.plan import Plan, PlanInputs, build_plan
from reconciler.policy import Policy
from reconciler.ports import DirectoryOnce, TicketPage
from reconciler.redaction import mask
from reconciler.resolve import Desired, resolve
from reconciler.snapshot import Snapshot, refresh
from reconciler.state import LEDGER, ManagedRecord, read_state, write_managed
from reconciler.ticket_audit import AuditReport, audit, list_every_ticket
from reconciler.verifier import Verification, Verifier
from reconciler.workspace import InsightSession, Session

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


@dataclass(frozen=True)
class Breakers:
    max_revokes: int | None = None
    max_revoke_ratio: float | None = None


@dataclass
class ApplyOutcome:
    """What an apply did: the plan it ran, and if it sent anything, the result and what verification found."""

    plan: Plan
    result: ApplyResult = field(default_factory=ApplyResult)
    mismatches: dict[Cell, str] = field(default_factory=dict)
    cancelled: bool = False
    nothing_to_do: bool = False
    # embed data ranges not set as planned, each "embed 'name' (module id): why"
    embed_failures: list[str] = field(default_factory=list)
    verification: Verification | None = None
    # changes today's policy requires that a saved plan does not make (batches deleted, or a partial plan)
    lacking: int = 0

    @property
    def ok(self) -> bool:
        return not self.cancelled and self.result.ok and not self.mismatches and not self.embed_failures


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


def plan_from(
    session: Session,
    desired: Desired,
    snapshot: Snapshot,
    ledger: Ledger,
    today: dt.date,
    options: PlanOptions,
    notes: list[str] | None = None,
) -> tuple[Plan, Changes]:
    with bulk_data():
        scope = options.scoped(desired)
        changes = diff(desired, snapshot, ledger, today, scope, ledger.unconfirmed)
        if changes.beyond_policy:
            notes = [*(notes or []), beyond_policy_note(len(changes.beyond_policy))]
        user_of = itemgetter(0)
        touched_set = set(map(user_of, changes.revokes)).union(*(map(user_of, c) for c in changes.grants.values()))
        touched = sorted(touched_set)
        touched_state = {u: sorted(map(str, snapshot.grants.get(u, frozenset()))) for u in touched}
        names = dict(desired.directory)
        names.update({str(t): n for t, n in desired.target_names.items()})
        whole = snapshot.digest()
        inputs = PlanInputs(
            policy_digest=desired.policy_digest,
            snapshot_digest=whole,
            # an onboarding touches every user read: the same digest, not computed twice
            touched_users_digest=whole if touched_set == snapshot.grants.keys() else snapshot.digest(touched),
        )
        plan = build_plan(
            session.name,
            changes,
            inputs,
            touched_state,
            names,
            options.allow_regrant,
            removed_targets=desired.removed,
            notes=notes or [],
            cap=session.service.cap,
            previous_expiry=ledger,
            partial=_partial(scope, desired),
        )
        plan.grants_by_statement = _by_statement(changes, desired)
        return plan, changes


def beyond_policy_note(cells: int) -> str:
    return (
        f"the expiry ledger records a later expiry than the policy allows for {cells} live grants (an edited "
        "state?): ignored; they are granted again with the policy's expiry"
    )


def _by_statement(changes: Changes, desired: Desired) -> dict[str, int]:
    counts: Counter[int | None] = Counter()
    if changes.grant_cells == len(desired.sources):  # every desired cell is granted (an onboarding): count fast
        counts.update(desired.sources.values())
    else:
        for cells in changes.grants.values():
            counts.update(map(desired.sources.get, cells))
    counts.pop(None, None)
    labels = {}
    for index, count in sorted(counts.items(), key=lambda item: -item[1]):
        assert index is not None
        rule = desired.rules[index]
        who = ", ".join(name for name, _ in rule.principals[:4]) + (", …" if len(rule.principals) > 4 else "")
        labels[f"{rule.location} (to: {who})"] = count
    return labels


async def take_snapshot(session: Session, track: Tracker | None = None) -> Snapshot:
    """Every user's live grants (`refresh --out`): the directory, then one read per user."""
    users = await session.service.users()
    return await _read_users(session, [u.user_id for u in users], track)


async def make_plan(
    session: Session,
    policy: Policy,
    today: dt.date,
    options: PlanOptions,
    snapshot: Snapshot | None = None,
    track: Tracker | None = None,
    notes: Collection[str] = (),
) -> Plan:
    record, ledger = state_of(session)
    desired, live = await desired_and_snapshot(session, policy, today, snapshot, track, record)
    return await _planned(session, policy, desired, live, record, ledger, today, options, [*notes])


async def _planned(
    session: Session,
    policy: Policy,
    desired: Desired,
    live: Snapshot,
    record: ManagedRecord,
    ledger: Ledger,
    today: dt.date,
    options: PlanOptions,
    notes: list[str],
    partial: str | None = None,
) -> Plan:
    """The plan of `desired` against `live`, with embeds, notes and the policy tests' verdict."""
    notes = [*_state_notes(record), *notes, *map(str, embed_warnings(desired))]
    plan, _ = plan_from(session, desired, live, ledger, today, options, notes)
    plan = await _embeds_into(session, plan, desired, options)
    if partial is not None:
        also = f"; also {plan.partial}" if options.limited and plan.partial else ""
        plan = plan.model_copy(update={"partial": partial + also})
    failures = _test_failures(policy, desired, live, plan)
    return plan.model_copy(update={"failed_tests": [str(problem) for problem in failures]})


async def _embeds_into(session: Session, plan: Plan, desired: Desired, options: PlanOptions) -> Plan:
    """A plan with the embed data ranges to set, unless the run is limited to some users or targets."""
    return plan if options.limited else _with_embeds(plan, (await _live_embeds(session, desired))[1], desired)


async def _live_embeds(session: Session, desired: Desired) -> tuple[dict[str, LiveEmbed], EmbedDrift]:
    """The modules Quick BI has (one call; none when the policy has no embeds) and how they differ from policy."""
    live = await session.service.embeds() if desired.embeds else {}
    return live, embed_drift(desired, live)


def _with_embeds(plan: Plan, found: EmbedDrift, desired: Desired) -> Plan:
    """The plan with the embed data ranges to set (and the names to show them by)."""
    shown = {f"{c.after.kind}:{i}" for c in found.changes for i in c.after.ids}
    names = {**plan.names, **{str(t): n for t, n in desired.target_names.items() if str(t) in shown}}
    missing = [
        f"copilot embed '{name}': Quick BI has no module {copilot_id}; tickets for it cannot be issued"
        for name, copilot_id in found.missing
    ]
    return plan.model_copy(update={"embed_changes": found.changes, "notes": [*plan.notes, *missing], "names": names})


async def make_changed_plan(
    session: Session,
    policy: Policy,
    base: Policy,
    today: dt.date,
    options: PlanOptions,
    track: Tracker | None = None,
    why_full: str | None = None,
) -> Plan:
    """A pull request's plan: read live only the users whose access differs between `base` and `policy`.

    Much faster than a full plan on a large tenant (40 of 100,000 users is 40 reads, not 100,000). Exact for a
    change of who is granted what; a change of configuration (`why_full`, found by the caller) or of the managed
    targets gets a full plan (see `change.full_plan_reason`), since it can move grants that no changed statement
    names. Either way the plan opens with what the change does to the policy, by path.
    """
    record, ledger = state_of(session)
    directory = DirectoryOnce(session.service)
    desired, before = await asyncio.gather(
        resolve(policy, directory, today, record.targets),
        resolve(base, directory, today, record.targets),
    )
    summary = {"policy_changes": policy_changes(base, policy)}
    reason = why_full or full_plan_reason(before, desired)
    if reason is not None:
        live = await _read_users(session, desired.directory, track)
        notes = [full_plan_note(reason)]
        plan = await _planned(session, policy, desired, live, record, ledger, today, options, notes)
        return plan.model_copy(update=summary)
    users = changed_users(before, desired, ledger, today) | {u for u, _ in ledger.unconfirmed}
    live = await _read_users(session, users, track)
    scoped = replace(options, diff=replace(options.diff, users=frozenset(users)))
    others = len(desired.directory.keys() - users)
    partial = (
        f"changed from the base policies: live grants read only for the {len(users)} users whose access the "
        f"change touches; the other {others} users were not read, so drift among them (changes made outside "
        "the policy) is not shown here, and the apply on merge corrects it too"
    )
    plan = await _planned(session, policy, desired, live, record, ledger, today, scoped, [], partial)
    return plan.model_copy(update=summary)


def full_plan_note(reason: str) -> str:
    """The line a pull request's plan carries when it had to read everyone."""
    return f"planned in full, not only the users the change touches: {reason}"


async def explain(session: Session, policy: Policy, today: dt.date, user_ref: str) -> list[AccessLine]:
    """Every grant of one user, live or wanted, traced to the policy line and group path that gives it."""
    desired, ledger = await _resolved(session, policy, today)
    user = _one_user(desired, user_ref)
    live = await refresh(session.service, [user])
    return access_lines(desired, live, ledger, users={user})


async def who_can(
    session: Session,
    policy: Policy,
    today: dt.date,
    target_ref: str,
    snapshot: Snapshot | None = None,
    track: Tracker | None = None,
) -> list[AccessLine]:
    """Everyone who can query a target, or is meant to, and why."""
    record, ledger = state_of(session)
    desired, live = await desired_and_snapshot(session, policy, today, snapshot, track, record)
    targets = desired.targets_named(target_ref)
    if not targets:
        raise ReconcilerError(Problem(f"no target named '{target_ref}'", hint="give a resource alias, name or id:<ID>"))
    return access_lines(desired, live, ledger, targets=targets)


async def import_live(
    session: Session, policy: Policy | None, today: dt.date, track: Tracker | None = None
) -> Imported:
    """Policy reproducing today's live grants: on the targets `policy` manages, or on every target if None."""
    directory = DirectoryOnce(session.service)  # resolving the current policy reads the same directory
    users, groups, catalogue = await asyncio.gather(directory.users(), directory.groups(), directory.catalogue())
    managed = None
    record, ledger = state_of(session)
    if policy is not None:
        desired = await resolve(policy, directory, today, record.targets)
        managed = desired.managed_record()
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
    )


async def check_policy(session: Session, policy: Policy, today: dt.date) -> tuple[list[Problem], list[Problem]]:
    """What only the resolved policy can tell, no live grants read: failing `tests:`, and warnings (embeds that
    widen access beyond their ticket holders' grants)."""
    desired, _ = await _resolved(session, policy, today)
    return check_tests(policy.tests, desired), embed_warnings(desired)


async def _resolved(session: Session, policy: Policy, today: dt.date) -> tuple[Desired, Ledger]:
    record, ledger = state_of(session)
    return await resolve(policy, session.service, today, record.targets), ledger


async def issue_ticket(
    session: Session, policy: Policy, today: dt.date, embed_name: str, user_ref: str, uses: int, minutes: int | None
) -> str:
    """A ticket to an embedded Smart Q module, only for a user and within limits the policy allows.

    A ticket is access: whoever holds it can ask questions of the module's data range. So the request is
    checked against today's policy and directory first, and refused before any call if it does not fit.
    """
    desired, _ = await _resolved(session, policy, today)
    embed = desired.embeds.get(embed_name)
    if embed is None:
        known = ", ".join(sorted(desired.embeds)) or "none"
        raise ReconcilerError(Problem(f"no copilot embed '{embed_name}' in the policy (embeds: {known})"))
    user = _one_user(desired, user_ref)
    where = f"copilot_embeds.{embed_name} at {embed.location}"
    if user not in embed.users:
        raise ReconcilerError(
            Problem(f"refusing: '{user_ref}' may not be issued tickets for '{embed_name}' ({where} does not list them)")
        )
    minutes = embed.max_minutes if minutes is None else minutes
    if uses > embed.max_uses or minutes > embed.max_minutes:
        raise ReconcilerError(
            Problem(
                f"refusing: {uses} uses for {minutes} minutes is more than {where} allows "
                f"({embed.max_uses} uses, {embed.max_minutes} minutes)"
            )
        )
    _check_live_range(await _live_embeds(session, desired), embed_name, where)
    ticket = await session.service.create_ticket(embed.copilot_id, user, uses, minutes)
    params = {"CopilotId": embed.copilot_id, "UserId": user, "uses": str(uses), "minutes": str(minutes)}
    _record_ticket(session.state_dir, embed_name, params, ticket)
    return ticket


def _check_live_range(found: tuple[dict[str, LiveEmbed], EmbedDrift], embed_name: str, where: str) -> None:
    """A ticket reaches what the module's live data range reaches: refuse while it is not the policy's."""
    _, drift_found = found
    for name, copilot_id in drift_found.missing:
        if name == embed_name:
            raise ReconcilerError(Problem(f"refusing: Quick BI has no module {copilot_id} for {where}"))
    for change in drift_found.changes:
        if change.embed == embed_name:
            raise ReconcilerError(
                Problem(
                    f"refusing: the module's live data range is {change.before}, not what {where} gives it",
                    hint="run apply to set it as the policy says, then issue the ticket",
                )
            )


def _record_ticket(state_dir: Path, embed_name: str, params: dict[str, str], ticket: str) -> None:
    """The audit line of an issued ticket: who, for what and how long, and the ticket masked."""
    AuditLog(state_dir / "audit.jsonl")("TicketIssued", {"embed": embed_name, **params}, "", f"ticket {mask(ticket)}")


async def issue_insight_ticket(
    session: InsightSession, policy: Policy, embed_name: str, user_ref: str, uses: int, minutes: int | None
) -> str:
    """A DataArts Insight ticket (CreateTickets), only for a user the embed's `to:` reaches, within max_uses.

    Users are named by their IAM user ID: a policy user's `dataarts:` ID, or inline `dataarts:<ID>`.
    """
    embed = policy.dataarts_embeds[embed_name]
    where = f"dataarts_embeds.{embed_name} at {embed.location}"
    if minutes is not None:
        raise ReconcilerError(
            Problem("refusing: DataArts Insight tickets take no validity period", hint="leave out --minutes")
        )
    user = policy.users.get(user_ref)
    user_id = user.ref.dataarts if user is not None else user_ref.removeprefix("dataarts:")
    if user_id is None or user_id not in embed.holders:
        unnamed = f"; users.{user_ref} has no dataarts: IAM user ID" if user is not None and user_id is None else ""
        raise ReconcilerError(
            Problem(
                f"refusing: '{user_ref}' may not be issued tickets for '{embed_name}' ({where} does not list them"
                f"{unnamed})"
            )
        )
    if uses > embed.max_uses:
        raise ReconcilerError(Problem(f"refusing: {uses} uses is more than {where} allows ({embed.max_uses} uses)"))
    ticket = await session.client.create_ticket(embed.embed_id, user_id, uses)
    _record_ticket(
        session.state_dir, embed_name, {"embed_id": embed.embed_id, "user_id": user_id, "uses": str(uses)}, ticket
    )
    return ticket


async def audit_tickets(session: InsightSession, policy: Policy) -> AuditReport:
    """Every still-valid DataArts Insight ticket against the policy's `dataarts_embeds`."""
    known: dict[str, frozenset[str]] = defaultdict(frozenset)
    for embed in policy.dataarts_embeds.values():
        known[embed.embed_id] |= embed.holders

    async def page(filters: Mapping[str, str], offset: int, descending: bool) -> TicketPage:
        return await session.client.list_tickets(filters, offset, descending=descending)

    listing = await list_every_ticket(page, known)
    return audit(session.name, policy, listing)


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
        parts.append(f"{len(names)} users ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})")
    if options.targets is not None:
        names = sorted(desired.target_names.get(t, str(t)) for t in options.targets)
        parts.append(f"{len(names)} targets ({', '.join(names[:5])}{', …' if len(names) > 5 else ''})")
    return "limited to " + " and ".join(parts)


def _state_notes(record: ManagedRecord) -> list[str]:
    note = record.note()
    return [note] if note else []


async def make_drift(session: Session, policy: Policy, today: dt.date, track: Tracker | None = None) -> DriftReport:
    record, ledger = state_of(session)
    desired, live = await desired_and_snapshot(session, policy, today, track=track, record=record)
    _, found = await _live_embeds(session, desired)
    return drift(session.name, desired, live, ledger, today, _state_notes(record), found, ledger.unconfirmed)


async def apply(
    session: Session,
    policy: Policy,
    today: dt.date,
    confirm: Confirm,
    saved: Plan | None = None,
    options: PlanOptions | None = None,
    breakers: Breakers | None = None,
    track: Tracker | None = None,
    verify_all: bool = False,
) -> ApplyOutcome:
    """Plan (or admit a saved plan against today's policy and live state), confirm, execute, verify, record.

    The session must be exclusive (the target's lock held throughout), so that no other apply moves live
    state between the checks and the calls. A saved plan is never trusted: see `admission.admit`.
    """
    if not session.exclusive:
        raise ReconcilerError("internal: apply needs a session opened exclusively (open_target(exclusive=True))")
    track = track or _untracked
    record, ledger = state_of(session)
    desired, live = await desired_and_snapshot(session, policy, today, track=track, record=record)
    options = options or PlanOptions()
    live_embeds, found = await _live_embeds(session, desired)
    lacking = 0
    if saved is not None:
        admit(saved, session.name, policy.digest, desired, live, today, session.service.cap)
        chosen = saved
        planned_embeds = {c.copilot_id for c in saved.embed_changes}
        lacking = lacking_changes(saved, diff(desired, live, ledger, today, unconfirmed=ledger.unconfirmed))
        lacking += sum(1 for c in found.changes if c.copilot_id not in planned_embeds)
    else:
        chosen, _ = plan_from(session, desired, live, ledger, today, options, _state_notes(record))
        if not options.limited:
            chosen = _with_embeds(chosen, found, desired)
    failures = _test_failures(policy, desired, live, chosen)
    if failures:
        raise ReconcilerError(failures)
    work = outstanding(chosen, live, ledger, session.service.cap, ledger.unconfirmed)
    embeds = [c for c in chosen.embed_changes if _unset(c, live_embeds)]
    if not work.batches and not embeds:
        _remember_managed(session, desired, live, chosen, {}, ledger)
        return ApplyOutcome(chosen, ApplyResult(resumed=work.already_done), nothing_to_do=True, lacking=lacking)
    check_breakers(work, live, desired, breakers or Breakers())
    if not confirm(chosen):
        return ApplyOutcome(chosen, cancelled=True)
    embed_failures = await set_embed_ranges(session, embeds)
    with track(len(work.batches), "apply") as tick:
        seed = chosen.inputs.policy_digest
        result, mismatches, verification = await execute_and_verify(session, work, ledger, tick, not verify_all, seed)
    _remember_managed(session, desired, live, chosen, mismatches, ledger)
    return ApplyOutcome(
        chosen, result, mismatches, embed_failures=embed_failures, verification=verification, lacking=lacking
    )


def _unset(change: EmbedChange, live: Mapping[str, LiveEmbed]) -> bool:
    return change.copilot_id not in live or live[change.copilot_id].range != change.after


async def set_embed_ranges(session: Session, changes: list[EmbedChange]) -> list[str]:
    """Set each module's data range, then read them back: what is not as planned, and why.

    Narrowing a module before the grant batches run means a ticket never reaches more than policy allows
    for longer than it must. Setting a range is idempotent, so a failed call is safe to run again next time.
    """
    if not changes:
        return []
    problems: dict[str, str] = {}
    for change in changes:
        failure = await session.service.set_embed_range(change.copilot_id, change.after)
        if failure is not None:
            problems[change.copilot_id] = failure
    now = await session.service.embeds()
    for change in changes:
        current = now.get(change.copilot_id)
        if change.copilot_id not in problems and (current is None or current.range != change.after):
            problems[change.copilot_id] = f"read back as {current.described if current else 'missing'}"
    return [
        f"embed '{c.embed}' (module {c.copilot_id}): {problems[c.copilot_id]}"
        for c in changes
        if c.copilot_id in problems
    ]


def _remember_managed(
    session: Session, desired: Desired, live: Snapshot, plan: Plan, wrong: dict[Cell, str], ledger: Ledger
) -> None:
    """Record what is managed now; a removed target stays recorded until none of its revocable grants is left.

    The ledger keeps expiries only on recorded targets: one that leaves the record (released, or removed and
    emptied) takes its ledger lines with it, so that the record and the ledger tell the same story."""
    revoked = plan.revoke_cells()
    leftover = {
        target
        for user, target in live.cells()
        if target in desired.removed
        and user not in desired.protected
        and ((user, target) not in revoked or (user, target) in wrong)
    }
    record = desired.managed_record() | leftover
    if ledger.forget_targets_except(record) or not ledger.path.exists():
        ledger.compact()  # written whenever the record is: a record without a ledger means damage
    write_managed(session.state_dir, record)


def check_breakers(work: Work, live: Snapshot, desired: Desired, breakers: Breakers) -> None:
    """Stop large revokes, counted from what the batches would delete of live grants (not a summary's claim)."""
    revokes = len(work.revoked)
    if breakers.max_revokes is not None and revokes > breakers.max_revokes:
        raise ReconcilerError(
            Problem(
                f"the plan revokes {revokes} grants, more than --max-revokes {breakers.max_revokes}",
                hint="check the policy and directory, then raise --max-revokes if this is intended",
            )
        )
    if breakers.max_revoke_ratio is not None and revokes:
        granted = sum(1 for _, target in live.cells() if desired.is_managed(target))
        ratio = revokes / granted if granted else 1.0
        if ratio > breakers.max_revoke_ratio:
            raise ReconcilerError(
                Problem(
                    f"the plan revokes {ratio:.0%} of the {granted} managed grants, more than "
                    f"--max-revoke-ratio {breakers.max_revoke_ratio:g}",
                    hint="check the policy and directory, then raise --max-revoke-ratio if this is intended",
                )
            )


async def execute_and_verify(
    session: Session,
    work: Work,
    ledger: Ledger,
    on_batch: Progress | None = None,
    sample: bool = False,
    seed: str = "",
) -> tuple[ApplyResult, dict[Cell, str], Verification]:
    """Run the outstanding work while reading back the touched users (with `sample`, see `verifier`), and
    report any cell not as planned.

    A cell reported failed whose live state is nevertheless right (an earlier attempt whose answer was lost
    had done it) is not a failure; the read-back decides. A failed cell's user is always read back.
    """
    verifier = Verifier(session.service, work, sample, seed)
    executor = Executor(session.service, ledger=ledger, on_batch=on_batch, on_settled=verifier.settled)
    try:
        result = await executor.run(work)
    except BaseException:
        verifier.cancel()
        raise
    verification = await verifier.finish()
    result.failures = [f for f in result.failures if (f.user, f.target) in verification.wrong]
    ledger.compact()
    return result, verification.wrong, verification
