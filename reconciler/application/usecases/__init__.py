"""The use cases behind the commands: each command is one call here over an open target, returning data.

The command line only parses options, renders what comes back and sets the exit status. One module per
command family: planning, applying, reports, adoption, tickets.
"""

from reconciler.application.usecases._common import (
    Confirm,
    PlanOptions,
    Progress,
    Tracker,
    desired_and_snapshot,
    ledger_for,
    state_of,
)
from reconciler.application.usecases.adoption import import_live
from reconciler.application.usecases.applying import (
    ApplyOutcome,
    Increment,
    apply,
    execute_and_verify,
    set_embed_ranges,
)
from reconciler.application.usecases.planning import (
    beyond_policy_note,
    full_plan_note,
    make_changed_plan,
    make_plan,
    plan_from,
    take_snapshot,
)
from reconciler.application.usecases.reports import check_policy, explain, make_drift, who_can
from reconciler.application.usecases.tickets import audit_tickets, issue_insight_ticket, issue_ticket
from reconciler.core.apply import Breakers

__all__ = [
    "ApplyOutcome",
    "Breakers",
    "Confirm",
    "Increment",
    "PlanOptions",
    "Progress",
    "Tracker",
    "apply",
    "audit_tickets",
    "beyond_policy_note",
    "check_policy",
    "desired_and_snapshot",
    "execute_and_verify",
    "explain",
    "full_plan_note",
    "import_live",
    "issue_insight_ticket",
    "issue_ticket",
    "ledger_for",
    "make_changed_plan",
    "make_drift",
    "make_plan",
    "plan_from",
    "set_embed_ranges",
    "state_of",
    "take_snapshot",
    "who_can",
]
