"""The generated matrices that measure the planner where nobody tuned it: the same seeds give the same files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks import plan_bench, shapes

REPOSITORY = Path(__file__).resolve().parent.parent


def test_each_family_in_turn_and_the_same_files_for_the_same_seeds(tmp_path: Path) -> None:
    seeds = range(8, 16)
    first = shapes.write(tmp_path / "a", seeds)
    again = shapes.write(tmp_path / "b", seeds)

    stems = [path.stem for path in first]
    families = [family.__name__.replace("_", "-") for family in shapes.FAMILIES]
    assert stems == [f"{family}_{seed:04d}" for family, seed in zip(families, seeds, strict=True)]
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in again]
    # what `versus_bench` and `plan_bench` read: one `user permission` pair per line, sorted, no repeats
    for path in first:
        lines = path.read_text().splitlines()
        cells = plan_bench.rbac_cells(path)
        assert len(cells) == len(lines) > 0
        assert lines == [f"{user} {permission}" for user, permission in sorted(cells)]


def test_the_families_differ_in_shape() -> None:
    """Dense families fill most of their matrix; tall ones have far more users than targets, wide ones the reverse."""

    def shape(seed: int) -> tuple[int, int, float]:
        _, cells = shapes.matrix(seed)
        users, targets = {u for u, _ in cells}, {t for _, t in cells}
        return len(users), len(targets), len(cells) / (len(users) * len(targets))

    users, targets, _ = shape(4)  # tall
    assert users > 20 * targets
    users, targets, _ = shape(5)  # wide
    assert targets > 20 * users
    assert shape(6)[2] > 0.55  # dense


def test_a_file_where_the_folder_should_be_is_a_one_line_error(tmp_path: Path) -> None:
    taken = tmp_path / "matrices"
    taken.write_text("not a folder\n")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.shapes", str(taken), "--count", "1"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {taken}: not a folder (give a folder to write the matrices into)"
