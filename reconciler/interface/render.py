"""Plans and drift reports for people: text for terminals, Markdown for pull requests, HTML for reports.

A plan is rendered from its batches, the cells actually sent, never from a side list that could disagree.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from reconciler.core.access import AccessLine
from reconciler.core.drift import ACTIONABLE, HEADINGS, INFORMATIONAL, DriftReport
from reconciler.core.embeds import EmbedChange
from reconciler.core.plan import Batch, Plan
from reconciler.core.ticket_audit import HEADINGS as AUDIT_HEADINGS
from reconciler.core.ticket_audit import KINDS as AUDIT_KINDS
from reconciler.core.ticket_audit import AuditReport
from reconciler.interface import access_map
from reconciler.vocabulary.base import plural, utc_timestamp
from reconciler.vocabulary.cells import Target
from reconciler.vocabulary.redaction import one_line

MAX_LISTED_FINDINGS = 200
MAX_LISTED_LINES = 2000
MAX_TABLE_ROWS = 50


@dataclass
class _UserLines:
    """One user's changes; sets, since batches may overlap (a cell granted by two calls is one change)."""

    granted: set[tuple[Target, dt.date]] = field(default_factory=set)  # new grants
    regranted: set[tuple[Target, dt.date]] = field(default_factory=set)  # live already: expiry set again
    revoked: set[Target] = field(default_factory=set)

    @property
    def size(self) -> int:
        return len(self.granted) + len(self.regranted) + len(self.revoked)


def _user_lines(plan: Plan, user: str, batches: list[Batch]) -> _UserLines:
    """The user's changes in the batches that name them."""
    lines = _UserLines()
    was_live = plan.touched_state.get(user, frozenset())
    for batch in batches:
        for target in batch.targets:
            if batch.operation == "grant":
                (lines.regranted if target in was_live else lines.granted).add((target, batch.day()))
            elif target in was_live:
                lines.revoked.add(target)
    return lines


