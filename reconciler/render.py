"""Plans and drift reports for people: text for terminals, Markdown for pull requests, HTML for reports.

A plan is rendered from its batches, the cells actually sent, never from a side list that could disagree.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass, field

from reconciler.drift import ACTIONABLE, HEADINGS, INFORMATIONAL, DriftReport
from reconciler.plan import Plan

MAX_LISTED_USERS = 200


@dataclass
class _UserLines:
    granted: list[tuple[str, str]] = field(default_factory=list)  # (target, day), new grants
    regranted: list[tuple[str, str]] = field(default_factory=list)  # live already: expiry set again
    revoked: list[str] = field(default_factory=list)
    no_op_deletes: int = 0


def _by_user(plan: Plan) -> dict[str, _UserLines]:
    users: dict[str, _UserLines] = defaultdict(_UserLines)
    live = {user: set(targets) for user, targets in plan.touched_state.items()}
    for batch in plan.batches:
        for user, target in batch.cells():
            was_live = str(target) in live.get(user, set())
            lines = users[user]
            if batch.operation == "grant":
                (lines.regranted if was_live else lines.granted).append((str(target), batch.expire_day or ""))
            elif was_live:
                lines.revoked.append(str(target))
            else:
                lines.no_op_deletes += 1
    return dict(sorted(users.items()))


def plan_text(plan: Plan, markdown: bool = False) -> str:
    s = plan.summary
    lines: list[str] = []
    if markdown:
        lines += [f"### reconciler plan for `{_code(plan.target)}`", "", "```diff"]
    else:
        lines.append(f"reconciler plan for target '{plan.target}'")
    by_user = _by_user(plan)
    no_op_deletes = 0
    for index, (user, change) in enumerate(by_user.items()):
        no_op_deletes += change.no_op_deletes
        if index >= MAX_LISTED_USERS:
            continue
        who = _name(plan.names, user)
        for target, day in sorted(change.granted):
            lines.append(f"+ {who}  {_name(plan.names, target)}  (expires {day})")
        for target, day in sorted(change.regranted):
            lines.append(f"~ {who}  {_name(plan.names, target)}  (expiry set to {day})")
        for target in sorted(change.revoked):
            lines.append(f"- {who}  {_name(plan.names, target)}")
    if len(by_user) > MAX_LISTED_USERS:
        lines.append(f"  … and {len(by_user) - MAX_LISTED_USERS} more users (see the JSON plan)")
    if markdown:
        lines = [_code(line) if i > 2 else line for i, line in enumerate(lines)]
        lines += ["```", ""]
    if plan.removed_targets:
        listed = ", ".join(_name(plan.names, t) for t in plan.removed_targets)
        lines.append(f"Removed from policy since the last apply, all their grants revoked: {_md(listed, markdown)}")
    if plan.empty:
        lines.append("No changes. Live Smart Q grants match the policy.")
    else:
        lines.append(
            f"Plan: {s.grant_cells} to grant, {s.revoke_cells} to revoke, in {s.calls} SmartqAuthorize "
            f"calls (lower bound {s.lower_bound})."
        )
    notes = []
    if no_op_deletes:
        notes.append(f"{no_op_deletes} deletes of grants that are not live ride along in revoke calls (no effect)")
    if s.protected_cells:
        notes.append(f"{s.protected_cells} undesired grants kept for protected users")
    if s.unmanaged_cells:
        notes.append(f"{s.unmanaged_cells} grants on unmanaged targets left alone")
    if notes:
        lines.append("Not touched: " + "; ".join(notes) + ".")
    lines.extend(f"Note: {_md(note, markdown)}" for note in plan.notes)
    return "\n".join(lines) + "\n"


def _name(names: dict[str, str], key: str) -> str:
    """`key (name)`, with control characters in either shown escaped: a name must not forge a plan line."""
    name = names.get(key)
    text = f"{key} ({name})" if name and name != key else key
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _code(text: str) -> str:
    """Text safe inside a Markdown code block or span: a backtick run could close it and inject Markdown."""
    return text.replace("`", "\u02cb")  # modifier letter grave: looks alike, closes nothing


def _md(text: str, markdown: bool) -> str:
    return html.escape(_code(text), quote=False) if markdown else text


def drift_text(report: DriftReport, markdown: bool = False) -> str:
    title = f"Drift report for target '{report.target}'"
    lines = [f"### {_md(title, markdown)}" if markdown else title]
    for kind in (*ACTIONABLE, *INFORMATIONAL):
        findings = report.findings.get(kind, [])
        if not findings:
            continue
        heading = f"{HEADINGS[kind]}: {len(findings)}"
        lines += ["", f"#### {heading}" if markdown else heading]
        for user, target, detail in findings[:MAX_LISTED_USERS]:
            text = f"{_name(report.names, user)}  {_name(report.names, target)}" + (f"  ({detail})" if detail else "")
            lines.append(f"- {_md(text, True)}" if markdown else f"  {text}")
        if len(findings) > MAX_LISTED_USERS:
            lines.append(f"  … and {len(findings) - MAX_LISTED_USERS} more")
    lines.append("")
    lines.extend(f"Note: {_md(note, markdown)}" for note in report.notes)
    lines.append("Drift: none." if report.clean else f"Drift: {report.drift_count} cells differ from policy.")
    return "\n".join(lines) + "\n"


def drift_html(report: DriftReport) -> str:
    rows = []
    for kind in (*ACTIONABLE, *INFORMATIONAL):
        for user, target, detail in report.findings.get(kind, []):
            rows.append(
                f"<tr><td>{kind}</td><td>{html.escape(_name(report.names, user))}</td>"
                f"<td>{html.escape(_name(report.names, target))}</td><td>{html.escape(detail)}</td></tr>"
            )
    status = "clean" if report.clean else f"{report.drift_count} cells differ from policy"
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in report.notes)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Drift: {html.escape(report.target)}</title></head><body>"
        f"<h1>Drift report for {html.escape(report.target)}</h1><p>{html.escape(status)}</p>{notes}"
        "<table><thead><tr><th>kind</th><th>user</th><th>target</th><th>detail</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>\n"
    )


def drift_json(report: DriftReport) -> str:
    return json.dumps(report.to_dict(), indent=1, sort_keys=True) + "\n"
