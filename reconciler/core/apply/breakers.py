"""Circuit breakers: an apply stops before any call when it would revoke more than the operator allows."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.core.apply.executor import Work
from reconciler.vocabulary.base import plural
from reconciler.vocabulary.errors import Problem, ReconcilerError


@dataclass(frozen=True)
class Breakers:
    max_revokes: int | None = None
    max_revoke_ratio: float | None = None


def check_breakers(work: Work, granted: int, breakers: Breakers, estimated: bool = False) -> None:
    """Stop large revokes, counted from what the batches would delete of live grants (not a summary's claim),
    against `granted` managed grants live now (`estimated` when not every user was read)."""
    revokes = len(work.revoked)
    if breakers.max_revokes is not None and revokes > breakers.max_revokes:
        raise ReconcilerError(
            Problem(
                f"the plan revokes {plural(revokes, 'grant')}, more than --max-revokes {breakers.max_revokes}",
                hint="check the policy and directory, then raise --max-revokes if this is intended",
            )
        )
    if breakers.max_revoke_ratio is not None and revokes:
        ratio = revokes / granted if granted else 1.0
        if ratio > breakers.max_revoke_ratio:
            about = "about " if estimated else ""
            raise ReconcilerError(
                Problem(
                    f"the plan revokes {ratio:.0%} of the {about}{granted} managed grants, more than "
                    f"--max-revoke-ratio {breakers.max_revoke_ratio:g}",
                    hint="check the policy and directory, then raise --max-revoke-ratio if this is intended",
                )
            )
