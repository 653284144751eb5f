"""Applying a plan: admission of a saved plan against today's policy and live state, circuit breakers, the
executor that sends the outstanding batches and records each in the expiry ledger, and the verifier that reads
users back while the writes go on. The apply command (`usecases.apply`) runs them in that order."""

from reconciler.core.apply.admission import admit, lacking_changes
from reconciler.core.apply.breakers import Breakers, check_breakers
from reconciler.core.apply.executor import ApplyResult, Executor, Work, outstanding
from reconciler.core.apply.verifier import Verification, Verifier

__all__ = [
    "ApplyResult",
    "Breakers",
    "Executor",
    "Verification",
    "Verifier",
    "Work",
    "admit",
    "check_breakers",
    "lacking_changes",
    "outstanding",
]
