"""A small Python API for applications that embed Smart Q or DataArts Insight: tickets issued only as the
policy allows.

    from reconciler.api import issue_ticket
    ticket = issue_ticket("sales-bot", user="alice", uses=1, minutes=30)

The same checks as `reconciler ticket issue`: the policy's `copilot_embeds` (Quick BI) or `dataarts_embeds`
(DataArts Insight) must list the user and allow the uses (and minutes), or `ReconcilerError` is raised before
any call. The ticket is returned, never logged.
"""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path

from reconciler.application import usecases
from reconciler.application.config import Config, load_config, use_limits
from reconciler.application.workspace import open_insight, open_target
from reconciler.core.policy import Policy, load_policy
from reconciler.vocabulary.base import run
from reconciler.vocabulary.errors import Problem, ReconcilerError

__all__ = ["ReconcilerError", "issue_ticket", "issue_ticket_async"]


def issue_ticket(
    embed: str,
    user: str,
    uses: int = 1,
    minutes: int | None = None,
    config: Path | str = "reconciler.yaml",
    target: str | None = None,
) -> str:
    """A ticket to the embed named `embed` for `user`, within the policy's limits."""
    settings = load_config(Path(config))
    use_limits(settings)
    today = dt.datetime.now(dt.UTC).date()
    policy = load_policy(settings.policy_paths(), today, settings.policies_recursive)
    return run(issue_ticket_async(settings, policy, today, target, embed, user, uses, minutes))


async def issue_ticket_async(
    config: Config,
    policy: Policy,
    today: dt.date,
    target: str | None,
    embed: str,
    user: str,
    uses: int,
    minutes: int | None,
) -> str:
    """The embed's kind picks the service: a DataArts Insight embed goes to the DataArts Insight target (the
    one named, or the only one configured), a copilot embed to the Quick BI target."""
    known = sorted({*policy.embeds, *policy.dataarts_embeds})
    if embed not in known:
        close = difflib.get_close_matches(embed, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"embeds: {', '.join(known) or 'none'}"
        raise ReconcilerError(
            Problem(f"no embed '{embed}' in the policy (copilot_embeds or dataarts_embeds)", hint=hint)
        )
    if embed in policy.dataarts_embeds:
        async with open_insight(config, target) as insight:
            return await usecases.issue_insight_ticket(insight, policy, embed, user, uses, minutes)
    async with open_target(config, target, exclusive=True) as session:
        return await usecases.issue_ticket(session, policy, today, embed, user, uses, minutes)
