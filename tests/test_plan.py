"""The plan artefact: batches as the single source of truth, file round trip, and refusal of broken files."""

from __future__ import annotations

import datetime as dt
import json
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.diff import Changes
from reconciler.core.plan import Batch, Plan, PlanInputs, build_plan, cell_bound, exact_batches, make_batches
from reconciler.vocabulary.cells import Target
from reconciler.vocabulary.errors import ReconcilerError

DAY = dt.date(2099, 12, 31)
A, B = Target("llm_cube", "a"), Target("theme", "b")


def _plan() -> Plan:
    changes = Changes(
        grants={DAY: frozenset({("u1", A), ("u2", A), ("u1", B)})},
        revokes=frozenset({("u3", A)}),
        revocable={"u3": frozenset({A, B})},
    )
    names = {"u1": "alice", "u9": "not touched", "llm_cube:a": "Sales"}
    return build_plan("t", changes, PlanInputs(policy_digest="p", snapshot_digest="s"), {"u3": ["llm_cube:a"]}, names)


def test_cells_come_from_the_batches() -> None:
    plan = _plan()
    assert plan.grant_cells() == {("u1", A): DAY, ("u2", A): DAY, ("u1", B): DAY}
    assert ("u3", A) in plan.revoke_cells()
    assert plan.touched_users() == ["u1", "u2", "u3"]
    assert "u9" not in plan.names and plan.names["u1"] == "alice"


def test_a_batch_holds_typed_targets_and_its_file_keeps_the_api_shape() -> None:
    batch = Batch(
        operation="grant", user_ids=["u1"], llm_cubes=["c"], llm_cube_themes=["t"], cube_ids=["d"], expire_day=DAY
    )
    assert batch.targets == (Target("llm_cube", "c"), Target("theme", "t"), Target("dataset", "d"))
    assert batch.day() == DAY and batch.size == 3
    wire = json.loads(batch.model_dump_json())
    assert wire == {
        "operation": "grant",
        "user_ids": ["u1"],
        "llm_cubes": ["c"],
        "llm_cube_themes": ["t"],
        "expire_day": DAY.isoformat(),
        "cube_ids": ["d"],
    }


def test_targets_and_days_are_typed_inside_and_text_only_in_the_file(tmp_path: Path) -> None:
    plan = _plan()
    assert all(isinstance(t, Target) for targets in plan.touched_state.values() for t in targets)
    plan.write(tmp_path / "plan.json")
    data = json.loads((tmp_path / "plan.json").read_text())
    assert data["touched_state"]["u3"] == ["llm_cube:a"]
    read = Plan.read(tmp_path / "plan.json")
    assert read.touched_state["u3"] == frozenset({A}) and read.batches[0].expire_day == DAY


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    plan = _plan()
    plan.names["u2"] = 'Zoë \u2028 "quoted"\n'  # display names are anyone's text
    plan.write(tmp_path / "plan.json")
    assert Plan.read(tmp_path / "plan.json") == plan


def test_the_file_is_a_batch_per_line(tmp_path: Path) -> None:
    plan = _plan()
    plan.write(tmp_path / "plan.json")
    text = (tmp_path / "plan.json").read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(plan.model_dump_json())
    lines = text.splitlines()
    for batch in plan.batches:
        assert f"  {batch.model_dump_json()}," in lines or f"  {batch.model_dump_json()}" in lines
    assert '  "u3": ["llm_cube:a"]' in lines and ' "target":"t",' not in lines and ' "target": "t",' in lines
    assert ' "notes": [],' in lines  # empty collections stay on their key's line


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"user_ids": []}, "batch 1 has no users or no targets"),
        ({"user_ids": ["u1", "u1"]}, "batch 1 lists a user or target twice"),
        ({"expire_day": None}, "batch 1 is a grant without an expire_day"),
        ({"operation": "revoke"}, "batch 1 is a revoke with an expire_day"),
        # one text form for a day, and for a batch's targets
        ({"expire_day": "2099-02-30"}, r"not a reconciler plan \(batches.0.expire_day: day is out of range"),
        ({"expire_day": "20991231"}, r"not a reconciler plan \(batches.0.expire_day: expected a day, YYYY-MM-DD"),
        ({"expire_day": 4102444800}, r"not a reconciler plan \(batches.0.expire_day: expected a day, YYYY-MM-DD"),
        ({"llm_cubes": "a"}, r"not a reconciler plan \(batches.0: llm_cubes must be a list of IDs"),
        ({"llm_cubes": [""]}, r"not a reconciler plan \(batches.0: llm_cubes must be a list of IDs"),
        ({"targets": ["llm_cube:a"]}, r"not a reconciler plan \(batches.0: a batch names its targets as llm_cubes"),
    ],
)
def test_a_broken_batch_is_refused_on_read(tmp_path: Path, change: dict[str, object], message: str) -> None:
    data = json.loads(_plan().model_dump_json())
    data["batches"][0].update(change)
    (tmp_path / "plan.json").write_text(json.dumps(data))
    with pytest.raises(ReconcilerError, match=f"plan.json: {message}"):
        Plan.read(tmp_path / "plan.json")


