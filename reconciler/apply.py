"""Execute a plan's batches against Quick BI: concurrently, resumably, retrying what failed, then verifying."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.cells import Cell, Target
from reconciler.diff import Changes
from reconciler.ledger import Ledger
from reconciler.plan import Batch, Plan, make_batches
from reconciler.quickbi import QuickBIClient, QuickBIError, TransportFailure
from reconciler.quickbi import models as m
from reconciler.snapshot import Snapshot


@dataclass(frozen=True)
class CellFailure:
    user: str
    target: str
    operation: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.operation} {self.user} {self.target}: {self.code}: {self.message}"


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


def outstanding(plan: Plan, live: Snapshot, ledger: Mapping[Cell, dt.date]) -> Work:
    """The plan's batches that still have work, judged from live state and the ledger alone.

    A grant batch is done when each of its cells is live and recorded with the batch's expiry; a revoke batch
    when none of its cells is live. A grant batch partly done (cells that failed in an earlier run) is planned
    again for just its remaining cells, unless the plan allows re-grants. Nothing here depends on a record of
    what an earlier run believed it did, so no such record can make a run skip work that is still undone.
    """
    expiry = plan.grant_cells()
    revoked = frozenset(cell for cell in plan.revoke_cells() if cell[1] in live.grants.get(cell[0], frozenset()))
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
        undone = [cell for cell in batch.cells() if not (_is_live(cell, live) and ledger.get(cell) == day)]
        if not undone:
            done += 1
        elif len(undone) == batch.size or plan.allow_regrant:
            batches.append(batch)
        else:
            remaining[day].update(undone)
    if remaining:
        changes = Changes(grants={d: frozenset(c) for d, c in remaining.items()}, revokes=frozenset(), revocable={})
        batches.extend(make_batches(changes))
    granted = frozenset(cell for batch in batches if batch.operation == "grant" for cell in batch.cells())
    return Work(batches, done, expiry, granted, revoked)


def _is_live(cell: Cell, live: Snapshot) -> bool:
    return cell[1] in live.grants.get(cell[0], frozenset())


@dataclass
class Executor:
    client: QuickBIClient
    ledger: Ledger | None = None
    retry_rounds: int = 4
    round_delay: float = 0.25
    on_batch: Callable[[], None] | None = None

    async def run(self, work: Work) -> ApplyResult:
        result = ApplyResult(planned_calls=len(work.batches) + work.already_done, resumed=work.already_done)
        pending = work.batches
        failures: dict[tuple[str, str, str], CellFailure] = {}
        for round_number in range(self.retry_rounds + 1):
            failures = await self._round(pending, result, work)
            if not failures or round_number == self.retry_rounds:
                break
            pending = _rebatch(failures, work.expiry)
            # per-cell failures are often transient server trouble: give it a moment before the next round
            await asyncio.sleep(min(self.round_delay * 2**round_number, 5.0))
        result.failures = sorted(failures.values(), key=lambda f: (f.user, f.target, f.operation))
        return result

    async def _round(
        self, batches: list[Batch], result: ApplyResult, work: Work
    ) -> dict[tuple[str, str, str], CellFailure]:
        failures: dict[tuple[str, str, str], CellFailure] = {}

        async def run_one(batch: Batch) -> None:
            failed: set[tuple[str, str]] = set()
            for failure in await self._send(batch, result):
                failed.add((failure.user, failure.target))
                cell = (failure.user, Target.parse(failure.target))
                # a no-op delete that failed needs nothing done
                if batch.operation == "grant" or cell in work.revoked:
                    failures[(failure.operation, failure.user, failure.target)] = failure
            self._record(batch, failed, work.revoked)
            if self.on_batch:
                self.on_batch()

        await asyncio.gather(*(run_one(b) for b in batches))
        return failures

    async def _send(self, batch: Batch, result: ApplyResult) -> list[CellFailure]:
        request = m.SmartqAuthorize(
            operation_type=0 if batch.operation == "grant" else 1,
            user_ids=batch.user_ids,
            llm_cubes=batch.llm_cubes or None,
            llm_cube_themes=batch.llm_cube_themes or None,
            cube_ids=batch.cube_ids or None,
            expire_day=batch.expire_day,
        )
        result.calls += 1
        try:
            answer = await self.client.smartq_authorize(request)
        except (QuickBIError, TransportFailure) as exc:
            code = exc.code if isinstance(exc, QuickBIError) else "TransportFailure"
            message = exc.message if isinstance(exc, QuickBIError) else str(exc)
            return [CellFailure(user, str(target), batch.operation, code, message) for user, target in batch.cells()]
        # Result names the LlmCube even for a cube granted by dataset ID; such a failure matches no planned
        # cell here, and the verification read afterwards reports the cell instead
        return [
            CellFailure(
                f.user_id,
                str(Target("llm_cube", f.llm_cube) if f.llm_cube else Target("theme", f.llm_cube_theme or "")),
                batch.operation,
                "CellFailed",
                f.detail_message,
            )
            for f in answer
        ]

    def _record(self, batch: Batch, failed: set[tuple[str, str]], revoked: frozenset[Cell]) -> None:
        if self.ledger is None:
            return
        cells = [(u, t) for u, t in batch.cells() if (u, str(t)) not in failed]
        if batch.operation == "grant":
            day = batch.day()
            self.ledger.record([(c, day) for c in cells], [])
        else:
            # don't-care cells a revoke batch touched were not granted, so the ledger has nothing on them
            self.ledger.record([], [c for c in cells if c in revoked or c in self.ledger])


def _rebatch(failures: dict[tuple[str, str, str], CellFailure], expiry: dict[Cell, dt.date]) -> list[Batch]:
    """Plan the failed cells again, exactly (no don't-cares), for another round."""
    grants: dict[dt.date, set[Cell]] = defaultdict(set)
    revokes: dict[str, set[Target]] = defaultdict(set)
    for operation, user, target in failures:
        cell = (user, Target.parse(target))
        if operation == "grant":
            grants[expiry[cell]].add(cell)
        else:
            revokes[user].add(cell[1])
    changes = Changes(
        grants={day: frozenset(cells) for day, cells in grants.items()},
        revokes=frozenset((u, t) for u, targets in revokes.items() for t in targets),
        revocable={u: frozenset(targets) for u, targets in revokes.items()},
    )
    return make_batches(changes)
