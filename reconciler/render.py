"""Plans and drift reports for people: text for terminals, Markdown for pull requests, HTML for reports."""

from __future__ import annotations

import html
import json

from reconciler.drift import DriftReport
from reconciler.plan import Plan

MAX_LISTED_USERS = 200


def plan_text(plan: Plan, markdown: bool = False) -> str:
    s = plan.summary
    lines: list[str] = []
    if markdown:
        lines += [f"### reconciler plan for `{plan.target}`", "", "```diff"]
    else:
        lines.append(f"reconciler plan for target '{plan.target}'")
    for index, (user, change) in enumerate(plan.changes.items()):
        if index == MAX_LISTED_USERS:
            lines.append(f"  … and {len(plan.changes) - MAX_LISTED_USERS} more users (see the JSON plan)")
            break
        who = _name(plan.names, user)
        for day, targets in change.grant.items():
            for target in targets:
                lines.append(f"+ {who}  {_name(plan.names, target)}  (expires {day})")
        for target in change.revoke:
            lines.append(f"- {who}  {_name(plan.names, target)}")
    if markdown:
        lines += ["```", ""]
    if plan.empty:
        lines.append("No changes. Live Smart Q grants match the policy.")
    else:
        lines.append(
            f"Plan: {s.grant_cells} to grant, {s.revoke_cells} to revoke, in {s.calls} SmartqAuthorize "
            f"calls (lower bound {s.lower_bound})."
        )
    notes = []
    if s.protected_cells:
        notes.append(f"{s.protected_cells} undesired grants kept for protected users")
    if s.unmanaged_cells:
        notes.append(f"{s.unmanaged_cells} grants on unmanaged targets left alone")
    if notes:
        lines.append("Not touched: " + "; ".join(notes) + ".")
    return "\n".join(lines) + "\n"


def _name(names: dict[str, str], key: str) -> str:
    name = names.get(key)
    return f"{key} ({name})" if name and name != key else key


def drift_text(report: DriftReport, markdown: bool = False) -> str:
    title = f"Drift report for target '{report.target}'"
    lines = [f"### {title}" if markdown else title]
    sections = [
        ("Missing (policy grants, not live)", report.missing),
        ("Unexpected (live, policy does not grant)", report.unexpected),
        ("Protected (live, not in policy, kept for protected users)", report.protected),
        ("Unmanaged (live on targets no policy manages)", report.unmanaged),
    ]
    for heading, cells in sections:
        if not cells:
            continue
        lines.append("")
        lines.append(f"#### {heading}: {len(cells)}" if markdown else f"{heading}: {len(cells)}")
        for user, target in cells[:MAX_LISTED_USERS]:
            bullet = "- " if markdown else "  "
            lines.append(f"{bullet}{_name(report.names, user)}  {_name(report.names, target)}")
        if len(cells) > MAX_LISTED_USERS:
            lines.append(f"  … and {len(cells) - MAX_LISTED_USERS} more")
    lines.append("")
    lines.append("Drift: none." if report.clean else f"Drift: {report.drift_count} cells differ from policy.")
    return "\n".join(lines) + "\n"


def drift_html(report: DriftReport) -> str:
    rows = []
    for kind, cells in (
        ("missing", report.missing),
        ("unexpected", report.unexpected),
        ("protected", report.protected),
        ("unmanaged", report.unmanaged),
    ):
        for user, target in cells:
            rows.append(
                f"<tr><td>{kind}</td><td>{html.escape(_name(report.names, user))}</td>"
                f"<td>{html.escape(_name(report.names, target))}</td></tr>"
            )
    status = "clean" if report.clean else f"{report.drift_count} cells differ from policy"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Drift: {html.escape(report.target)}</title></head><body>"
        f"<h1>Drift report for {html.escape(report.target)}</h1><p>{html.escape(status)}</p>"
        "<table><thead><tr><th>kind</th><th>user</th><th>target</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>\n"
    )


def drift_json(report: DriftReport) -> str:
    return json.dumps(report.to_dict(), indent=1, sort_keys=True) + "\n"
