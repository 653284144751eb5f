"""Drift classification and the human renderings of plans and drift."""

from __future__ import annotations

import datetime as dt
import json

from reconciler.cells import Target
from reconciler.diff import diff
from reconciler.drift import drift
from reconciler.plan import build_plan
from reconciler.render import drift_html, drift_json, drift_text, plan_text
from reconciler.resolve import Desired
from reconciler.snapshot import Snapshot

A, B, X = Target("llm_cube", "a"), Target("theme", "b"), Target("llm_cube", "x")
DESIRED = Desired(
    {("u1", A): dt.date(2099, 12, 31), ("u2", B): dt.date(2099, 12, 31)},
    frozenset({A, B}),
    frozenset({"root"}),
    {"u1": "alice", "u2": "bob<script>"},
    {A: "Sales", B: "Q4", X: "Ops"},
    "sha256:p",
)
LIVE = Snapshot({"u1": frozenset({A, X}), "u3": frozenset({B}), "root": frozenset({A})})


def test_drift_classifies_every_live_and_desired_cell() -> None:
    report = drift("demo", DESIRED, LIVE)
    assert report.missing == [("u2", "theme:b")]
    assert report.unexpected == [("u3", "theme:b")]
    assert report.protected == [("root", "llm_cube:a")]
    assert report.unmanaged == [("u1", "llm_cube:x")]
    assert not report.clean and report.drift_count == 2
    assert json.loads(drift_json(report))["missing"] == [{"user": "u2", "target": "theme:b"}]
    assert "Missing (policy grants, not live): 1" in drift_text(report)
    assert drift_text(report, markdown=True).startswith("### Drift report")
    page = drift_html(report)
    assert "bob&lt;script&gt;" in page and "<script>" not in page


def test_plan_text_lists_changes_and_the_call_count() -> None:
    changes = diff(DESIRED, LIVE, {}, dt.date(2026, 11, 23))
    names = {**DESIRED.directory, **{str(t): n for t, n in DESIRED.target_names.items()}}
    plan = build_plan("demo", changes, "sha256:p", LIVE.digest(), {}, "", names)
    text = plan_text(plan)
    assert "+ u2 (bob<script>)  theme:b (Q4)  (expires 2099-12-31)" in text
    assert "- u3  theme:b (Q4)" in text
    assert "Plan: 1 to grant, 1 to revoke, in 2 SmartqAuthorize calls (lower bound 2)." in text
    assert "1 undesired grants kept for protected users" in text
