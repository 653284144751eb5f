"""Client-side pacing: calls of one API spaced evenly so that no one-second window exceeds the limit.

Quick BI counts calls per API in one-second windows. A token bucket (aiolimiter and the like) lets a bucket's
worth through at once and then refills, so a window can hold the burst plus a second's refill: nearly twice
the limit. Spacing every call 1/rate apart, in the order callers asked, cannot overshoot.
"""

from __future__ import annotations

import asyncio
import time

HEADROOM = 0.97  # arrivals jitter on the network; a little slack keeps jittered neighbours in separate windows


class Pacer:
    def __init__(self, qps: float) -> None:
        self.interval = 1.0 / (qps * HEADROOM)
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
