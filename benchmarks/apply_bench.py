"""Apply benchmark: a plan of thousands of batches against the served emulator, at a fixed QPS limit, faults on.

Run: python -m benchmarks.apply_bench [--users 3000] [--qps 50]
Reported for reconciler's executor: achieved QPS / limit, calls made / calls planned, cells left wrong; and for
a plain sequential script using the official SDK on the same plan (fresh emulator, same faults): its wall
time and cells left wrong, both measured in this run. Ratios, not absolute times, are the figures to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from collections.abc import Set
from pathlib import Path

from alibabacloud_quickbi_public20220101 import models as sdk_models
from alibabacloud_quickbi_public20220101.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from reconciler.adapters.quickbi import ClientSettings, QuickBIAccess
from reconciler.core.apply import Executor, outstanding
from reconciler.core.diff import Changes
from reconciler.core.ledger import Ledger
from reconciler.core.plan import PlanInputs, build_plan
from reconciler.core.snapshot import Snapshot
from reconciler.emulator import Emulator, FaultSettings
from reconciler.emulator.orgfile import OrgFile
from reconciler.vocabulary.cells import Target

DAY = dt.date(2099, 12, 31)
FAULTS = {"error_rate": 0.02, "drop_rate": 0.01, "partial_rate": 0.002, "latency_ms": 5.0}


def organisation(users: int, cubes: int) -> OrgFile:
    return OrgFile.model_validate(
        {
            "access_keys": [{"id": "bench-ak", "secret": "bench-secret"}],
            "users": [{"id": f"u{i:05d}", "account": f"a{i}"} for i in range(users)],
            "llm_cubes": [{"id": f"c{i:03d}", "alias": f"C{i}"} for i in range(cubes)],
        }
    )


def wrong_cells(emulator: Emulator, wanted: Set[tuple[str, str, str]]) -> int:
    return len(wanted - set(emulator.backend.live_grants()))


async def reconciler_run(emulator: Emulator, endpoint: str, plan: object, qps: float) -> tuple[float, int, int]:
    settings = ClientSettings(write_qps=qps, max_concurrency=32, max_backoff=1.0, timeout=5.0)
    with tempfile.TemporaryDirectory() as folder:
        async with emulator.client(settings, endpoint=endpoint) as client:
            ledger = Ledger(Path(folder) / "l.tsv")
            executor = Executor(QuickBIAccess(client), ledger)
            work = outstanding(plan, Snapshot({}), ledger)  # type: ignore[arg-type]
            start = time.perf_counter()
            result = await executor.run(work)
            return time.perf_counter() - start, result.calls, client.attempts


def sdk_run(endpoint: str, plan: object) -> float:
    config = Config(access_key_id="bench-ak", access_key_secret="bench-secret", endpoint=endpoint, protocol="http")
    client = Client(config)
    runtime = RuntimeOptions(autoretry=True, max_attempts=5, read_timeout=5000)
    start = time.perf_counter()
    for batch in plan.batches:  # type: ignore[attr-defined]
        request = sdk_models.SmartqAuthorizeRequest(
            operation_type=0,
            user_ids=",".join(batch.user_ids),
            llm_cubes=",".join(batch.ids("llm_cube")),
            expire_day=batch.expire_day.isoformat(),
        )
        while True:
            try:
                client.smartq_authorize_with_options(request, runtime)
                break
            except Exception as error:  # the SDK raises one generic type per HTTP class
                wait = getattr(error, "retry_after", None)
                if wait is None and getattr(error, "code", "") not in ("ServiceUnavailable",):
                    break  # a plain script gives up on anything it does not understand
                time.sleep((wait or 200) / 1000)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--qps", type=float, default=50)
    args = parser.parse_args()
    cubes = 100
    cells = frozenset((f"u{u:05d}", Target("llm_cube", f"c{c:03d}")) for u in range(args.users) for c in range(cubes))
    changes = Changes(grants={DAY: cells}, revokes=frozenset(), revocable={})
    plan = build_plan("bench", changes, PlanInputs(policy_digest="-", snapshot_digest="-"), {}, {})
    wanted = {(u, t.kind, t.id) for u, t in cells}
    faults = FaultSettings(qps=args.qps, seed=1, **FAULTS)

    ours = Emulator(organisation(args.users, cubes), faults=faults)
    with ours.serve() as server:
        accepted_before = ours.app.faults.accepted
        elapsed, calls, attempts = asyncio.run(reconciler_run(ours, server.endpoint, plan, args.qps))
        accepted = ours.app.faults.accepted - accepted_before
    ours_wrong = wrong_cells(ours, wanted)

    theirs = Emulator(organisation(args.users, cubes), faults=FaultSettings(qps=args.qps, seed=1, **FAULTS))
    with theirs.serve() as server:
        sdk_elapsed = sdk_run(f"127.0.0.1:{server.port}", plan)
    sdk_wrong = wrong_cells(theirs, wanted)

    planned = len(plan.batches)
    print(f"plan: {planned} batches, {len(cells):,} cells; emulator limit {args.qps:g} QPS; faults {FAULTS}")
    print(
        "| runner | wall s | accepted QPS / limit | batches / s / limit | calls / planned | HTTP attempts / planned "
        "| cells left wrong | wall / reconciler |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| reconciler | {elapsed:.1f} | {accepted / elapsed / args.qps:.3f} | {planned / elapsed / args.qps:.3f} | "
        f"{calls / planned:.3f} | {attempts / planned:.3f} | {ours_wrong} | 1.00 |"
    )
    print(
        f"| sequential SDK script | {sdk_elapsed:.1f} | - | {planned / sdk_elapsed / args.qps:.3f} | - | - | "
        f"{sdk_wrong} | {sdk_elapsed / elapsed:.2f} |"
    )


if __name__ == "__main__":
    main()
