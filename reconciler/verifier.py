"""Verification of an apply, overlapped with its writes: each user's grants are read back as soon as every
batch touching them has settled cleanly, while other batches are still being sent. Reads and writes have
separate quotas, so the read-back costs little more than the writes themselves.

Users whose cells failed in a round are read only after the last retry round, so a read never races a retry.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from reconciler.cells import Cell, Target
from reconciler.executor import Work
from reconciler.plan import Batch
from reconciler.service import AccessService


class Verifier:
    def __init__(self, service: AccessService, work: Work) -> None:
        self.service = service
        self.work = work
        self.users = {u for u, _ in work.granted} | {u for u, _ in work.revoked}
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
            if self.pending[user] <= 0 and user not in self.dirty and user not in self.reads:
                self.reads[user] = asyncio.ensure_future(self.service.user_targets(user))

    def cancel(self) -> None:
        """The apply stopped early: drop the reads under way."""
        for read in self.reads.values():
            read.cancel()

    async def finish(self) -> dict[Cell, str]:
        """After the last round: read the rest, and name every cell that is not as the plan intends."""
        for user in sorted(self.users - set(self.reads)):
            self.reads[user] = asyncio.ensure_future(self.service.user_targets(user))
        answers = await asyncio.gather(*self.reads.values())
        live = {(user, target) for user, targets in zip(self.reads, answers, strict=True) for target in targets}
        wrong = dict.fromkeys(self.work.granted - live, "granted by the plan but not live")
        wrong.update(dict.fromkeys(self.work.revoked & live, "revoked by the plan but still live"))
        return wrong
