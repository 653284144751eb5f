"""A small Python API for applications that embed Smart Q: tickets issued only as the policy allows.

    from reconciler.api import issue_ticket
    ticket = issue_ticket("sales-bot", user="alice", uses=1, minutes=30)

The same checks as `reconciler ticket issue`: the policy's `copilot_embeds` must list the user and allow the
uses and minutes, or `ReconcilerError` is raised before any call. The ticket is returned, never logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from reconciler import usecases
from reconciler.config import load_config
from reconciler.errors import ReconcilerError
from reconciler.policy import load_policy
from reconciler.workspace import open_target

__all__ = ["ReconcilerError", "issue_ticket"]


def issue_ticket(
    embed: str,
    user: str,
    uses: int = 1,
    minutes: int | None = None,
    config: Path | str = "reconciler.yaml",
    target: str | None = None,
) -> str:
    """A ticket to the embedded Smart Q module `embed` for `user`, within the policy's limits."""
    settings = load_config(Path(config))
    today = dt.datetime.now(dt.UTC).date()
    policy = load_policy(settings.policy_paths(), today, settings.policies_recursive)

    async def go() -> str:
        async with open_target(settings, target, exclusive=True) as session:
            return await usecases.issue_ticket(session, policy, today, embed, user, uses, minutes)

    return asyncio.run(go())
