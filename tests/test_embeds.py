"""Copilot embed data ranges under policy: planned, applied, admitted, verified and reported as drift."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.embeds import DataRange
from reconciler.emulator import ApiError, Emulator
from tests.conftest import CliResult, console_edit, with_faults

Run = Callable[..., CliResult]
SALES_BOT = "ccd3428c-dd23-460c-a608-26bae29dffee"
STATE = Path(".reconciler") / "demo-state.json"


def _module(workspace: Path) -> dict[str, Any]:
    copilots = json.loads((workspace / STATE).read_text())["copilots"]
    (module,) = [c for c in copilots if c["id"] == SALES_BOT]
    return dict(module)


@pytest.mark.parametrize(
    ("data_range", "wire", "described"),
    [
        (DataRange(kind="llm_cube", all=True), '{"allCube":true}', "all LlmCubes"),
        (DataRange(kind="theme", all=True), '{"allTheme":true}', "all themes"),
        (DataRange(kind="llm_cube", ids=("c-a", "c-b")), '{"llmCubes":["c-a","c-b"]}', "LlmCubes A, c-b"),
        (DataRange(kind="theme", ids=("t-q4",)), '{"themes":["t-q4"]}', "themes t-q4"),
    ],
)
def test_a_data_range_on_the_wire_has_exactly_one_lower_camel_key(
    data_range: DataRange, wire: str, described: str
) -> None:
    assert data_range.wire() == wire
    assert data_range.describe({"llm_cube:c-a": "A"}) == described


def test_coverage_decides_what_widens_and_what_narrows() -> None:
    everything = DataRange(kind="llm_cube", all=True)
    two = DataRange(kind="llm_cube", ids=("c-a", "c-b"))
    one = DataRange(kind="llm_cube", ids=("c-a",))
    themes = DataRange(kind="theme", all=True)
    assert everything.covers(two) and two.covers(one) and not one.covers(two) and not two.covers(everything)
    assert not themes.covers(one) and not one.covers(themes)  # different kinds: nothing can be assumed


def test_plan_apply_sets_the_range_and_then_nothing_is_left(workspace: Path, run_cli: Run) -> None:
    plan = run_cli("plan")
    assert "~ embed sales-bot  data range: all LlmCubes → LlmCubes Pipeline, Sales  (narrows" in plan.out
    assert "1 embed data range to set (ModifyCopilotEmbedConfig)" in plan.out
    applied = run_cli("apply", "--auto-approve")
    assert applied.code == 0 and "1 of 1 embed data ranges set" in applied.out, applied.err
    module = _module(workspace)
    assert sorted(module["llm_cubes"]) == ["c-pipeline", "c-sales"] and not module.get("all_cubes", True)
    assert run_cli("plan", "--detailed-exitcode").code == 0
    assert run_cli("drift").code == 0


def test_a_console_edit_that_widens_a_module_is_drift_and_the_next_apply_undoes_it(
    workspace: Path, run_cli: Run
) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    console_edit(workspace, all_cubes=True)
    report = run_cli("drift", "--format", "json")
    assert report.code == 2
    (finding,) = json.loads(report.out)["embed_range"]
    assert finding["embed"] == "sales-bot" and finding["copilot_id"] == SALES_BOT
    assert "live reaches targets the policy does not give it" in finding["detail"]
    assert run_cli("plan", "--detailed-exitcode").code == 2
    assert run_cli("apply", "--auto-approve").code == 0
    assert run_cli("drift").code == 0


def test_a_narrower_module_is_widened_to_policy_and_said_so(workspace: Path, run_cli: Run) -> None:
    run_cli("plan")  # the emulator saves its state
    console_edit(workspace, all_cubes=False, llm_cubes=["c-sales"])
    plan = run_cli("plan")
    assert "LlmCubes Sales → LlmCubes Pipeline, Sales  (widens what ticket holders reach)" in plan.out


def test_a_module_of_two_kinds_is_ambiguous_and_reset(workspace: Path, run_cli: Run) -> None:
    run_cli("plan")
    console_edit(workspace, all_cubes=False, llm_cubes=["c-sales"], themes=["t-q4"])
    plan = run_cli("plan")
    assert "(ambiguous) → LlmCubes Pipeline, Sales  (widens and narrows" in plan.out


def test_a_tampered_or_stale_embed_change_is_refused_and_nothing_is_sent(
    workspace: Path, run_cli: Run, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    assert run_cli("plan", "--out", str(saved)).code == 0
    plan = json.loads(saved.read_text())
    plan["embed_changes"][0]["after"] = {"kind": "llm_cube", "all": True, "ids": []}
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(plan))
    before = _module(workspace)  # planning saved the emulator's state
    refused = run_cli("apply", str(forged))
    assert refused.code == 1 and "refusing the plan: embed change 1 sets module" in refused.err
    assert "today's policy gives it LlmCubes c-pipeline, c-sales" in refused.err
    assert _module(workspace) == before
    audit = workspace / ".reconciler" / "audit.jsonl"
    assert not audit.exists() or "ModifyCopilotEmbedConfig" not in audit.read_text()
    assert run_cli("apply", str(saved)).code == 0  # the reviewed plan applies


def test_a_failed_modify_fails_the_apply_and_the_next_run_finishes_it(workspace: Path, run_cli: Run) -> None:
    config = (workspace / "reconciler.yaml").read_text()
    with_faults(workspace, "{error_rate: 1.0, actions: [ModifyCopilotEmbedConfig]}")
    failed = run_cli("apply", "--auto-approve")
    assert failed.code == 1
    assert f"failed: embed 'sales-bot' (module {SALES_BOT}):" in failed.err
    assert "0 of 1 embed data ranges set" in failed.out
    assert _module(workspace).get("all_cubes", True)  # unchanged, while the grants went in
    (workspace / "reconciler.yaml").write_text(config)
    plan = run_cli("plan")
    assert "~ embed sales-bot" in plan.out and "0 to grant" in plan.out
    assert run_cli("apply", "--auto-approve").code == 0 and run_cli("drift").code == 0


def test_a_limited_run_leaves_modules_alone(workspace: Path, run_cli: Run) -> None:
    plan = run_cli("plan", "--user", "alice")
    assert "embed" not in plan.out and "grant" in plan.out
    assert run_cli("apply", "--auto-approve", "--user", "alice").code == 0
    assert _module(workspace).get("all_cubes", True)


def test_a_module_quick_bi_does_not_have_is_a_note(workspace: Path, run_cli: Run) -> None:
    sales = workspace / "policies" / "sales.yaml"
    sales.write_text(sales.read_text().replace(SALES_BOT, "no-such-module"))
    note = "copilot embed 'sales-bot': Quick BI has no module no-such-module"
    assert note in run_cli("plan").out
    assert note in run_cli("drift").out


def test_two_embeds_of_one_module_must_agree_on_its_range(workspace: Path, run_cli: Run) -> None:
    (workspace / "policies" / "bots.yaml").write_text(
        f"version: 1\ncopilot_embeds:\n  sales-bot-2:\n    copilot_id: {SALES_BOT}\n    data_range: all\n"
        "    to: [sales]\n"
    )
    result = run_cli("plan")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "bots.yaml:3" in result.err and "with different data ranges" in result.err


@pytest.mark.parametrize(
    ("data_range", "code"),
    [
        ("not json", "Invalid.Parameter.Error"),
        ('{"allCube":true,"llmCubes":["c-sales"]}', "Invalid.Parameter.Error"),
        ('{"llmCubes":["c-nope"]}', "Invalid.Parameter.Error"),
        ('{"AllCube":true}', "Invalid.Parameter.Error"),
    ],
)
def test_the_emulator_refuses_malformed_ranges(demo: Emulator, data_range: str, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        demo.backend.modify_copilot_embed_config(SALES_BOT, data_range, None, None)
    assert refused.value.code == code


def test_the_emulator_limits_the_module_name(demo: Emulator) -> None:
    with pytest.raises(ApiError) as refused:
        demo.backend.modify_copilot_embed_config(SALES_BOT, None, "x" * 21, None)
    assert refused.value.code == "Copilot.Modulename.Error"
    demo.backend.modify_copilot_embed_config(SALES_BOT, '{"themes":["t-q4"]}', "Sales", None)
    (config,) = demo.backend.query_copilot_embed_config(None)
    assert config["ShowName"] == "Sales" and config["DataRange"]["Themes"] == ["t-q4"]
    assert not config["DataRange"]["AllCube"]


def test_a_pull_request_plan_shows_module_changes_and_widening_warnings(workspace: Path, run_cli: Run) -> None:
    assert run_cli("apply", "--auto-approve").code == 0
    shutil.copytree(workspace / "policies", workspace / "base")
    sales = workspace / "policies" / "sales.yaml"
    sales.write_text(sales.read_text().replace("data_range: {llm_cubes: [sales, pipeline]}", "data_range: all"))
    plan = run_cli("plan", "--changed-from", "base", "--detailed-exitcode")
    assert plan.code == 2
    assert "~ embed sales-bot  data range: LlmCubes Pipeline, Sales → all LlmCubes  (widens" in plan.out
    assert "Note: policies/sales.yaml:" in plan.out and "ticket holders reach targets their grants" in plan.out
