"""The planner against an earlier revision of itself: calls and planning time on the same inputs, one run.

Run: python -m benchmarks.versus_bench REV [--whole DIR] [--halves DIR] [--repeat 3] [--runs 2] [--fresh]
REV is any git revision of this repository (e.g. the commit a performance target was set against). Each
`--whole DIR` plans every `user permission` matrix (`*.txt`) in DIR as one onboarding; each `--halves DIR`
plans two random halves of each matrix's users with the targets renamed (`plan_bench`'s `sampled` family:
inputs nobody tuned the planner on). With neither, $RECONCILER_RBAC_DATA is planned whole and in halves.

Both planners run in child processes on the same cells (`make_batches`, fastest of --repeat each), REV's from
its own `reconciler/` package as `git archive` gives it. Each input is planned by the two right after each
other, the one going first alternating from input to input and from run to run, --runs times: a machine's slow
spell then falls on both sides of a ratio. Reported per input: calls before → now, the seconds of each (the
fastest over all runs), and now ÷ before in every run; then how many inputs take fewer, the same and more
calls, and on how many planning stays within twice the old time in every run. The ratios are the figures to
compare.

With --fresh, each input is planned once in a process of its own instead: the time is that of a first plan,
with what a process pays once (tables the planner fills as it goes, libraries it imports only when needed),
as one `plan` command pays it. --repeat is then ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
SLOWER_AT_MOST = 2.0  # the bound a performance target sets on planning time against the old planner


@dataclass
class Outcome:
    """One input's calls under each planner and its fastest time in each run."""

    name: str
    cells: int
    calls: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def ratios(self) -> list[float]:
        return [now / before for before, now in zip(self.seconds["before"], self.seconds["now"], strict=True)]


