"""The HTML access map: one self-contained page (inline CSS and script, nothing fetched) showing who can reach
what, drawn from a report's JSON so that the page shows nothing the JSON lacks.

Each report kind (drift, plan, who-can/explain) is first turned into one map document: a summary of counts, the
users (with their policy group) and targets in scope, and one entry per cell with its state and the policy
line or reason that explains it. The page's script draws the matrix from that document with DOM text nodes
only (no markup is ever built from data), so a hostile alias is text.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

# cell states, in the order of precedence when several apply, each with its legend symbol and words
STATES: dict[str, tuple[str, str]] = {
    "revoke": ("\u2212", "to revoke"),
    "grant": ("+", "to grant"),
    "expiry": ("~", "expiry to set again"),
    "ok": ("\u2713", "granted as policy says"),
    "protected": ("P", "protected user, kept"),
    "unmanaged": ("U", "unmanaged target, left alone"),
}
DRIFT_STATES = {
    "missing": "grant",
    "unexpected": "revoke",
    "removed_target": "revoke",
    "expiry_differs": "expiry",
    "renewal_due": "expiry",
    "unconfirmed_expiry": "expiry",
    "protected": "protected",
    "unmanaged": "unmanaged",
}
DRIFT_REASONS = {
    "unexpected": "no grant in the policy gives it",
    "removed_target": "target removed from the policy since the last apply",
    "protected": "no grant gives it; kept because the user is protected",
    "unmanaged": "target not managed by the policy: left alone",
}
# past these, rows are users' groups and columns targets' kinds until the reader filters (a browser tab
# stays responsive with some 60,000 table cells)
MAX_ROWS = 300
MAX_COLUMNS = 200


class _Builder:
    """Collects users, targets and cells, each user and target once, each cell with its strongest state."""

    def __init__(self) -> None:
        self.users: dict[str, list[str]] = {}
        self.targets: dict[str, list[str]] = {}
        self.cells: dict[tuple[str, str], list[str]] = {}

    def user(self, user: str, account: str = "", group: str = "") -> None:
        self.users.setdefault(user, [user, account, group])

    def target(self, target: str, name: str = "") -> None:
        self.targets.setdefault(target, [target, name, target.partition(":")[0]])

    def cell(self, user: str, target: str, state: str, why: str, account: str = "", name: str = "") -> None:
        self.user(user, account)
        self.target(target, name)
        held = self.cells.get((user, target))
        if held is None or list(STATES).index(state) < list(STATES).index(held[0]):
            self.cells[(user, target)] = [state, why]

    def document(
        self, title: str, target: str, read_at: str, summary: list[list[Any]], notes: list[str]
    ) -> dict[str, Any]:
        users = sorted(self.users.values(), key=lambda u: (u[2] == "", u[2], u[1] or u[0], u[0]))
        targets = sorted(self.targets.values(), key=lambda t: (t[2], t[1] or t[0], t[0]))
        user_index = {u[0]: i for i, u in enumerate(users)}
        target_index = {t[0]: i for i, t in enumerate(targets)}
        reasons: dict[str, int] = {}
        cells = [
            [user_index[u], target_index[t], state, reasons.setdefault(why, len(reasons))]
            for (u, t), (state, why) in sorted(self.cells.items())
        ]
        return {
            "title": title,
            "target": target,
            "read_at": read_at,
            "summary": summary,
            "notes": notes,
            "users": users,
            "targets": targets,
            "cells": cells,
            "reasons": list(reasons),
            "states": {state: list(legend) for state, legend in STATES.items()},
            "limits": [MAX_ROWS, MAX_COLUMNS],
        }


def drift_map(report: dict[str, Any], headings: dict[str, str]) -> dict[str, Any]:
    """The map of a drift report's JSON (`DriftReport.to_dict()`)."""
    build = _Builder()
    for user in report.get("users", []):
        build.user(user["id"], user.get("account", ""), user.get("group", ""))
    for target in report.get("targets", []):
        build.target(target["id"], target.get("name", ""))
    for cell in report.get("in_sync", []):
        build.cell(cell["user"], cell["target"], "ok", cell.get("why", ""))
    summary: list[list[Any]] = [["granted as policy says", len(report.get("in_sync", [])), "ok"]]
    for kind, state in DRIFT_STATES.items():
        found = report.get(kind, [])
        summary.append([headings[kind], len(found), state])
        for cell in found:
            why = cell.get("why") or DRIFT_REASONS.get(kind, "")
            detail = cell.get("detail", "")
            build.cell(cell["user"], cell["target"], state, f"{why}; {detail}" if detail and why else why or detail)
    summary.append([headings["embed_range"], len(report.get("embed_range", [])), ""])
    summary.append([headings["unrecorded_expiry"], len(report.get("unrecorded_expiry", [])), ""])
    title = f"Access map and drift for target '{report['target']}'"
    return build.document(title, report["target"], report.get("read_at", ""), summary, report.get("notes", []))