@dataclass
class _Counts:
    """Per target: cells granted new, granted again (expiry set), revoked; and deletes of cells not live."""

    per_target: dict[Target, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    # the batches naming each user (lines per user are counted only for the users shown)
    batches_of: dict[str, list[Batch]] = field(default_factory=lambda: defaultdict(list))
    no_op_deletes: int = 0

    @property
    def changes(self) -> int:
        return sum(sum(counts) for counts in self.per_target.values())


def _counts(plan: Plan) -> _Counts:
    """Each distinct cell once, though batches may overlap; set operations per target, not a step per cell
    (an onboarding has millions of cells)."""
    counts = _Counts()
    holders: dict[Target, set[str]] = defaultdict(set)  # target -> the touched users that have it live
    for user, targets in plan.touched_state.items():
        for target in targets:
            holders[target].add(user)
    # operation -> target -> the user lists of the batches that carry it
    reached: dict[str, dict[Target, list[list[str]]]] = {"grant": defaultdict(list), "revoke": defaultdict(list)}
    for batch in plan.batches:
        carrying = reached[batch.operation]
        for target in batch.targets:
            carrying[target].append(batch.user_ids)
    no_one: set[str] = set()
    for operation, carrying in reached.items():
        for target, user_lists in carrying.items():
            # a batch names each user once, so one batch needs no set; several are joined
            users: Collection[str] = user_lists[0] if len(user_lists) == 1 else set().union(*user_lists)
            live = holders.get(target)
            hit = live.intersection(users) if live else no_one
            if operation == "grant":
                row = counts.per_target[target]
                row[0] += len(users) - len(hit)
                row[1] += len(hit)
            else:
                if hit:
                    counts.per_target[target][2] += len(hit)
                counts.no_op_deletes += len(users) - len(hit)
    for batch in plan.batches:
        for user in batch.user_ids:
            counts.batches_of[user].append(batch)
    return counts


def _first_users(plan: Plan, counts: _Counts, lines: int) -> dict[str, _UserLines]:
    """Users in name order whose changes make up the first `lines` lines, with their changes (a plan can hold
    millions of cells; only a few thousand lines are ever shown, so only those users' batches are read)."""
    chosen: dict[str, _UserLines] = {}
    total = 0
    for user in sorted(counts.batches_of):
        if total >= lines:
            break
        found = _user_lines(plan, user, counts.batches_of[user])
        if found.size:
            chosen[user] = found
            total += found.size
    return chosen


def plan_text(plan: Plan, markdown: bool = False, max_chars: int | None = None) -> str:
    """The plan for people. With `max_chars` (a pull-request comment), a bounded Markdown summary: counts per
    target, then as many changes as fit, and what was cut."""
    counts = _counts(plan)
    footer = _footer(plan, counts, markdown)
    if max_chars is not None:
        shown = _first_users(plan, counts, max_chars // 40)
        return _bounded(plan, counts, shown, footer, max_chars)
    lines = (
        [f"### reconciler plan for `{_code(plan.target)}`", "", *_policy_lines(plan, True), "```diff"]
        if markdown
        else [f"reconciler plan for target '{plan.target}'", *_policy_lines(plan, False)]
    )
    changes = _change_lines(plan, _first_users(plan, counts, MAX_LISTED_LINES))[:MAX_LISTED_LINES]
    lines += [_code(line) for line in changes] if markdown else changes
    total = counts.changes + len(plan.embed_changes)
    if total > len(changes):
        lines.append(f"  … and {plural(total - len(changes), 'more change')} (see the JSON plan)")
    if markdown:
        lines += ["```", ""]
    return _join(lines + footer)


def _policy_lines(plan: Plan, markdown: bool) -> list[str]:
    """A pull request's policy changes by path, before the cells they lead to."""
    if not plan.policy_changes:
        return []
    if markdown:
        return ["Policy changes from the base:", "", *(f"- `{_code(line)}`" for line in plan.policy_changes), ""]
    return ["Policy changes from the base:", *(f"  {line}" for line in plan.policy_changes), "Cells:"]


def _change_lines(plan: Plan, by_user: dict[str, _UserLines]) -> list[str]:
    lines = [_embed_line(change, plan.names) for change in plan.embed_changes]
    for user, change in by_user.items():
        who = _name(plan.names, user)
        lines += [f"+ {who}  {_name(plan.names, t)}  (expires {day})" for t, day in sorted(change.granted)]
        before = plan.previous_expiry.get(user, {})
        lines += [
            f"~ {who}  {_name(plan.names, t)}  (expiry {before.get(t, 'unrecorded')} → {day})"
            for t, day in sorted(change.regranted)
        ]
        lines += [f"- {who}  {_name(plan.names, t)}" for t in sorted(change.revoked)]
    return lines


def _embed_line(change: EmbedChange, names: dict[str, str]) -> str:
    effect = " and ".join(word for word, flag in (("widens", change.widens), ("narrows", change.narrows)) if flag)
    return f"~ embed {change.embed}  data range: {change.before} → {change.after.describe(names)}" + (
        f"  ({effect} what ticket holders reach)" if effect else ""
    )


def _footer(plan: Plan, counts: _Counts, markdown: bool) -> list[str]:
    s = plan.summary
    lines = []
    if plan.removed_targets:
        listed = ", ".join(_name(plan.names, t) for t in plan.removed_targets)
        lines.append(f"Removed from policy since the last apply, all their grants revoked: {_md(listed, markdown)}")
    if plan.empty:
        lines.append(nothing_to_do(plan))
    else:
        embeds = (
            f" and {plural(len(plan.embed_changes), 'embed data range')} to set (ModifyCopilotEmbedConfig)"
            if plan.embed_changes
            else ""
        )
        lines.append(
            f"Plan: {s.grant_cells:,} to grant, {s.revoke_cells:,} to revoke, in "
            f"{plural(s.calls, 'SmartqAuthorize call')} (lower bound {s.lower_bound:,}){embeds}."
        )
    if plan.partial:
        left = f" {plural(s.out_of_scope_cells, 'other change')} left for later." if s.out_of_scope_cells else ""
        lines.append(f"Partial plan, {_md(plan.partial, markdown)}.{left}")
    notes = []
    if s.skipped_revokes:
        notes.append(f"{plural(s.skipped_revokes, 'revoke')} skipped by --additive")
    if counts.no_op_deletes:
        notes.append(
            f"{plural(counts.no_op_deletes, 'delete')} of grants that are not live ride along in revoke calls "
            "(no effect)"
        )
    if s.protected_cells:
        notes.append(f"{plural(s.protected_cells, 'undesired grant')} kept for protected users")
    if s.unmanaged_cells:
        notes.append(f"{plural(s.unmanaged_cells, 'grant')} on unmanaged targets left alone")
    if notes:
        lines.append("Not touched: " + "; ".join(notes) + ".")
    lines.extend(f"Note: {_md(note, markdown)}" for note in plan.notes)
    lines.extend(f"Policy test FAILED: {_md(failure, markdown)}" for failure in plan.failed_tests)
    return lines


def nothing_to_do(plan: Plan) -> str:
    """What an empty plan means: in sync, or only nothing left within what the run was limited to."""
    left = plan.summary.skipped_revokes + plan.summary.out_of_scope_cells
    if not left and plan.partial:
        return f"No changes. Live Smart Q grants match the policy as far as this run looked ({plan.partial})."
    if not left:
        return "No changes. Live Smart Q grants match the policy."
    return (
        f"No changes in this plan, but live grants do not match the policy yet: {plural(left, 'change')} left "
        "out (see below)."
    )


def access_text(lines: list[AccessLine], heading: str) -> str:
    """`explain` and `who-can` for people: one line per cell, its state, expiry and why."""
    out = [heading]
    for line in lines:
        who = f"{line.user} ({line.account})" if line.account else line.user
        what = f"{line.target} ({line.target_name})" if line.target_name else line.target
        expiry = f"expires {line.expiry}" if line.expiry else ""
        if line.recorded and line.recorded != line.expiry:
            expiry += f"{'; ' if expiry else ''}ledger {line.recorded}"
        detail = "; ".join(part for part in (expiry, line.why) if part)
        out.append(f"  {line.state:<10} {who}  {what}" + (f"  [{detail}]" if detail else ""))
    if not lines:
        out.append("  (nothing: no grant in the policy and none live)")
    return _join(out)


def _bounded(plan: Plan, all_counts: _Counts, by_user: dict[str, _UserLines], footer: list[str], max_chars: int) -> str:
    counts = all_counts.per_target
    head = [f"### reconciler plan for `{_code(plan.target)}`", "", *_policy_lines(plan, True)]
    if plan.grants_by_statement:
        head += ["| grant statement | cells to grant |", "|---|---:|"]
        for label, count in list(plan.grants_by_statement.items())[:MAX_TABLE_ROWS]:
            head.append(f"| {_md(label, True)} | {count} |")
        head.append("")
    if counts:
        head += ["| target | grant | expiry set | revoke |", "|---|---:|---:|---:|"]
        ranked = sorted(counts.items(), key=lambda item: (-sum(item[1]), item[0]))
        for target, (grant, regrant, revoke) in ranked[:MAX_TABLE_ROWS]:
            head.append(f"| {_md(_name(plan.names, target), True)} | {grant} | {regrant} | {revoke} |")
        if len(ranked) > MAX_TABLE_ROWS:
            head.append(f"| … {len(ranked) - MAX_TABLE_ROWS} more targets | | | |")
        head.append("")
    changes = _change_lines(plan, by_user)
    tail = ["```", "", *footer]
    budget = max_chars - len(_join([*head, "```diff", *tail])) - 200  # room for the cut notice
    shown: list[str] = []
    for line in changes:
        cost = len(_code(line)) + 1
        if cost > budget:
            break
        shown.append(_code(line))
        budget -= cost
    cut = all_counts.changes + len(plan.embed_changes) - len(shown)
    notice = [
        f"… {cut:,} of {plural(all_counts.changes, 'change')} not shown here: the full plan is in the job summary and "
        "artefact."
    ]
    text = _join([*head, "```diff", *shown, *tail, *(notice if cut else [])])
    return text[:max_chars]


def _name(names: dict[str, str], named: str | Target) -> str:
    """`key (name)`: the id (a user's, or a target's `kind:id`), and the display name Quick BI gives it."""
    key = str(named)
    name = names.get(key)
    return f"{key} ({name})" if name and name != key else key


def _join(lines: list[str]) -> str:
    """The lines of a rendering, each kept to one line whatever the strings inside it hold."""
    return "\n".join(map(one_line, lines)) + "\n"


def _code(text: str) -> str:
    """Text safe inside a Markdown code block or span: a backtick run could close it and inject Markdown."""
    return text.replace("`", "\u02cb")  # modifier letter grave: looks alike, closes nothing


_MARKDOWN_SYNTAX = re.compile(r"([\\*\[\]|~])")


def _md(text: str, markdown: bool) -> str:
    """Text safe in Markdown prose: HTML escaped, and the characters that make links, emphasis, strike-through
    or table cells taken literally."""
    return _MARKDOWN_SYNTAX.sub(r"\\\1", html.escape(_code(text), quote=False)) if markdown else text


def drift_text(report: DriftReport, markdown: bool = False) -> str:
    title = f"Drift report for target '{report.target}'"
    lines = [f"### {_md(title, markdown)}" if markdown else title]
    for kind in (*ACTIONABLE, *INFORMATIONAL):
        findings = report.findings.get(kind, [])
        if not findings:
            continue
        heading = f"{HEADINGS[kind]}: {len(findings)}"
        lines += ["", f"#### {heading}" if markdown else heading]
        for user, target, detail in findings[:MAX_LISTED_FINDINGS]:
            text = f"{_name(report.names, user)}  {_name(report.names, target)}" + (f"  ({detail})" if detail else "")
            lines.append(f"- {_md(text, True)}" if markdown else f"  {text}")
        if len(findings) > MAX_LISTED_FINDINGS:
            lines.append(f"  … and {len(findings) - MAX_LISTED_FINDINGS} more")
    lines.append("")
    lines.extend(f"Note: {_md(note, markdown)}" for note in report.notes)
    lines.append("Drift: none." if report.clean else f"Drift: {report.drift_count} differences from policy.")
    return _join(lines)


def drift_html(report: DriftReport) -> str:
    """The access map of the report: drawn from its JSON, so it shows nothing the JSON lacks."""
    return access_map.page(access_map.drift_map(report.to_dict(), HEADINGS))


def drift_json(report: DriftReport) -> str:
    return json.dumps(report.to_dict(), indent=1, sort_keys=True) + "\n"


def audit_text(report: AuditReport, markdown: bool = False) -> str:
    """The ticket audit for people: findings by kind (tickets masked), then the totals and notes."""
    title = f"Ticket audit for DataArts Insight target '{report.target}'"
    lines = [f"### {_md(title, markdown)}" if markdown else title]
    for kind in AUDIT_KINDS:
        findings = report.findings.get(kind, [])
        if not findings:
            continue
        heading = f"{AUDIT_HEADINGS[kind]}: {len(findings)}"
        lines += ["", f"#### {heading}" if markdown else heading]
        for ticket, embed, user, detail in findings[:MAX_LISTED_FINDINGS]:
            text = "  ".join(part for part in (ticket, f"embed {embed}" if embed else "", user) if part)
            text += f"  ({detail})" if detail else ""
            lines.append(f"- {_md(text, True)}" if markdown else f"  {text}")
        if len(findings) > MAX_LISTED_FINDINGS:
            lines.append(f"  … and {len(findings) - MAX_LISTED_FINDINGS} more")
    lines.append("")
    lines.extend(f"Note: {_md(note, markdown)}" for note in report.notes)
    verdict = "no findings" if report.clean else f"{report.finding_count} findings"
    listings = f"{report.listings} listing" + ("s" if report.listings != 1 else "")
    lines.append(f"{report.tickets} valid tickets listed in {listings}: {verdict}.")
    return _join(lines)


def audit_json(report: AuditReport) -> str:
    return json.dumps(report.to_dict(), indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Options:
    """What a rendering may be given besides its report."""

    max_chars: int | None = None  # a bounded Markdown summary (a pull-request comment)
    heading: str = ""  # explain and who-can: the question answered
    target: str = ""  # explain and who-can: the target read


def _access_json(lines: list[AccessLine], options: Options) -> str:
    return json.dumps([line.to_dict() for line in lines], indent=1, ensure_ascii=False) + "\n"


# One registry per report kind: a new format is one entry, and the command line offers exactly these.
PLAN: dict[str, Callable[[Plan, Options], str]] = {
    "text": lambda plan, options: plan_text(plan),
    "markdown": lambda plan, options: plan_text(plan, markdown=True, max_chars=options.max_chars),
    "json": lambda plan, options: plan.to_json(),
    "html": lambda plan, options: access_map.page(access_map.plan_map(json.loads(plan.to_json()))),
}
DRIFT: dict[str, Callable[[DriftReport, Options], str]] = {
    "text": lambda report, options: drift_text(report),
    "markdown": lambda report, options: drift_text(report, markdown=True),
    "json": lambda report, options: drift_json(report),
    "html": lambda report, options: drift_html(report),
}
ACCESS: dict[str, Callable[[list[AccessLine], Options], str]] = {
    "text": lambda lines, options: access_text(lines, options.heading),
    "json": _access_json,
    "html": lambda lines, options: access_map.page(
        access_map.access_map([line.to_dict() for line in lines], options.heading, options.target, utc_timestamp())
    ),
}
AUDIT: dict[str, Callable[[AuditReport, Options], str]] = {
    "text": lambda report, options: audit_text(report),
    "markdown": lambda report, options: audit_text(report, markdown=True),
    "json": lambda report, options: audit_json(report),
}
