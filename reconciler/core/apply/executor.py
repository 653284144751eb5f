"""Send a plan's outstanding batches: concurrently under the service's limits, retrying failed cells in rounds.

What is outstanding is judged from live state and the ledger (`outstanding`), never from a record of an earlier
run, so an apply killed at any point is finished by the next one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field

from reconciler.core import planner
from reconciler.core.ledger import Ledger
from reconciler.core.plan import Batch, Plan, exact_batches
from reconciler.core.ports import AccessService, CellFailure
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Cell


@dataclass
class ApplyResult:
    calls: int = 0
    planned_calls: int = 0
    resumed: int = 0
    failures: list[CellFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Work:
    """What an apply still has to send, given live state; and what it must leave true when done."""

    batches: list[Batch]
    already_done: int
    expiry: dict[Cell, dt.date]  # every cell the plan grants, with its day
    granted: frozenset[Cell]  # cells the outstanding grant batches set
    revoked: frozenset[Cell]  # cells the plan revokes that are live now (not its no-op deletes)
    # granted cells live already: a read-back cannot confirm their new expiry (see `ledger`)
    regranted: frozenset[Cell] = frozenset()


def outstanding(
    plan: Plan,
    live: Snapshot,
    ledger: Mapping[Cell, dt.date],
    cap: int = planner.CAP,
    unconfirmed: Set[Cell] = frozenset(),
) -> Work:
    """The plan's batches that still have work, judged from live state and the ledger alone.

    A grant batch is done when each of its cells is live and recorded with the batch's expiry; a revoke batch
    when none of its cells is live. A grant batch partly done (cells that failed in an earlier run) is planned
    again for just its remaining cells, unless the plan allows re-grants. Nothing here depends on a record of
    what an earlier run believed it did, so no such record can make a run skip work that is still undone; an
    `unconfirmed` expiry (sent once to a live cell) is never taken as done.
    """
    expiry = plan.grant_cells()
    revoked = frozenset(cell for cell in plan.revoke_cells() if live.has(cell))
    batches: list[Batch] = []
    remaining: dict[dt.date, set[Cell]] = defaultdict(set)
    done = 0
    for batch in plan.batches:
        if batch.operation == "revoke":
            if any(cell in revoked for cell in batch.cells()):
                batches.append(batch)
            else:
                done += 1
            continue
        day = batch.day()
        undone = [
            cell for cell in batch.cells() if not (live.has(cell) and ledger.get(cell) == day) or cell in unconfirmed
        ]
        if not undone:
            done += 1
        elif len(undone) == batch.size or plan.allow_regrant:
            batches.append(batch)
        else:
            remaining[day].update(undone)
    if remaining:
        batches.extend(exact_batches(remaining, (), cap))
    granted = frozenset(cell for batch in batches if batch.operation == "grant" for cell in batch.cells())
    return Work(batches, done, expiry, granted, revoked, frozenset(filter(live.has, granted)))


@dataclass
class Executor:
    service: AccessService
    ledger: Ledger | None = None
    retry_rounds: int = 4
    round_delay: float = 0.25
    on_batch: Callable[[], None] | None = None
    # called with each batch and its failed cells as its answer comes in (e.g. to start verifying its users)
    on_settled: Callable[[Batch, set[Cell]], None] | None = None

    async def run(self, work: Work) -> ApplyResult:
        result = ApplyResult(planned_calls=len(work.batches) + work.already_done, resumed=work.already_done)
        pending = work.batches
        failures: dict[tuple[str, Cell], CellFailure] = {}
        for round_number in range(self.retry_rounds + 1):
            failures = await self._round(pending, result, work)
            if not failures or round_number == self.retry_rounds:
                break
            grants: dict[dt.date, set[Cell]] = defaultdict(set)
            for operation, cell in failures:
                if operation == "grant":
                    grants[work.expiry[cell]].add(cell)
            revokes = [cell for operation, cell in failures if operation == "revoke"]
            pending = exact_batches(grants, revokes, self.service.cap)
            # per-cell failures are often transient server trouble: give it a moment before the next round
            await asyncio.sleep(min(self.round_delay * 2**round_number, 5.0))
        result.failures = sorted(failures.values(), key=lambda f: (f.user, f.target, f.operation))
        return result

    async def _round(
        self, batches: list[Batch], result: ApplyResult, work: Work
    ) -> dict[tuple[str, Cell], CellFailure]:
        failures: dict[tuple[str, Cell], CellFailure] = {}

        async def run_one(batch: Batch) -> None:
            result.calls += 1
            failed: set[Cell] = set()
            for failure in await self.service.authorize(batch):
                cell = (failure.user, failure.target)
                failed.add(cell)
                # a no-op delete that failed needs nothing done
                if batch.operation == "grant" or cell in work.revoked:
                    failures[(failure.operation, cell)] = failure
            self._record(batch, failed, work)
            if self.on_settled:
                self.on_settled(batch, failed)
            if self.on_batch:
                self.on_batch()

        await asyncio.gather(*(run_one(b) for b in batches))
        return failures

    def _record(self, batch: Batch, failed: set[Cell], work: Work) -> None:
        if self.ledger is None:
            return
        cells = [cell for cell in batch.cells() if cell not in failed]
        if batch.operation == "grant":
            day = batch.day()
            self.ledger.record([(c, day) for c in cells], [], work.regranted)
        else:
            # don't-care cells a revoke batch touched were not granted, so the ledger has nothing on them
            self.ledger.record([], [c for c in cells if c in work.revoked or c in self.ledger])
