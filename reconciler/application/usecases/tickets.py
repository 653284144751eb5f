"""Embed tickets, issued only as the policy allows, and the audit of outstanding ones."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from reconciler.application.usecases._common import _live_embeds, _one_user, _resolved
from reconciler.application.workspace import InsightSession, Session
from reconciler.core.audit import AuditLog
from reconciler.core.embeds import EmbedDrift, LiveEmbed
from reconciler.core.policy import Policy
from reconciler.core.ports import TicketPage
from reconciler.core.ticket_audit import AuditReport, audit, list_every_ticket
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.redaction import mask


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
