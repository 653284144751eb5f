"""Ticket audit: every still-valid DataArts Insight ticket, listed despite the API's paging window, judged
against the policy's `dataarts_embeds`.

`ListTickets` pages with limit ≤ 1000 and offset ≤ 1000, so one listing reaches at most 2,000 tickets in each
sort direction. A listing whose count is larger is split by embed, then by user, with the values seen in its
windows and those the policy names; since each listing reports its full count, tickets no split could reach
are counted and reported, never silently missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.policy import Policy
from reconciler.core.ports import LIST_LIMIT, LIST_OFFSET_LIMIT, Ticket, TicketPage
from reconciler.vocabulary.redaction import mask

# (filters, offset, descending) -> one page
Lister = Callable[[Mapping[str, str], int, bool], Awaitable[TicketPage]]
WINDOW = LIST_OFFSET_LIMIT + LIST_LIMIT  # tickets one listing reaches in one sort direction
_SPLITS = ("embed_id", "user_id")

KINDS = ("unknown_embed", "not_allowed", "uses_above_policy", "unlisted")
HEADINGS = {
    "unknown_embed": "Tickets for embeds the policy does not know",
    "not_allowed": "Tickets held by users the policy does not allow",
    "uses_above_policy": "Tickets with more uses left than the policy's max_uses",
    "unlisted": "Tickets the paging window kept from view",
}
QUICK_BI_NOTE = (
    "Quick BI copilot tickets (CreateTicket4Copilot) are not audited: Quick BI publishes no API to list them. "
    "The audit log of each Quick BI target records the ones reconciler issued."
)


@dataclass
class Listing:
    """Every ticket the listing reached, and per partition that it could not fully reach, how many it missed."""

    tickets: dict[str, Ticket] = field(default_factory=dict)
    unlisted: list[tuple[dict[str, str], int]] = field(default_factory=list)
    listings: int = 0


async def list_every_ticket(list_page: Lister, known: Mapping[str, frozenset[str]]) -> Listing:
    """All valid tickets; `known` maps each embed the policy names to its allowed user IDs (split values the
    windows might not show)."""
    listing = Listing()
    await _partition(list_page, {}, known, listing)
    return listing


async def _partition(
    list_page: Lister, filters: dict[str, str], known: Mapping[str, frozenset[str]], listing: Listing
) -> int:
    """List one partition into `listing`; its count."""
    listing.listings += 1
    count, seen = await _window(list_page, filters)
    for ticket in seen:
        listing.tickets[ticket.ticket] = ticket
    reached = len({t.ticket for t in seen})  # the two ends of a window may overlap
    if reached >= count:
        return count
    level = len(filters)
    if level == len(_SPLITS):
        listing.unlisted.append((filters, count - reached))
        return count
    key = _SPLITS[level]
    values = {getattr(t, key) for t in seen}
    if key == "embed_id":
        values |= set(known)
    else:
        values |= known.get(filters["embed_id"], frozenset())
    counts = await asyncio.gather(
        *(_partition(list_page, {**filters, key: value}, known, listing) for value in sorted(values))
    )
    if sum(counts) < count:
        listing.unlisted.append((filters, count - sum(counts)))
    return count


async def _window(list_page: Lister, filters: Mapping[str, str]) -> tuple[int, list[Ticket]]:
    """The count, and the tickets the paging window reaches from both ends."""
    first = await list_page(filters, 0, False)
    more: list[tuple[int, bool]] = []  # (offset, descending)
    if first.count > LIST_LIMIT:
        more.append((LIST_OFFSET_LIMIT, False))
    if first.count > WINDOW:
        more.append((0, True))
    if first.count > WINDOW + LIST_LIMIT:
        more.append((LIST_OFFSET_LIMIT, True))
    rest = await asyncio.gather(*(list_page(filters, offset, descending) for offset, descending in more))
    return first.count, [t for page in [first, *rest] for t in page.tickets]


# (masked ticket, embed, user, detail)
Finding = tuple[str, str, str, str]


@dataclass(frozen=True)
class AuditReport:
    target: str
    tickets: int
    findings: dict[str, list[Finding]]
    notes: list[str]
    listings: int

    @property
    def finding_count(self) -> int:
        return sum(len(found) for found in self.findings.values())

    @property
    def clean(self) -> bool:
        return self.finding_count == 0

    def to_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "target": self.target,
            "clean": self.clean,
            "tickets": self.tickets,
            "listings": self.listings,
            "notes": self.notes,
        }
        for kind in KINDS:
            report[kind] = [
                {"ticket": t, "embed_id": e, "user": u, **({"detail": d} if d else {})}
                for t, e, u, d in self.findings.get(kind, [])
            ]
        return report


def audit(target: str, policy: Policy, listing: Listing) -> AuditReport:
    """Judge every listed ticket: its embed known, its holder allowed, its uses left within the policy."""
    by_embed: dict[str, list[tuple[str, frozenset[str], int]]] = {}
    for embed in policy.dataarts_embeds.values():
        by_embed.setdefault(embed.embed_id, []).append((embed.name, embed.holders, embed.max_uses))
    findings: dict[str, list[Finding]] = {kind: [] for kind in KINDS}
    for ticket in sorted(listing.tickets.values(), key=lambda t: (t.embed_id, t.user_id, t.ticket)):
        shown = mask(ticket.ticket)
        user = f"{ticket.user_name} ({ticket.user_id})" if ticket.user_name else ticket.user_id
        embeds = by_embed.get(ticket.embed_id)
        if embeds is None:
            findings["unknown_embed"].append((shown, ticket.embed_id, user, ""))
            continue
        allowed = [(name, max_uses) for name, holders, max_uses in embeds if ticket.user_id in holders]
        if not allowed:
            names = ", ".join(name for name, _, _ in embeds)
            findings["not_allowed"].append((shown, ticket.embed_id, user, f"not listed by {names}"))
            continue
        limit = max(max_uses for _, max_uses in allowed)
        if ticket.left_num > limit:
            detail = f"{ticket.left_num} uses left, policy allows {limit}"
            findings["uses_above_policy"].append((shown, ticket.embed_id, user, detail))
    for filters, missed in listing.unlisted:
        where = ", ".join(f"{k}={v}" for k, v in filters.items()) or "all tickets"
        findings["unlisted"].append(
            ("", filters.get("embed_id", ""), filters.get("user_id", ""), f"{missed} in {where}")
        )
    notes = [QUICK_BI_NOTE] if policy.embeds else []
    return AuditReport(target, len(listing.tickets), findings, notes, listing.listings)
