"""The benchmark that sets the planner against an earlier revision: it must plan with both, and say so when not."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks import plan_bench, versus_bench
from reconciler.core.plan import make_batches

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None
    or subprocess.run(["git", "-C", str(versus_bench.REPOSITORY), "rev-parse", "HEAD"], capture_output=True).returncode,
    reason="needs git and this repository's history",
)


@pytest.fixture
def matrices(tmp_path: Path) -> Path:
    folder = tmp_path / "matrices"
    folder.mkdir()
    rng = random.Random(7)
    cells = {(rng.randrange(30), rng.randrange(40)) for _ in range(300)}
    (folder / "scattered.txt").write_text("".join(f"{u} {t}\n" for u, t in sorted(cells)))
    return folder


def test_both_planners_plan_every_input_in_every_run(matrices: Path) -> None:
    outcomes = versus_bench.compare("HEAD", [matrices], [matrices], repeat=1, runs=2)

    assert [o.name for o in outcomes] == ["scattered", "scattered, half 1", "scattered, half 2"]
    whole = outcomes[0]
    # the working tree's planner is the one this process imports: its calls are the "now" column
    assert whole.calls["now"] == len(make_batches(plan_bench.rbac(matrices / "scattered.txt")))
    assert whole.cells == len(plan_bench.rbac_cells(matrices / "scattered.txt"))
    assert all(len(o.seconds["before"]) == len(o.seconds["now"]) == 2 for o in outcomes)
    assert all(len(o.ratios()) == 2 and min(o.ratios()) > 0 for o in outcomes)

    text = versus_bench.report("HEAD", outcomes)
    assert "| scattered, half 2 | " in text
    assert f"of {len(outcomes)}." in text.splitlines()[-2]


def test_a_revision_git_does_not_have_is_one_line_error(matrices: Path) -> None:
    with pytest.raises(SystemExit, match=r"^error: git cannot give revision 'no-such-revision'"):
        versus_bench.compare("no-such-revision", [matrices], [], repeat=1, runs=1)


def test_a_folder_without_matrices_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no `user permission` matrices"):
        versus_bench.compare("HEAD", [tmp_path], [], repeat=1, runs=1)


def test_a_tree_without_the_planner_is_not_silently_replaced_by_this_one(tmp_path: Path, matrices: Path) -> None:
    """A child must plan with the tree it is given: one without `reconciler/` must fail, not fall back to the
    working tree's package (which would compare the planner with itself)."""
    inputs = tmp_path / "inputs.json"
    inputs.write_text('[["one", [["u1", "theme", "t1"]]]]')
    failed = pytest.raises(SystemExit, match=r"the planner in .* failed: error: the planner came from")
    with versus_bench._Child(tmp_path, inputs, 1, tmp_path / "errors") as child, failed:
        child.plan(0)


def test_the_two_planners_take_turns_on_each_input(matrices: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each input is timed by both planners right after each other, the first of the two alternating from input
    to input and from run to run: a slow spell of the machine falls on both sides of a ratio."""
    plans: list[tuple[str, int]] = []

    class Recorded(versus_bench._Child):
        def plan(self, index: int) -> tuple[int, float]:
            plans.append(("now" if self.tree == versus_bench.REPOSITORY else "before", index))
            return super().plan(index)

    monkeypatch.setattr(versus_bench, "_Child", Recorded)
    versus_bench.compare("HEAD", [matrices], [matrices], repeat=1, runs=2)

    first_run = [("before", 0), ("now", 0), ("now", 1), ("before", 1), ("before", 2), ("now", 2)]
    second_run = [("now", 0), ("before", 0), ("before", 1), ("now", 1), ("now", 2), ("before", 2)]
    assert plans == first_run + second_run


def test_runs_and_repeats_are_at_least_one(matrices: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No run would leave no time to compare: refused before anything is planned."""
    for flag in ("--runs", "--repeat"):
        monkeypatch.setattr("sys.argv", ["versus_bench", "HEAD", "--whole", str(matrices), flag, "0"])
        with pytest.raises(SystemExit) as refused:
            versus_bench.main()
        assert refused.value.code == 2


def test_fresh_plans_each_input_once_in_a_process_of_its_own(matrices: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first plan pays what a process pays once (tables filled on the way, libraries imported when needed),
    as one `plan` command does: each child gets one input and plans it once."""
    children: list[tuple[list[str], int]] = []

    class Recorded(versus_bench._Child):
        def __init__(self, tree: Path, inputs_file: Path, repeat: int, errors: Path) -> None:
            children.append(([name for name, _ in json.loads(inputs_file.read_text())], repeat))
            super().__init__(tree, inputs_file, repeat, errors)

    monkeypatch.setattr(versus_bench, "_Child", Recorded)
    fresh = versus_bench.compare("HEAD", [matrices], [matrices], repeat=5, runs=2, fresh=True)

    names = ["scattered", "scattered, half 1", "scattered, half 2"]
    assert sorted(children) == sorted(([name], 1) for name in names for _ in range(4))  # 2 runs x 2 planners
    assert all(len(o.seconds["before"]) == len(o.seconds["now"]) == 2 for o in fresh)
    warm = versus_bench.compare("HEAD", [matrices], [matrices], repeat=1, runs=1)
    assert [o.calls for o in fresh] == [o.calls for o in warm]