def _extract(revision: str, into: Path) -> Path:
    """REV's `reconciler/` package, unpacked under `into`; exits with a one-line error if git cannot give it."""
    found = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", "--format=tar", revision, "reconciler"],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        reason = found.stderr.decode(errors="replace").strip().splitlines()
        sys.exit(f"error: git cannot give revision {revision!r}: {reason[-1] if reason else 'unknown'}")
    with tarfile.open(fileobj=io.BytesIO(found.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into


def _inputs(whole: list[Path], halves: list[Path]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Every input, by name, as (user, target kind, target id) cells."""
    from benchmarks import plan_bench  # only the parent reads the matrices: a child imports REV's package

    def matrices(folder: Path) -> list[Path]:
        found = sorted(folder.glob("*.txt"))
        if not found:
            sys.exit(f"error: {folder}: no `user permission` matrices (*.txt) here")
        return found

    changes = [(path.stem, plan_bench.rbac(path)) for folder in whole for path in matrices(folder)]
    changes += [
        (f"{path.stem}, half {seed}", plan_bench.sampled(path, seed))
        for folder in halves
        for path in matrices(folder)
        for seed in (1, 2)
    ]
    names = [name for name, _ in changes]
    if len(set(names)) < len(names):
        sys.exit("error: two matrices have the same name: give each folder once, or rename one of them")
    return [
        (name, sorted((user, target.kind, target.id) for user, target in planned.grants[plan_bench.DAY]))
        for name, planned in changes
    ]


def _serve(tree: str, inputs_file: str, repeat: int) -> None:
    """In a child: read every input, then plan the one each line of stdin names (its index) with the planner of
    `tree`, printing one JSON line per plan: the calls and the fastest of `repeat` plans."""
    sys.path.insert(0, tree)
    import datetime as dt

    import reconciler
    from reconciler.core.diff import Changes
    from reconciler.core.plan import make_batches
    from reconciler.vocabulary.cells import Target

    if not Path(reconciler.__file__).resolve().is_relative_to(Path(tree).resolve()):
        sys.exit(f"error: the planner came from {reconciler.__file__}, not from {tree}")
    day = dt.date(2099, 12, 31)  # plan_bench.DAY, which a child cannot import: plan_bench needs this version
    inputs = [
        Changes(
            grants={day: frozenset((user, Target(kind, ident)) for user, kind, ident in cells)},
            revokes=frozenset(),
            revocable={},
        )
        for _, cells in json.loads(Path(inputs_file).read_text())
    ]
    for line in sys.stdin:
        changes = inputs[int(line)]
        fastest = float("inf")
        for _ in range(repeat):
            gc.collect()
            started = time.perf_counter()
            calls = len(make_batches(changes))
            fastest = min(fastest, time.perf_counter() - started)
        print(json.dumps({"calls": calls, "seconds": fastest}), flush=True)


class _Child:
    """A child process holding the inputs, planning one when asked (`_serve`) with the planner of `tree`; its
    errors go to `errors` (a file, not a pipe: a full pipe nobody reads would stall it)."""

    def __init__(self, tree: Path, inputs_file: Path, repeat: int, errors: Path) -> None:
        self.tree, self.errors = tree, errors
        command = [sys.executable, "-m", "benchmarks.versus_bench", "--child", str(tree), str(inputs_file), str(repeat)]
        # one hash seed for both: sets of cells then iterate in the same order in every child
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        with errors.open("w") as error_file:  # the child writes to its own copy of the file
            self._process = subprocess.Popen(
                command,
                cwd=REPOSITORY,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=error_file,
                text=True,
            )

    def plan(self, index: int) -> tuple[int, float]:
        """The calls of input `index` and its fastest planning time; exits with the child's last error line if it
        fails."""
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            self._process.stdin.write(f"{index}\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline()
        except BrokenPipeError:
            answer = ""
        if not answer:
            self._process.wait()
            lines = self.errors.read_text().strip().splitlines()
            sys.exit(f"error: the planner in {self.tree} failed: {lines[-1] if lines else 'it exited'}")
        result = json.loads(answer)
        return int(result["calls"]), float(result["seconds"])

    def __enter__(self) -> _Child:
        return self

    def __exit__(self, *_: object) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()  # the child's loop over stdin ends
        self._process.wait()


def compare(
    revision: str, whole: list[Path], halves: list[Path], repeat: int, runs: int, fresh: bool = False
) -> list[Outcome]:
    """Both planners on every input, `runs` times; with `fresh`, one child process per input and plan.

    The two are timed on one input right after each other, the one going first alternating from input to input
    and from run to run: a slow spell of a shared machine, which lasts seconds to minutes, then falls on both
    sides of a ratio rather than on one planner's whole run."""
    inputs = _inputs(whole, halves)
    outcomes = [Outcome(name, len(cells)) for name, cells in inputs]
    with tempfile.TemporaryDirectory(prefix="versus-") as folder, contextlib.ExitStack() as children:
        scratch = Path(folder)
        trees = {"before": _extract(revision, scratch / "before"), "now": REPOSITORY}
        # a fresh child reads its one input, a warm one all of them
        if fresh:
            for index, one in enumerate(inputs):
                (scratch / f"input-{index}.json").write_text(json.dumps([one]))
        else:
            (scratch / "inputs.json").write_text(json.dumps(inputs))
        warm = (
            {}
            if fresh
            else {
                version: children.enter_context(
                    _Child(tree, scratch / "inputs.json", repeat, scratch / f"{version}.err")
                )
                for version, tree in trees.items()
            }
        )

        def plan(version: str, index: int) -> tuple[int, float]:
            if not fresh:
                return warm[version].plan(index)
            with _Child(trees[version], scratch / f"input-{index}.json", 1, scratch / f"{version}.err") as child:
                return child.plan(0)

        for run in range(runs):
            for index, outcome in enumerate(outcomes):
                for version in ("before", "now") if (run + index) % 2 == 0 else ("now", "before"):
                    calls, seconds = plan(version, index)
                    outcome.calls[version] = calls
                    outcome.seconds.setdefault(version, []).append(seconds)
    return outcomes


def report(revision: str, outcomes: list[Outcome]) -> str:
    lines = [
        f"| input | cells | calls {revision} → now | {revision} s | now s | now / {revision}, by run |",
        "|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        ratios = ", ".join(f"{ratio:.2f}x" for ratio in outcome.ratios())
        lines.append(
            f"| {outcome.name} | {outcome.cells:,} | {outcome.calls['before']:,} → {outcome.calls['now']:,} | "
            f"{min(outcome.seconds['before']):.4f} | {min(outcome.seconds['now']):.4f} | {ratios} |"
        )
    fewer = sum(o.calls["now"] < o.calls["before"] for o in outcomes)
    more = sum(o.calls["now"] > o.calls["before"] for o in outcomes)
    within = sum(max(o.ratios()) < SLOWER_AT_MOST for o in outcomes)
    slowest = max(outcomes, key=lambda o: max(o.ratios()))
    lines += [
        "",
        f"Calls: fewer on {fewer}, the same on {len(outcomes) - fewer - more}, more on {more} of {len(outcomes)}.",
        f"Planning time within {SLOWER_AT_MOST:g}x of {revision} in every run on {within} of {len(outcomes)}; "
        f"the highest ratio {max(slowest.ratios()):.2f}x ({slowest.name}).",
    ]
    return "\n".join(lines)


def _at_least_one(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text} is not at least 1")
    return number


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="The git revision to compare against (a commit, tag or branch).")
    parser.add_argument("--whole", type=Path, action="append", default=[], help="Plan each matrix in DIR whole.")
    parser.add_argument("--halves", type=Path, action="append", default=[], help="Plan two halves of each in DIR.")
    parser.add_argument("--repeat", type=_at_least_one, default=3, help="Plans per input and run; the fastest counts.")
    parser.add_argument("--runs", type=_at_least_one, default=2, help="Alternated runs of the two planners.")
    parser.add_argument("--fresh", action="store_true", help="Time each input's first plan, in a process of its own.")
    args = parser.parse_args()
    whole, halves = args.whole, args.halves
    if not whole and not halves:
        folder = os.environ.get("RECONCILER_RBAC_DATA")
        if not folder:
            sys.exit("error: give --whole DIR or --halves DIR, or set RECONCILER_RBAC_DATA to a folder of matrices")
        whole = halves = [Path(folder)]
    for folder in (*whole, *halves):
        if not folder.is_dir():
            sys.exit(f"error: {folder}: no such folder (give a folder of `user permission` matrices)")
    outcomes = compare(args.revision, whole, halves, args.repeat, args.runs, args.fresh)
    print(report(args.revision, outcomes))


if __name__ == "__main__":
    main()