def test_not_a_plan_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text('{"format_version": 2}')
    with pytest.raises(ReconcilerError, match="not a reconciler plan"):
        Plan.read(tmp_path / "plan.json")


def test_exact_batches_cover_only_the_given_cells() -> None:
    grants = {DAY: [("u1", A), ("u2", B)]}
    revokes = [("u3", A), ("u4", B)]
    batches = exact_batches(grants, revokes, cap=1)
    cells = {(b.operation, c) for b in batches for c in b.cells()}
    assert cells == {("grant", ("u1", A)), ("grant", ("u2", B)), ("revoke", ("u3", A)), ("revoke", ("u4", B))}
    assert all(b.size == 1 for b in batches)


def _grants(cells: set[tuple[int, int]]) -> Changes:
    return Changes(
        grants={DAY: frozenset((f"u{u}", Target("llm_cube", f"c{t}")) for u, t in cells)},
        revokes=frozenset(),
        revocable={},
    )


def _fewest_batches(cells: set[tuple[int, int]], cap: int) -> int:
    """The fewest batches (users x targets, every cell wanted, at most `cap`) covering `cells`, by search."""
    users = sorted({u for u, _ in cells})
    targets = sorted({t for _, t in cells})
    rectangles = []
    for a in range(1, len(users) + 1):
        for chosen_users in combinations(users, a):
            for b in range(1, len(targets) + 1):
                for chosen_targets in combinations(targets, b):
                    block = {(u, t) for u in chosen_users for t in chosen_targets}
                    if a * b <= cap and block <= cells:
                        rectangles.append(frozenset(block))
    for count in range(len(cells) + 1):
        for cover in combinations(rectangles, count):
            if set().union(*cover) == cells:
                return count
    raise AssertionError("unreachable: single cells cover everything")


@settings(max_examples=60, deadline=None)
@given(
    cells=st.sets(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=10),
    cap=st.sampled_from([1, 2, 3, 4, 6]),
)
def test_the_cell_bound_never_exceeds_the_fewest_calls(cells: set[tuple[int, int]], cap: int) -> None:
    bound = cell_bound(_grants(cells), cap)
    fewest = _fewest_batches(cells, cap)
    assert len(cells) / cap - 1e-9 <= bound <= fewest + 1e-9
    assert bound <= len(make_batches(_grants(cells), cap=cap)) + 1e-9


def test_the_cell_bound_on_known_shapes() -> None:
    role = {(u, t) for u in range(10) for t in range(10)}
    assert cell_bound(_grants(role)) == pytest.approx(1)  # one call holds all of it
    diagonal = {(i, i) for i in range(7)}
    assert cell_bound(_grants(diagonal)) == pytest.approx(7)  # no two cells share a batch
    # two roles sharing no user or target, of 3 x 4 and 1 x 2: 2 calls, and the bound says so
    two = {(u, t) for u in range(3) for t in range(4)} | {(9, 8), (9, 9)}
    assert cell_bound(_grants(two)) == pytest.approx(2)
    # the cap's own bound is no higher: 250 cells of one role need 3 calls of 100
    wide = {(u, t) for u in range(25) for t in range(10)}
    assert cell_bound(_grants(wide)) == pytest.approx(2.5)
