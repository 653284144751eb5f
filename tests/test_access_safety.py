"""Access safety through the command line: each guarantee attacked the way a user or an attacker would."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CliResult, with_faults

Run = Callable[..., CliResult]
STATE = Path(".reconciler") / "demo-state.json"
AUDIT = Path(".reconciler") / "audit.jsonl"


def _authorize_calls(workspace: Path) -> int:
    audit = workspace / AUDIT
    return audit.read_text().count('"SmartqAuthorize"') if audit.exists() else 0


def _edit_state(workspace: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = workspace / STATE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _live(workspace: Path) -> set[tuple[str, str]]:
    data = json.loads((workspace / STATE).read_text())
    return {(g["user"], g.get("llm_cube") or g.get("theme")) for g in data["grants"]}


def _saved_plan(workspace: Path, run_cli: Run) -> dict[str, Any]:
    assert run_cli("plan", "--out", "plan.json").code == 0
    return dict(json.loads((workspace / "plan.json").read_text()))


def _write(workspace: Path, plan: dict[str, Any]) -> None:
    (workspace / "plan.json").write_text(json.dumps(plan))


def _refused(workspace: Path, run_cli: Run, calls_before: int) -> str:
    result = run_cli("apply", "plan.json")
    assert result.code == 1, result.out
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert _authorize_calls(workspace) == calls_before  # nothing sent
    return result.err


def _grant_batch(plan: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in plan["batches"] if b["operation"] == "grant")


TAMPERING: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "grant to a user the policy does not allow": (
        lambda p: p["batches"].append(
            {
                "operation": "grant",
                "user_ids": ["u-mallory"],
                "llm_cubes": ["c-budget"],
                "llm_cube_themes": [],
                "expire_day": "2099-12-31",
            }
        ),
        "grants u-mallory llm_cube:c-budget: today's policy does not grant it",
    ),
    "user slipped into a grant batch": (
        lambda p: _grant_batch(p)["user_ids"].append("u-olivia"),
        "grants u-olivia",
    ),
    "revoke a protected user's grant": (
        lambda p: p["batches"].append(
            {"operation": "revoke", "user_ids": ["u-admin"], "llm_cubes": ["c-finance"], "llm_cube_themes": []}
        ),
        "revokes u-admin llm_cube:c-finance: the user is protected",
    ),
    "revoke a desired cell": (
        lambda p: p["batches"].append(
            {"operation": "revoke", "user_ids": ["u-bob"], "llm_cubes": ["c-sales"], "llm_cube_themes": []}
        ),
        "revokes u-bob llm_cube:c-sales: today's policy grants it",
    ),
    "revoke on an unmanaged target": (
        lambda p: p["batches"].append(
            {"operation": "revoke", "user_ids": ["u-olivia"], "llm_cubes": ["c-ops"], "llm_cube_themes": []}
        ),
        "revokes u-olivia llm_cube:c-ops: the policy does not manage this target",
    ),
    "expiry changed": (
        lambda p: _grant_batch(p).update(expire_day="2031-01-01"),
        "expiry 2031-01-01 differs from the policy's",
    ),
    "batch over the cap": (
        lambda p: _grant_batch(p).update(user_ids=[f"u{i}" for i in range(101)]),
        "more than the 100 one call may carry",
    ),
    "grant without an expiry": (
        lambda p: _grant_batch(p).update(expire_day=None),
        "is a grant without an expire_day",
    ),
    # a plan file's days and targets have one text form each; anything else is not a plan
    "expiry given as a timestamp": (
        lambda p: _grant_batch(p).update(expire_day="2099-12-31T23:59:59"),
        "not a reconciler plan (batches.0.expire_day: expected a day, YYYY-MM-DD)",
    ),
    "recorded state naming a kind that does not exist": (
        lambda p: p["touched_state"].update({"u-mallory": ["report:r1"]}),
        "not a reconciler plan (touched_state.u-mallory: not a target: 'report:r1'",
    ),
    "revoke hidden from the recorded state": (
        lambda p: p["touched_state"].update(
            {"u-mallory": [t for t in p["touched_state"]["u-mallory"] if t != "llm_cube:c-sales"]}
        ),
        "the plan is stale: u-mallory's live grants changed since it was made (+llm_cube:c-sales)",
    ),
    "made for another target": (lambda p: p.update(target="prod"), "the plan was made for target 'prod'"),
    # ids compared exactly as they go on the wire: the API joins them with commas and may trim them
    "two users inside one id next to a wanted revoke": (
        lambda p: _revoke_batch(p)["user_ids"].append("u-admin,u-alice"),
        "names user 'u-admin,u-alice', which is not one user of the organisation",
    ),
    "a padded id next to a wanted revoke": (
        lambda p: _revoke_batch(p)["user_ids"].append(" u-alice"),
        "names user ' u-alice', which is not one user of the organisation",
    ),
    "two targets inside one id": (
        lambda p: _revoke_batch(p).update(llm_cubes=["c-sales,c-finance"]),
        "names llm_cube 'c-sales,c-finance', which is not one target Quick BI lists",
    ),
}


def _revoke_batch(plan: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in plan["batches"] if b["operation"] == "revoke")


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_saved_plan_is_refused_before_anything_is_sent(workspace: Path, run_cli: Run, case: str) -> None:
    plan = _saved_plan(workspace, run_cli)
    tamper, message = TAMPERING[case]
    tamper(plan)
    _write(workspace, plan)
    before = _live(workspace) if (workspace / STATE).exists() else None
    assert message in _refused(workspace, run_cli, 0)
    assert before is None or _live(workspace) == before


def test_show_renders_the_batches_so_a_forged_batch_is_visible(workspace: Path, run_cli: Run) -> None:
    plan = _saved_plan(workspace, run_cli)
    original = run_cli("show", "plan.json").out
    TAMPERING["grant to a user the policy does not allow"][0](plan)
    _write(workspace, plan)
    forged = run_cli("show", "plan.json").out
    assert "u-mallory" in forged and "llm_cube:c-budget (Budget)" in forged
    assert forged != original


def test_replay_after_the_directory_moved_is_refused(workspace: Path, run_cli: Run) -> None:
    _saved_plan(workspace, run_cli)
    assert run_cli("apply", "plan.json").code == 0
    again = run_cli("apply", "plan.json")  # a re-run of the same plan converges without sending anything
    assert again.code == 0 and "already in place" in again.out

    def dave_leaves_fpa(data: dict[str, Any]) -> None:
        group = next(g for g in data["groups"] if g["id"] == "g-fpa")
        group["members"].remove("u-dave")

    _edit_state(workspace, dave_leaves_fpa)
    revoke = run_cli("apply", "--auto-approve")
    assert revoke.code == 0 and "- u-dave (dave)  llm_cube:c-budget (Budget)" in revoke.out
    calls = _authorize_calls(workspace)
    err = _refused(workspace, run_cli, calls)
    assert "grants u-dave" in err and "today's policy does not grant it" in err
    assert not {c for c in _live(workspace) if c[0] == "u-dave"}


def test_cells_that_failed_are_never_taken_for_done(workspace: Path, run_cli: Run) -> None:
    config = workspace / "reconciler.yaml"
    original = config.read_text()
    with_faults(workspace, "{partial_rate: 1.0}")
    failing = run_cli("apply", "--auto-approve")
    assert failing.code == 1 and "Apply incomplete" in failing.out
    config.write_text(original)
    healed = run_cli("apply", "--auto-approve")
    assert healed.code == 0, healed.err
    assert "Apply complete" in healed.out and "already" not in healed.out
    assert run_cli("plan", "--detailed-exitcode").code == 0


def _remove_budget(workspace: Path) -> Path:
    finance = workspace / "policies" / "finance.yaml"
    finance.write_text(
        finance.read_text().replace("    budget: {id: c-budget}\n", "").replace("[finance, budget]", "[finance]")
    )
    return finance


def test_a_target_removed_from_resources_has_its_grants_revoked(workspace: Path, run_cli: Run) -> None:
    first = run_cli("plan")
    assert "no record of the targets managed at the last apply" in first.out
    assert run_cli("apply", "--auto-approve").code == 0
    record = json.loads((workspace / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-budget" in record["targets"]
    _remove_budget(workspace)
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.code == 2
    assert "Removed from policy since the last apply, all their grants revoked: llm_cube:c-budget (Budget)" in plan.out
    for user in ("carol", "dave", "erin"):
        assert f"- u-{user} ({user})  llm_cube:c-budget (Budget)" in plan.out
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 2 and len(json.loads(drift.out)["removed_target"]) == 3
    assert run_cli("apply", "--auto-approve").code == 0
    assert not {c for c in _live(workspace) if c[1] == "c-budget" and c[0] != "u-admin"}
    record = json.loads((workspace / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-budget" not in record["targets"]
    assert run_cli("plan", "--detailed-exitcode").code == 0


def test_a_released_target_keeps_its_grants(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    finance = _remove_budget(workspace)
    finance.write_text(finance.read_text() + "released: {llm_cubes: ['id:c-budget']}\n")
    assert run_cli("plan", "--detailed-exitcode").code == 0
    budget = {c for c in _live(workspace) if c[1] == "c-budget"}
    assert run_cli("apply", "--auto-approve").code == 0
    assert {c for c in _live(workspace) if c[1] == "c-budget"} == budget
    record = json.loads((workspace / ".reconciler" / "managed-targets.json").read_text())
    assert "llm_cube:c-budget" not in record["targets"]


def test_an_unreadable_managed_record_stops_the_run(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    (workspace / ".reconciler" / "managed-targets.json").write_text("{not json")
    for command in (("plan",), ("drift",), ("apply", "--auto-approve")):
        result = run_cli(*command)
        assert result.code == 1 and "unreadable managed-target record" in result.err
        assert len(result.err.strip().splitlines()) == 1


def test_a_past_date_is_a_warning_and_its_grants_are_revoked(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    sales = workspace / "policies" / "sales.yaml"
    sales.write_text(sales.read_text().replace("expires: 2027-06-30", "expires: 2020-01-01"))
    validate = run_cli("validate")
    assert validate.code == 0
    assert "warning: policies/sales.yaml:14: expiry date 2020-01-01 has passed" in validate.err
    plan = run_cli("plan", "--detailed-exitcode")
    assert plan.code == 2 and "- u-ivan (ivan)  theme:t-q4 (Q4 review)" in plan.out
    assert "has passed" in plan.err
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 2 and json.loads(drift.out)["unexpected"] == [
        {"user": "u-ivan", "account": "ivan", "target": "theme:t-q4", "target_name": "Q4 review"}
    ]
    assert run_cli("apply", "--auto-approve").code == 0
    assert ("u-ivan", "t-q4") not in _live(workspace)


def test_drift_sees_an_expiry_that_differs_from_policy(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    assert run_cli("drift").code == 0
    people = workspace / "policies" / "people-analytics.yaml"
    people.write_text(people.read_text().replace("expires: 2027-12-31", "expires: 2027-03-31"))
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 2
    differs = json.loads(drift.out)["expiry_differs"]
    assert {
        "user": "u-grace",
        "account": "grace",
        "target": "llm_cube:c-hr",
        "target_name": "Headcount",
        "detail": "2027-12-31 → 2027-03-31",
        "why": "policies/people-analytics.yaml:8",  # the statement that sets the expiry
    } in differs
    plan = run_cli("plan")
    assert "~ u-grace (grace)  llm_cube:c-hr (Headcount)  (expiry 2027-12-31 → 2027-03-31)" in plan.out
    assert run_cli("apply", "--auto-approve").code == 0
    assert run_cli("drift").code == 0


def test_rolling_renewal_due_is_drift(workspace: Path, run_cli: Run) -> None:
    policy = workspace / "policies" / "rolling.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "resources": {"themes": {"ops-review": {"id": "t-forecast"}}},
                "grants": [
                    {
                        "to": ["account:olivia"],
                        "themes": ["ops-review"],
                        "expires": {"ttl": "30d", "renew_within": "7d"},
                    }
                ],
            }
        )
    )
    assert run_cli("apply", "--auto-approve").code == 0
    ledger = workspace / ".reconciler" / "expiry-ledger.tsv"
    lines = [line for line in ledger.read_text().splitlines() if "theme:t-forecast" in line and "u-olivia" in line]
    assert len(lines) == 1
    soon = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    ledger.write_text(ledger.read_text().replace(lines[0], f"u-olivia\t{soon}\ttheme:t-forecast"))
    drift = run_cli("drift", "--format", "json")
    assert drift.code == 2 and json.loads(drift.out)["renewal_due"][0]["user"] == "u-olivia"


@pytest.mark.parametrize(
    ("policy", "line"),
    [
        # decidable offline: every llm_cube resource of the policy is declared by ID
        ("version: 1\ngrants:\n  - {to: [account:olivia], llm_cubes: [id:c-ops]}\n", 3),
        # only resolving can tell: a resource named by alias might have been that cube
        (
            "version: 1\nresources: {llm_cubes: {kpi: {alias: Finance KPIs}}}\n"
            "grants:\n  - {to: [account:olivia], llm_cubes: [kpi, id:c-ops]}\n",
            4,
        ),
    ],
)
def test_a_grant_on_an_undeclared_target_is_refused_so_no_grant_is_left_behind(
    workspace: Path, run_cli: Run, policy: str, line: int
) -> None:
    (workspace / "policies" / "inline.yaml").write_text(policy)
    for command in (("validate",), ("plan",), ("apply", "--auto-approve"), ("drift",)):
        result = run_cli(*command)
        assert result.code == 1, command
        assert f"policies/inline.yaml:{line}: llm_cube 'id:c-ops' is granted but not declared under resources" in (
            result.err
        )
        assert "declare it under resources.llm_cubes, e.g. c-ops: {id: c-ops}" in result.err
    assert _authorize_calls(workspace) == 0


def test_an_inline_id_of_a_declared_target_is_granted_and_revoked_when_its_statement_goes(
    workspace: Path, run_cli: Run
) -> None:
    inline = workspace / "policies" / "inline.yaml"
    inline.write_text("version: 1\ngrants:\n  - {to: [account:heidi], llm_cubes: ['id:c-budget']}\n")
    assert run_cli("apply", "--auto-approve").code == 0
    assert ("u-heidi", "c-budget") in _live(workspace)
    inline.unlink()
    plan = run_cli("plan")
    assert "- u-heidi (heidi)  llm_cube:c-budget (Budget)" in plan.out
    assert run_cli("apply", "--auto-approve").code == 0
    assert ("u-heidi", "c-budget") not in _live(workspace)


def test_with_every_target_managed_an_inline_grant_is_revoked_when_its_statement_goes(
    workspace: Path, run_cli: Run
) -> None:
    inline = workspace / "policies" / "inline.yaml"
    inline.write_text(
        "version: 1\nmanage_all_targets: true\ngrants:\n  - {to: [account:heidi], llm_cubes: [id:c-ops]}\n"
    )
    assert run_cli("apply", "--auto-approve").code == 0
    assert ("u-heidi", "c-ops") in _live(workspace)
    inline.write_text("version: 1\nmanage_all_targets: true\n")
    assert "- u-heidi (heidi)  llm_cube:c-ops (Operations)" in run_cli("plan").out


STATE_DIR = Path(".reconciler")


def test_a_target_deleted_from_the_managed_record_stays_managed(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    record = workspace / STATE_DIR / "managed-targets.json"
    data = json.loads(record.read_text())
    data["targets"].remove("llm_cube:c-budget")
    record.write_text(json.dumps(data))
    _remove_budget(workspace)
    plan = run_cli("plan")
    assert "- u-dave (dave)  llm_cube:c-budget (Budget)" in plan.out
    assert "lacks 1 target the expiry ledger holds grants on (llm_cube:c-budget): they stay managed" in plan.out
    assert run_cli("apply", "--auto-approve").code == 0
    assert not {cell for cell in _live(workspace) if cell[1] == "c-budget"}


def test_a_ledger_expiry_later_than_the_policy_allows_is_never_sent(workspace: Path, run_cli: Run) -> None:
    rolling = workspace / "policies" / "rolling.yaml"
    rolling.write_text(
        "version: 1\ngrants:\n  - {to: [account:heidi], llm_cubes: [sales], expires: {ttl: 30d, renew_within: 7d}}\n"
    )
    assert run_cli("apply", "--auto-approve").code == 0
    window = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    assert _expiry(workspace, "u-heidi", "c-sales") == window
    ledger = workspace / STATE_DIR / "expiry-ledger.tsv"
    lines = ledger.read_text().splitlines()
    edited = [
        line.replace(window, "2099-12-31") if line.startswith("u-heidi\t") and "c-sales" in line else line
        for line in lines
    ]
    assert edited != lines
    ledger.write_text("\n".join(edited) + "\n")
    plan = run_cli("plan", "--allow-regrant", "--format", "json", "--out", "plan.json")
    saved = json.loads(plan.out)
    heidi = [b for b in saved["batches"] if "u-heidi" in b["user_ids"] and "c-sales" in b["llm_cubes"]]
    assert [b["expire_day"] for b in heidi] == [window]
    assert any("later expiry than the policy allows for 1 live grant" in note for note in saved["notes"])
    drift = run_cli("drift")
    assert drift.code == 2 and "the ledger's day is later than the policy allows" in drift.out
    assert run_cli("apply", "plan.json").code == 0
    assert _expiry(workspace, "u-heidi", "c-sales") == window


def test_a_state_file_linked_out_of_the_state_folder_is_refused(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    outside = workspace / "outside.txt"
    outside.write_text("untouched\n")
    audit = workspace / AUDIT
    audit.unlink()
    audit.symlink_to(outside)
    for command in (("plan",), ("apply", "--auto-approve"), ("drift",)):
        result = run_cli(*command)
        assert result.code == 1 and len(result.err.strip().splitlines()) == 1, result.err
        assert "audit.jsonl: the state holds a symbolic link" in result.err
    assert outside.read_text() == "untouched\n"


def _expiry(workspace: Path, user: str, target: str) -> str:
    data = json.loads((workspace / STATE).read_text())
    return next(g["expire_day"] for g in data["grants"] if g["user"] == user and target in g.values())


def test_a_plan_with_batches_deleted_says_what_it_lacks_and_does_not_exit_0(workspace: Path, run_cli: Run) -> None:
    plan = _saved_plan(workspace, run_cli)
    dropped = _revoke_batch(plan)
    plan["batches"].remove(dropped)
    _write(workspace, plan)
    lacking = len(dropped["user_ids"]) * len(dropped["llm_cubes"] + dropped["llm_cube_themes"])
    result = run_cli("apply", "plan.json")
    assert result.code == 1
    assert f"error: the plan lacks {lacking} changes that today's policy requires" in result.err
    assert ("u-mallory", "c-sales") in _live(workspace)  # the deleted revoke was not made, and that is said
    assert run_cli("apply", "plan.json", "--detailed-exitcode").code == 2  # applied as far as it goes: 2, not 0
    assert run_cli("apply", "--auto-approve").code == 0
    assert ("u-mallory", "c-sales") not in _live(workspace)


@pytest.mark.parametrize(
    "flags", [("--user", "alice"), ("--group", "sales"), ("--resource", "sales"), ("--additive",), ("--allow-regrant",)]
)
def test_a_saved_plan_refuses_flags_it_would_ignore(workspace: Path, run_cli: Run, flags: tuple[str, ...]) -> None:
    _saved_plan(workspace, run_cli)
    result = run_cli("apply", "plan.json", *flags)
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert f"apply PLAN does not take {flags[0]}" in result.err
    assert _authorize_calls(workspace) == 0


FORGED = "+ u-mallory (mallory)  llm_cube:c-budget (Budget)  (expires 2099-12-31) FORGED"


def test_names_from_quick_bi_and_the_policy_cannot_forge_a_line_in_any_rendering(workspace: Path, run_cli: Run) -> None:
    org = workspace / "examples" / "demo-org.yaml"
    text = org.read_text()
    hostile = {
        "alias: Sales,": f'alias: "Sales\\n{FORGED} [x](http://evil) <script>alert(1)</script> | ~~s~~",',
        "name: Hiring plan,": f'name: "Hiring\\r\\n{FORGED} **bold**",',
        "account: heidi,": f'account: "heidi\\n{FORGED}",',
    }
    for old, new in hostile.items():
        assert old in text
        text = text.replace(old, new)
    org.write_text(text)
    sales = workspace / "policies" / "sales.yaml"
    sales.write_text(sales.read_text().replace("  sales-bot:", '  "sales-bot\\nFORGED":'))
    outputs = {
        "plan": run_cli("plan", "--out", "plan.json").out,
        "plan markdown": run_cli("plan", "--format", "markdown").out,
        "comment": run_cli("show", "plan.json", "--format", "markdown", "--max-chars", "5000").out,
        "drift": run_cli("drift").out,
        "drift markdown": run_cli("drift", "--format", "markdown").out,
        "who-can": run_cli("who-can", "sales").out,
        "explain": run_cli("explain", "heidi").out,
        "apply": (applied := run_cli("-v", "apply", "--auto-approve")).out + applied.err,
        "drift after": run_cli("drift", "--format", "markdown").out,
    }
    assert "\\n" + FORGED in outputs["plan"]  # the name is shown, escaped, on its own line's end
    for kind, output in outputs.items():
        for line in output.splitlines():
            assert not line.lstrip("-`+ ").startswith(("u-mallory (mallory)  llm_cube:c-budget", "FORGED")), kind
        if "markdown" in kind or kind == "comment":
            prose = re.sub(r"```.*?(```|\Z)", "", output, flags=re.S)  # a code block shows text as it is
            assert "<script>" not in prose and not re.search(r"(?<!\\)\]\(http", prose), kind
            assert "~~s~~" not in prose and "**bold**" not in prose, kind


def test_a_silently_failed_expiry_change_is_sent_again_by_the_next_apply(workspace: Path, run_cli: Run) -> None:
    """Quick BI cannot read an expiry back: a re-grant answered 'done' but not done looks right to every read.
    Verification says it checked access only, and the next apply sends the expiry again."""
    assert run_cli("apply", "--auto-approve").code == 0
    config = (workspace / "reconciler.yaml").read_text()
    analytics = workspace / "policies" / "people-analytics.yaml"
    analytics.write_text(analytics.read_text().replace("expires: 2027-12-31", "expires: 2027-09-30"))
    with_faults(workspace, "{silent_rate: 1.0, actions: [SmartqAuthorize]}")
    silent = run_cli("apply", "--auto-approve", "--verify", "full")
    assert silent.code == 0 and "access checked, expiries not (Quick BI cannot read one back" in silent.out
    assert _expiry(workspace, "u-grace", "c-hr") == "2027-12-31"  # nothing happened, and no read can tell
    (workspace / "reconciler.yaml").write_text(config)
    plan = run_cli("plan")
    assert "~ u-grace (grace)  llm_cube:c-hr (Headcount)  (expiry 2027-09-30 → 2027-09-30)" in plan.out
    drift = run_cli("drift")  # not known to differ from policy, so not drift; but said
    assert drift.code == 0 and "Expiry sent once to a live grant; Quick BI cannot confirm it (next apply" in drift.out
    assert run_cli("apply", "--auto-approve").code == 0
    assert _expiry(workspace, "u-grace", "c-hr") == "2027-09-30"
    assert run_cli("plan", "--detailed-exitcode").code == 0  # the second send confirms it
