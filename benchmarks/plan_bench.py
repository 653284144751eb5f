"""Batch planner benchmark: calls versus the lower bound and the naive strategies, on generated and real data.

Run: python -m benchmarks.plan_bench [--quick] [--scale-only] [--only FAMILY] [--rbac DIR]
The `rbac` family reads the HP Labs user-permission matrices (`user permission` per line) from DIR, or from
$RECONCILER_RBAC_DATA: the role-mining datasets redistributed in github.com/RoleMining/ConstrainedRM
(`datasets/realWorld/`). Without either it is skipped with a note. The `sampled` family plans two random halves of
each matrix's users, targets renamed: inputs with real structure that no one tuned the planner on.
Every family is generated with a fixed seed, so the table is reproducible; times are wall-clock seconds of
`make_batches` (Changes -> Batches), and peak memory is the process's maximum RSS measured in a child process.
Two lower bounds on calls: Σ ceil(cells/100) (with, for the real matrices, their minimum role count), and the
cell-weight bound (`reconciler.core.plan.cell_bound`: each cell weighs 1 ÷ the most cells a batch holding it can
have), which is higher on sparse changes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing
import os
import random
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

from reconciler.core.diff import Changes
from reconciler.core.plan import cell_bound, make_batches
from reconciler.vocabulary.cells import Cell, Target

DAY = dt.date(2099, 12, 31)
RBAC_FILES = ("hc", "domino", "emea", "apj", "fire1", "fire2", "customer", "americas_small", "americas_large")
Family = tuple[str, str, Callable[[], Changes]]


def target(i: int) -> Target:
    return Target("llm_cube" if i % 3 else "theme", f"t{i:05d}")


def user(i: int) -> str:
    return f"u{i:06d}"


def grants(cells: set[tuple[int, int]]) -> Changes:
    return Changes(grants={DAY: frozenset((user(u), target(t)) for u, t in cells)}, revokes=frozenset(), revocable={})


def roles(sizes_widths: list[tuple[int, int]]) -> Changes:
    cells: set[tuple[int, int]] = set()
    next_user, next_target = 0, 0
    for size, width in sizes_widths:
        for u in range(next_user, next_user + size):
            cells.update((u, t) for t in range(next_target, next_target + width))
        next_user += size
        next_target += width
    return grants(cells)


def overlapping_roles(users: int, role_count: int, pool: int, exceptions: float, seed: int) -> Changes:
    rng = random.Random(seed)
    role_targets = [rng.sample(range(pool), rng.randint(5, 40)) for _ in range(role_count)]
    cells: set[tuple[int, int]] = set()
    for u in range(users):
        row: set[int] = set()
        for r in rng.sample(range(role_count), rng.choice((1, 1, 2))):
            row.update(role_targets[r])
        if rng.random() < exceptions:
            row.add(rng.randrange(pool))
        if rng.random() < exceptions and len(row) > 1:
            row.discard(rng.choice(sorted(row)))
        cells.update((u, t) for t in row)
    return grants(cells)


def random_sparse(users: int, targets: int, density: float, seed: int) -> Changes:
    rng = random.Random(seed)
    count = int(users * targets * density)
    return grants({(rng.randrange(users), rng.randrange(targets)) for _ in range(count)})


def scattered_revokes(users: int, targets: int, per_user: int, desired_density: float, seed: int) -> Changes:
    rng = random.Random(seed)
    managed = frozenset(target(t) for t in range(targets))
    revokes: set[Cell] = set()
    revocable: dict[str, frozenset[Target]] = {}
    for u in range(users):
        desired = {target(t) for t in range(targets) if rng.random() < desired_density}
        free = sorted(managed - desired)
        chosen = rng.sample(free, min(per_user, len(free)))
        revokes.update((user(u), t) for t in chosen)
        revocable[user(u)] = frozenset(free)
    return Changes(grants={}, revokes=frozenset(revokes), revocable=revocable)


def rbac_dir(given: str | None) -> Path | None:
    """Where the HP Labs matrices are: --rbac, else $RECONCILER_RBAC_DATA, else nowhere (the family is skipped)."""
    folder = given or os.environ.get("RECONCILER_RBAC_DATA")
    return Path(folder) if folder else None


def rbac_cells(path: Path) -> set[tuple[int, int]]:
    """One matrix's `user permission` lines as (user, permission) integer pairs."""
    cells = set()
    for line in path.read_text().splitlines():
        if line.strip():
            u, p = line.split()
            cells.add((int(u), int(p)))
    return cells


