"""Drift classification and the human renderings of plans and drift."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

from reconciler.core.diff import Changes, diff
from reconciler.core.drift import drift
from reconciler.core.plan import Batch, Plan, PlanInputs, PlanSummary, build_plan
from reconciler.core.policy import Rolling
from reconciler.core.resolve import Desired, DesiredCells
from reconciler.core.snapshot import Snapshot
from reconciler.interface import render
from reconciler.interface.render import _counts, _user_lines, drift_html, drift_json, drift_text, plan_text
from reconciler.vocabulary.cells import Target
from tests.conftest import CliResult

TODAY = dt.date(2026, 11, 23)
NEVER = dt.date(2099, 12, 31)
A, B, X = Target("llm_cube", "a"), Target("theme", "b"), Target("llm_cube", "x")
C, R, GONE = Target("llm_cube", "c"), Target("theme", "r"), Target("llm_cube", "gone")
DESIRED = Desired(
    DesiredCells.of(
        {
            ("u1", A): NEVER,
            ("u2", B): NEVER,
            ("u4", C): dt.date(2027, 1, 1),
            ("u5", R): Rolling(ttl=30, renew_within=7),
            ("u6", A): NEVER,
        }
    ),
    frozenset({A, B, C, R}),
    frozenset({"root"}),
    {"u1": "alice", "u2": "bob<script>"},
    {A: "Sales", B: "Q4", X: "Ops", GONE: "Old `fence`"},
    "sha256:p",
    removed=frozenset({GONE}),
)
LIVE = Snapshot(
    {
        "u1": frozenset({A, X}),
        "u3": frozenset({B, GONE}),
        "root": frozenset({A}),
        "u4": frozenset({C}),
        "u5": frozenset({R}),
        "u6": frozenset({A}),
    }
)
LEDGER = {("u1", A): NEVER, ("u4", C): dt.date(2026, 12, 1), ("u5", R): TODAY + dt.timedelta(days=3)}


def test_drift_reports_every_kind_a_plan_acts_on() -> None:
    report = drift("demo", DESIRED, LIVE, LEDGER, TODAY)
    found = report.findings
    assert found["missing"] == [("u2", "theme:b", "expires 2099-12-31")]
    assert found["unexpected"] == [("u3", "theme:b", "")]
    assert found["removed_target"] == [("u3", "llm_cube:gone", "")]
    assert found["expiry_differs"] == [("u4", "llm_cube:c", "2026-12-01 → 2027-01-01")]
    assert found["renewal_due"] == [("u5", "theme:r", "2026-11-26 → 2026-12-23")]
    assert found["unrecorded_expiry"] == [("u6", "llm_cube:a", "")]
    assert found["protected"] == [("root", "llm_cube:a", "")]
    assert found["unmanaged"] == [("u1", "llm_cube:x", "")]
    # exactly what the plan would change, no more, no less
    changes = diff(DESIRED, LIVE, LEDGER, TODAY)
    assert report.drift_count == changes.grant_cells + len(changes.revokes) == 5
    data = json.loads(drift_json(report))
    # ids, and beside them the names people know them by
    assert data["missing"] == [
        {
            "user": "u2",
            "account": "bob<script>",
            "target": "theme:b",
            "target_name": "Q4",
            "detail": "expires 2099-12-31",
        }
    ]
    assert "Expiry differs from policy (ledger → policy): 1" in drift_text(report)
    assert drift_text(report, markdown=True).startswith("### Drift report")
    page = drift_html(report)  # the alias is data, never markup (tests/test_access_map.py opens it in a browser)
    assert "bob<script>" not in page and "bob\\u003cscript\\u003e" in page


def test_clean_drift_when_only_informational_kinds_remain() -> None:
    live = Snapshot({"u6": frozenset({A}), "root": frozenset({A})})
    desired = Desired(DesiredCells.of({("u6", A): NEVER}), frozenset({A}), frozenset({"root"}), {}, {}, "sha256:p")
    report = drift("demo", desired, live, {}, TODAY, ["a note"])
    assert report.clean and report.findings["unrecorded_expiry"] and "Note: a note" in drift_text(report)


def test_plan_text_is_rendered_from_the_batches() -> None:
    changes = diff(DESIRED, LIVE, LEDGER, TODAY)
    names = {**DESIRED.directory, **{str(t): n for t, n in DESIRED.target_names.items()}}
    touched = {u: LIVE.grants.get(u, frozenset()) for u in ("u2", "u3", "u4", "u5")}
    plan = build_plan(
        "demo",
        changes,
        PlanInputs(policy_digest="p", snapshot_digest="s"),
        touched,
        names,
        removed_targets=[GONE],
        previous_expiry=LEDGER,
    )
    text = plan_text(plan)
    assert "+ u2 (bob<script>)  theme:b (Q4)  (expires 2099-12-31)" in text
    assert "~ u4  llm_cube:c  (expiry 2026-12-01 → 2027-01-01)" in text
    assert "~ u5  theme:r  (expiry 2026-11-26 → 2026-12-23)" in text
    assert "- u3  theme:b (Q4)" in text
    assert "Removed from policy since the last apply, all their grants revoked: llm_cube:gone" in text
    assert "1 undesired grant kept for protected users" in text
    # a batch added by hand shows up, since nothing but the batches is rendered
    forged = plan.model_copy(
        update={"batches": [*plan.batches, plan.batches[0].model_copy(update={"user_ids": ["u9"]})]}
    )
    assert "u9" in plan_text(forged)


def test_markdown_cannot_be_broken_out_of() -> None:
    changes = diff(DESIRED, LIVE, LEDGER, TODAY)
    names = {"llm_cube:gone": "x\n```\n# injected", "u3": "eve`"}
    plan = build_plan(
        "demo",
        changes,
        PlanInputs(policy_digest="p", snapshot_digest="s"),
        {"u3": ["llm_cube:gone"]},
        names,
        removed_targets=[GONE],
    )
    text = plan_text(plan, markdown=True)
    assert text.count("```") == 2


def test_a_large_onboarding_comment_fits_github() -> None:
    day = dt.date(2099, 12, 31)
    targets = [Target("llm_cube", f"c{i}") for i in range(8)] + [Target("theme", f"t{i}") for i in range(4)]
    cells = frozenset((f"user-{u:05d}", t) for u in range(2000) for t in targets)
    changes = Changes(grants={day: cells}, revokes=frozenset(), revocable={})
    names = {f"user-{u:05d}": f"Onboarded Person Number {u}" for u in range(2000)}
    plan = build_plan("prod", changes, PlanInputs(policy_digest="p", snapshot_digest="s"), {}, names)
    full = plan_text(plan, markdown=True)
    comment = plan_text(plan, markdown=True, max_chars=60000)
    assert len(comment) <= 60000 < 65536
    assert "| llm_cube:c0 | 2000 | 0 | 0 |" in comment
    assert "changes not shown here: the full plan is in the job summary and artefact" in comment
    assert comment.count("```") == 2 and "Plan: 24,000 to grant" in comment
    assert len(full) > len(comment)


def test_counts_per_batch_match_the_cells_one_by_one() -> None:
    """Users with nothing live are counted per batch (an onboarding has millions of cells); users with live
    grants, or in several batches, cell by cell. Both must agree with counting every distinct cell once, for
    grants and for revokes, however the batches overlap."""
    rng = random.Random(3)
    targets = [Target("llm_cube", f"c{i}") for i in range(6)]
    for case in range(100):
        users = [f"u{i}" for i in range(10)]
        touched = {u: frozenset(t for t in targets if rng.random() < 0.3) for u in users if rng.random() < 0.7}
        batches = [
            Batch(
                operation=operation,
                user_ids=rng.sample(users, rng.randint(1, 5)),
                llm_cubes=[t.id for t in rng.sample(targets, rng.randint(1, 4))],
                llm_cube_themes=[],
                expire_day=dt.date(2099, 12, 31) if operation == "grant" else None,
            )
            for operation in rng.choices(["grant", "revoke"], k=4)
        ]
        plan = Plan(
            target="t",
            created_at="",
            inputs=PlanInputs(policy_digest="p", snapshot_digest="s"),
            summary=PlanSummary(),
            batches=batches,
            touched_state=touched,
        )
        per_target: dict[Target, list[int]] = {}
        per_user: dict[str, int] = {}
        no_op = 0
        seen = set()
        for batch in batches:
            for user, target in batch.cells():
                if (batch.operation, user, target) in seen:
                    continue  # batches may overlap: a cell in two calls is one change
                seen.add((batch.operation, user, target))
                hit = target in touched.get(user, frozenset())
                if batch.operation == "revoke" and not hit:
                    no_op += 1
                    continue
                column = (1 if hit else 0) if batch.operation == "grant" else 2
                per_target.setdefault(target, [0, 0, 0])[column] += 1
                per_user[user] = per_user.get(user, 0) + 1
        counts = _counts(plan)
        assert (dict(counts.per_target), counts.no_op_deletes) == (per_target, no_op), case
        lines = {u: _user_lines(plan, u, b).size for u, b in counts.batches_of.items()}
        assert {u: n for u, n in lines.items() if n} == per_user, case
        text = plan_text(plan)
        for _, user, target in {c for c in seen if c[0] == "grant"}:
            assert len(re.findall(rf"^[+~] {user}  llm_cube:{target.id}  ", text, re.M)) == 1, case


def test_the_command_line_offers_exactly_the_registered_formats(
    workspace: Path, run_cli: Callable[..., CliResult]
) -> None:
    commands = {
        "PLAN": ("plan",),
        "DRIFT": ("drift",),
        "ACCESS": ("explain", "alice"),
    }
    for kind, command in commands.items():
        for fmt in getattr(render, kind):
            result = run_cli(*command, "--format", fmt)
            assert result.code in (0, 2) and result.out, (kind, fmt, result.err)
        refused = run_cli(*command, "--format", "yaml")
        assert refused.code == 1 and "'yaml' is not one of" in refused.err
