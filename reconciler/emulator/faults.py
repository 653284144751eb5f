"""Limits and faults the emulator can inject: per-API QPS, latency, 5xx answers, drops, slow answers."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from reconciler.vocabulary.fault_settings import FaultSettings


@dataclass
class FaultInjector:
    """Seeded, so a failing run can be replayed with the same settings."""

    settings: FaultSettings = field(default_factory=FaultSettings)

    def __post_init__(self) -> None:
        self._random = random.Random(self.settings.seed)
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self.throttled = 0
        self.accepted = 0

    def for_action(self, action: str) -> FaultSettings:
        """The faults that apply to one API: all of them, or none when `actions` leaves it out."""
        actions = self.settings.actions
        return self.settings if actions is None or action in actions else _NO_FAULTS

    def roll(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._random.random() < rate

    def admit(self, action: str) -> float | None:
        """Count one request against `action`'s QPS window; the wait in seconds if it is refused."""
        qps = self.settings.qps
        if not qps:
            return None
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(action, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= qps:
                self.throttled += 1
                return max(window[0] + 1.0 - now, 0.001)
            window.append(now)
            self.accepted += 1
            return None


_NO_FAULTS = FaultSettings()