def rbac(path: Path) -> Changes:
    return grants(rbac_cells(path))


def sampled(path: Path, seed: int) -> Changes:
    """Half of a real matrix's users chosen at random, its targets renamed at random: real structure in inputs
    the planner was not tuned on, and an order its names do not give."""
    cells = rbac_cells(path)
    rng = random.Random(seed)
    users = sorted({u for u, _ in cells})
    kept = set(rng.sample(users, len(users) // 2))
    targets = sorted({t for _, t in cells})
    renamed = dict(zip(targets, rng.sample(targets, len(targets)), strict=True))
    return grants({(u, renamed[t]) for u, t in cells if u in kept})


def scale(cells_wanted: int) -> Changes:
    """Role-structured: 100,000 users in roles of 500 over 2,000 targets (3,000,000 cells at full size)."""
    per_user = 30
    users = cells_wanted // per_user
    role_size = 500
    chunks = []
    for start in range(0, users, role_size):
        chunks.append((min(role_size, users - start), per_user))
    cells: set[tuple[int, int]] = set()
    rng = random.Random(1)
    for index, (size, width) in enumerate(chunks):
        base = rng.randrange(0, 2000 - width)
        first = index * role_size
        for u in range(first, first + size):
            cells.update((u, t) for t in range(base, base + width))
    return grants(cells)


def naive(changes: Changes) -> tuple[int, int]:
    """Calls of one-batch-per-user (targets chunked by 100) and one-batch-per-target (users chunked by 100)."""
    by_user = by_target = 0
    groups = [*changes.grants.values(), changes.revokes]
    for cells in groups:
        rows: dict[str, int] = defaultdict(int)
        columns: dict[Target, int] = defaultdict(int)
        for u, t in cells:
            rows[u] += 1
            columns[t] += 1
        by_user += sum(math.ceil(n / 100) for n in rows.values())
        by_target += sum(math.ceil(n / 100) for n in columns.values())
    return by_user, by_target


# Minimum role counts (minimum biclique covers) of the HP Labs matrices, from Ene et al., "Fast exact and
# heuristic methods for role minimization problems", SACMAT 2008, as tabulated with the datasets in
# RoleMining/ConstrainedRM. Every batch of a cover is a biclique of the user x target graph, so no plan can use
# fewer calls than this either. customer's minimum is not known.
MIN_ROLES = {
    "hc": 14,
    "domino": 20,
    "emea": 34,
    "apj": 453,
    "fire1": 64,
    "fire2": 10,
    "americas_small": 178,
    "americas_large": 398,
}


def bound(changes: Changes, name: str = "") -> int:
    """The larger of the two lower bounds: the cap's, Σ ceil(cells/100), and the minimum biclique cover's."""
    cap = sum(math.ceil(len(c) / 100) for c in changes.grants.values()) + math.ceil(len(changes.revokes) / 100)
    return max(cap, MIN_ROLES.get(name, 0))


# the cell-weight bound costs Σ (cells per column)² steps: the scale family's structured millions are left out
CELL_BOUND_UP_TO = 400_000


def measure(family: Family, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    group, name, build = family
    changes = build()
    cells = changes.grant_cells + len(changes.revokes)
    start = time.perf_counter()
    batches = make_batches(changes)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    by_user, by_target = naive(changes)
    low = bound(changes, name if group == "rbac" else "")
    weighted = cell_bound(changes) if cells <= CELL_BOUND_UP_TO else None
    queue.put((group, name, cells, low, weighted, len(batches), by_user, by_target, elapsed, peak))


def families(quick: bool, scale_only: bool, matrices: Path | None) -> list[Family]:
    found: list[Family] = []
    if not scale_only:
        for width in (1, 3, 7, 51, 101, 150):
            for size in (100, 1000) if quick else (100, 1000, 10000):
                found.append(("role", f"1 role {size} users x {width}", partial(roles, [(size, width)])))
        mixed = [(100 + 37 * i, w) for i, w in enumerate((3, 7, 51, 101, 150, 13, 29))]
        found.append(("role", "7 roles, 100-322 users, mixed widths", lambda: roles(mixed)))
        small = [(10 + 13 * i, w) for i, w in enumerate((3, 7, 51, 101, 150, 13, 29))]
        found.append(("small-role", "7 roles, 10-88 users, mixed widths", lambda: roles(small)))
        found.append(("small-role", "1 role 37 users x 51", lambda: roles([(37, 51)])))
        for seed in (1, 2):
            found.append(
                (
                    "overlap",
                    f"2000 users, 25 roles, 5% exceptions, seed {seed}",
                    partial(overlapping_roles, 2000, 25, 400, 0.05, seed),
                )
            )
        found.append(
            ("overlap", "5000 users, 60 roles, 20% exceptions", lambda: overlapping_roles(5000, 60, 800, 0.2, 3))
        )
        found.append(("random", "2000 users x 1000 targets, 1%", lambda: random_sparse(2000, 1000, 0.01, 4)))
        found.append(("random", "5000 users x 2000 targets, 0.2%", lambda: random_sparse(5000, 2000, 0.002, 5)))
        found.append(
            ("revoke", "3000 users x 50 targets, 1 revoke each", lambda: scattered_revokes(3000, 50, 1, 0.2, 6))
        )
        found.append(
            ("revoke", "2000 users x 200 targets, 3 revokes each", lambda: scattered_revokes(2000, 200, 3, 0.1, 7))
        )
        found.append(
            ("revoke", "1000 users x 500 targets, 10 revokes each", lambda: scattered_revokes(1000, 500, 10, 0.05, 9))
        )
        paths = [matrices / f"{name}.txt" for name in RBAC_FILES] if matrices is not None else []
        found.extend(("rbac", path.stem, partial(rbac, path)) for path in paths if path.exists())
        found.extend(
            ("sampled", f"{path.stem}, half the users, seed {seed}", partial(sampled, path, seed))
            for path in paths
            if path.exists()
            for seed in (1, 2)
        )
    sizes = (375_000, 750_000, 1_500_000, 3_000_000) if not quick else (375_000, 750_000)
    for size in sizes:
        found.append(("scale", f"{size // 30:,} users in roles, {size:,} cells", partial(scale, size)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller sizes, for a fast look.")
    parser.add_argument("--scale-only", action="store_true", help="Only the scale family.")
    parser.add_argument(
        "--only", help="Only this family (role, small-role, overlap, random, revoke, rbac, sampled, scale)."
    )
    parser.add_argument("--rbac", help="Folder of the HP Labs matrices (default: $RECONCILER_RBAC_DATA).")
    args = parser.parse_args()
    matrices = rbac_dir(args.rbac)
    if matrices is None and args.only in (None, "rbac", "sampled"):
        print("note: no --rbac folder or $RECONCILER_RBAC_DATA, so the real matrices are skipped", file=sys.stderr)
    context = multiprocessing.get_context("fork")
    columns = ["family", "case", "cells", "lower bound", "calls", "calls/bound", "cell bound", "calls/cell bound"]
    columns += ["per-user", "per-target"]
    columns += ["calls/naive", "time s", "peak MiB"]
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for family in families(args.quick, args.scale_only, matrices):
        if args.only and family[0] != args.only:
            continue
        queue = context.Queue()
        process = context.Process(target=measure, args=(family, queue))
        process.start()
        group, name, cells, low, weighted, calls, by_user, by_target, elapsed, peak = queue.get()
        process.join()
        better = min(by_user, by_target)
        cell_columns = f"{weighted:,.1f} | {calls / max(weighted, 1):.3f}" if weighted is not None else "- | -"
        print(
            f"| {group} | {name} | {cells:,} | {low:,} | {calls:,} | {calls / max(low, 1):.3f} | {cell_columns} | "
            f"{by_user:,} | {by_target:,} | {calls / max(better, 1):.3f} | {elapsed:.2f} | {peak:,.0f} |",
            flush=True,
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
