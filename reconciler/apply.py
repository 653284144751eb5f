"""Execute a plan's batches against Quick BI: concurrently, resumably, retrying what failed, then verifying."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.cells import Cell, Target
from reconciler.diff import Changes
from reconciler.journal import Journal
from reconciler.ledger import Ledger
from reconciler.plan import Batch, Plan, make_batches
from reconciler.quickbi import QuickBIClient, QuickBIError, TransportFailure
from reconciler.quickbi import models as m


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


@dataclass
class Executor:
    client: QuickBIClient
    journal: Journal | None = None
    ledger: Ledger | None = None
    retry_rounds: int = 4
    round_delay: float = 0.25
    on_batch: Callable[[], None] | None = None

    async def run(self, plan: Plan) -> ApplyResult:
        result = ApplyResult(planned_calls=len(plan.batches))
        pending = []
        for batch in plan.batches:
            if self.journal is not None and batch.key() in self.journal.done:
                result.resumed += 1
            else:
                pending.append(batch)
        expiry = plan.expiry_by_cell()
        granted, revoked = plan.intended()
        for round_number in range(self.retry_rounds + 1):
            failures = await self._round(pending, result, granted, revoked)
            if not failures or round_number == self.retry_rounds:
                break
            pending = _rebatch(failures, expiry)
            # per-cell failures are often transient server trouble: give it a moment before the next round
            await asyncio.sleep(min(self.round_delay * 2**round_number, 5.0))
        result.failures = sorted(failures.values(), key=lambda f: (f.user, f.target, f.operation))
        return result

    async def _round(
        self,
        batches: list[Batch],
        result: ApplyResult,
        granted: set[Cell],
        revoked: set[Cell],
    ) -> dict[tuple[str, str, str], CellFailure]:
        failures: dict[tuple[str, str, str], CellFailure] = {}

        async def run_one(batch: Batch) -> None:
            failed: set[tuple[str, str]] = set()
            for failure in await self._send(batch, result):
                failed.add((failure.user, failure.target))
                cell = (failure.user, Target.parse(failure.target))
                # a don't-care cell (re-grant or no-op delete) that failed needs nothing done
                if cell in (granted if batch.operation == "grant" else revoked):
                    failures[(failure.operation, failure.user, failure.target)] = failure
            self._record(batch, failed, revoked)
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
            return [
                CellFailure(user, str(target), batch.operation, code, message)
                for user in batch.user_ids
                for target in batch.targets()
            ]
        if self.journal is not None:
            self.journal.finished(batch.key())
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

    def _record(self, batch: Batch, failed: set[tuple[str, str]], revoked: set[Cell]) -> None:
        if self.ledger is None:
            return
        cells = [(u, t) for u in batch.user_ids for t in batch.targets() if (u, str(t)) not in failed]
        if batch.operation == "grant":
            day = dt.date.fromisoformat(batch.expire_day or "")
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
