"""Verification of an apply, overlapped with its writes: each user's grants are read back as soon as every
batch touching them has settled cleanly, while other batches are still being sent. Reads and writes have
separate quotas, so the read-back costs little more than the writes themselves.

Users whose cells failed in a round are read only after the last retry round, so a read never races a retry.

What is read back: with `sample=False`, every touched user. With `sample=True` (the default of `apply`), every
user the plan revokes from (a revoke that silently failed leaves access nobody approved) and every user with a
failed cell, but of the users who were only granted and whose answers were all clean, a fixed share chosen by
hash; if any user read back is not as planned, every remaining user is read back too. A grant that silently
did not happen fails closed (the user lacks access) and the next plan or drift report shows it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import Counter
from dataclasses import dataclass

from reconciler.core.apply.executor import Work
from reconciler.core.plan import Batch
from reconciler.core.ports import AccessService
from reconciler.vocabulary.cells import Cell, Target

SAMPLE_SHARE = 0.05
SAMPLE_MINIMUM = 20


@dataclass(frozen=True)
class Verification:
    """Cells not as planned, and how many of the touched users were read back to find out."""

    wrong: dict[Cell, str]
    read: int
    touched: int
    escalated: bool = False

    def describe(self) -> str:
        """What was checked, and what cannot be: Quick BI reads access back, never an expiry."""
        if self.read == self.touched:
            how = " (a sampled user was wrong, so everyone was read)" if self.escalated else ""
            who = "the touched user" if self.touched == 1 else f"all {self.touched:,} touched users"
            return f"{who} read back{how}; {EXPIRY_UNCHECKED}"
        return (
            f"{self.read} of {self.touched} touched users read back: everyone revoked from or with a failed cell, "
            f"and a sample of those only granted with clean answers (--verify full reads all); {EXPIRY_UNCHECKED}"
        )


EXPIRY_UNCHECKED = (
    "access checked, expiries not (Quick BI cannot read one back; an expiry changed on a live grant is sent again "
    "by the next apply)"
)


def sampled(users: set[str], seed: str) -> set[str]:
    """A deterministic share of `users` (at least SAMPLE_MINIMUM), chosen by hash so that no user is favoured."""
    size = min(len(users), max(SAMPLE_MINIMUM, math.ceil(len(users) * SAMPLE_SHARE)))
    ranked = sorted(users, key=lambda user: hashlib.sha256(f"{seed}:{user}".encode()).digest())
    return set(ranked[:size])


class Verifier:
    def __init__(self, service: AccessService, work: Work, sample: bool = False, seed: str = "") -> None:
        self.service = service
        self.work = work
        self.users = {u for u, _ in work.granted} | {u for u, _ in work.revoked}
        revoked_from = {u for u, _ in work.revoked}
        self.must = self.users if not sample else revoked_from | sampled(self.users - revoked_from, seed)
        self.pending = Counter(u for batch in work.batches for u in batch.user_ids if u in self.users)
        self.dirty: set[str] = set()
        self.reads: dict[str, asyncio.Task[frozenset[Target]]] = {}

    def settled(self, batch: Batch, failed: set[Cell]) -> None:
        """A batch's answer is in (and its failed cells known): read its users whose batches are all done."""
        failed_users = {user for user, _ in failed}
        for user in batch.user_ids:
            if user not in self.users:
                continue
            if user in failed_users:
                self.dirty.add(user)
            self.pending[user] -= 1
            ready = self.pending[user] <= 0 and user not in self.dirty and user not in self.reads
            if ready and user in self.must:
                self.reads[user] = asyncio.ensure_future(self.service.user_targets(user))

    def cancel(self) -> None:
        """The apply stopped early: drop the reads under way."""
        for read in self.reads.values():
            read.cancel()

    async def finish(self) -> Verification:
        """After the last round: read the rest, and name every cell that is not as the plan intends."""
        wrong = await self._read((self.must | self.dirty) - set(self.reads))
        # a user whose answers were all clean but who is not as planned: clean answers cannot be trusted today
        escalated = any(user not in self.dirty for user, _ in wrong) and len(self.reads) < len(self.users)
        if escalated:
            wrong = await self._read(self.users - set(self.reads))
        return Verification(wrong, len(self.reads), len(self.users), escalated)

    async def _read(self, more: set[str]) -> dict[Cell, str]:
        for user in sorted(more):
            self.reads[user] = asyncio.ensure_future(self.service.user_targets(user))
        answers = await asyncio.gather(*self.reads.values())
        live = {(user, target) for user, targets in zip(self.reads, answers, strict=True) for target in targets}
        read = set(self.reads)
        wrong = dict.fromkeys({c for c in self.work.granted - live if c[0] in read}, "granted by the plan but not live")
        wrong.update(dict.fromkeys(self.work.revoked & live, "revoked by the plan but still live"))
        return wrong
