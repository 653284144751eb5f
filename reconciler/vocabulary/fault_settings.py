"""The faults an emulator injects: a setting of emulator targets in the config, and of the emulator itself.

Its own module so that the emulator never imports the production configuration, and the configuration never
loads the emulator.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from reconciler.vocabulary.base import StrictModel


class FaultSettings(StrictModel):
    """Faults the emulator injects. All default to a well-behaved server; rates are probabilities per request
    (per cell for `partial_rate`). Part of the configuration, since emulator targets rehearse a flaky API."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    qps: float | None = Field(default=None, gt=0)
    latency_ms: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    drop_rate: float = Field(default=0.0, ge=0, le=1)
    slow_rate: float = Field(default=0.0, ge=0, le=1)
    slow_seconds: float = Field(default=15.0, gt=0)
    partial_rate: float = Field(default=0.0, ge=0, le=1)
    # per cell: SmartqAuthorize says done but leaves it undone (a vendor bug only a read-back can see)
    silent_rate: float = Field(default=0.0, ge=0, le=1)
    seed: int = 0
    # the APIs latency, errors, drops and slow answers apply to (all when unset); throttling applies to all
    actions: list[str] | None = None