def plan_map(plan: dict[str, Any]) -> dict[str, Any]:
    """The map of a plan file's JSON: every cell a batch grants or revokes, against the live state it read."""
    build = _Builder()
    names: dict[str, str] = plan.get("names", {})
    live: dict[str, list[str]] = plan.get("touched_state", {})
    counts = {"grant": 0, "expiry": 0, "revoke": 0, "no-op": 0}
    for batch in plan.get("batches", []):
        targets = (
            [f"llm_cube:{i}" for i in batch["llm_cubes"]]
            + [f"theme:{i}" for i in batch["llm_cube_themes"]]
            + [f"dataset:{i}" for i in batch.get("cube_ids", [])]
        )
        for user in batch["user_ids"]:
            held = set(live.get(user, []))
            for target in targets:
                if batch["operation"] == "grant":
                    state = "expiry" if target in held else "grant"
                    why = f"expires {batch['expire_day']}"
                elif target in held:
                    state, why = "revoke", "revoked by the plan"
                else:
                    counts["no-op"] += 1
                    continue
                if (user, target) not in build.cells:
                    counts[state] += 1
                build.cell(user, target, state, why, names.get(user, ""), names.get(target, ""))
    for user, targets in live.items():
        for target in targets:
            if (user, target) not in build.cells:
                build.cell(user, target, "ok", "live, unchanged", names.get(user, ""), names.get(target, ""))
    summary = [
        ["cells to grant", counts["grant"], "grant"],
        ["cells whose expiry is set again", counts["expiry"], "expiry"],
        ["cells to revoke", counts["revoke"], "revoke"],
        ["SmartqAuthorize calls", plan.get("summary", {}).get("calls", 0), ""],
    ]
    title = f"Plan for target '{plan.get('target', '')}'"
    return build.document(title, plan.get("target", ""), plan.get("created_at", ""), summary, plan.get("notes", []))


ACCESS_STATES = {
    "granted": "ok",
    "to grant": "grant",
    "to revoke": "revoke",
    "protected": "protected",
    "unmanaged": "unmanaged",
}


def access_map(lines: list[dict[str, Any]], heading: str, target: str, read_at: str) -> dict[str, Any]:
    """The map of `explain` / `who-can` lines (their JSON): one cell per line."""
    build = _Builder()
    counts: dict[str, int] = {}
    for line in lines:
        counts[line["state"]] = counts.get(line["state"], 0) + 1
        if line["state"] not in ACCESS_STATES:
            continue  # "not live": a grant the policy keeps only while live, and it is not: no access to draw
        state = ACCESS_STATES[line["state"]]
        why = "; ".join(part for part in (line.get("why"), line.get("expiry")) if part)
        build.cell(line["user"], line["target"], state, why, line.get("account") or "", line.get("target_name") or "")
    summary = [[state, count, ACCESS_STATES.get(state, "")] for state, count in sorted(counts.items())]
    return build.document(heading, target, read_at, summary, [])


def page(document: dict[str, Any]) -> str:
    """The self-contained HTML page for a map document."""
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    # inside <script>, only "</" could end the element early; \\u escapes keep the JSON the same value
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    template = resources.files(__package__).joinpath("access_map.html").read_text(encoding="utf-8")
    return template.replace("@TITLE@", html.escape(document["title"])).replace("@DATA@", data)
