"""Client pacing benchmark: achieved request rate against the served emulator's per-API QPS limit.

Run: python -m benchmarks.client_bench [--qps 50] [--calls 1000]
The client is configured with the same QPS as the emulator's limit. Reported: achieved QPS / limit (target
>= 0.90), requests the emulator throttled, and the longest run of consecutive refusals any one call met
(target: never two in a row).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from reconciler.adapters.quickbi import ClientSettings
from reconciler.emulator import Emulator, FaultSettings

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo-org.yaml"


async def run(endpoint: str, emulator: Emulator, qps: float, calls: int) -> tuple[float, int, int]:
    settings = ClientSettings(smartq_qps=qps, max_concurrency=32)
    users = sorted(emulator.backend.users)
    async with emulator.client(settings, endpoint=endpoint) as client:
        await client.user_grants(users[0])  # warm the connection pool
        await asyncio.sleep(1.1)  # let the emulator's one-second window empty
        start = time.perf_counter()
        await asyncio.gather(*(client.user_grants(users[i % len(users)]) for i in range(calls)))
        elapsed = time.perf_counter() - start
        return calls / elapsed, client.throttled, client.worst_throttle_streak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qps", type=float, default=50)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    emulator = Emulator.from_file(DEMO, faults=FaultSettings(qps=args.qps))
    with emulator.serve() as server:
        achieved, throttled, streak = asyncio.run(run(server.endpoint, emulator, args.qps, args.calls))
    print("| calls | limit QPS | achieved QPS | achieved / limit | throttled | worst refusal streak |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.calls} | {args.qps:g} | {achieved:.1f} | {achieved / args.qps:.3f} | {throttled} | {streak} |")


if __name__ == "__main__":
    main()
