"""Whole-command benchmark: `reconciler plan --snapshot` end to end (policy load, directory reads from a served
emulator, diff, planning, plan file, rendering), against the planner alone on the same changes.

Run: python -m benchmarks.command_bench [--scales 12500,25000,50000,100000] [--targets 2000] [--live] [--repeat 3]
    [--rbac DIR]
Each case is an onboarding, nothing live yet: role-structured (users in 60 roles, 30 targets each; one group
and statement per role) and, with --rbac (or $RECONCILER_RBAC_DATA), the real HP Labs matrices with the policy
`reconciler import` writes for them (see plan_bench). With --live, the steady state instead: every desired cell
already live and in the expiry ledger (a scheduled run that finds nothing to do). Reported per case: cells, the
wall time of the whole process and of the planner alone (`make_batches` on the cells as a set), each the
fastest of --repeat runs, their ratio, the same less the start-up (the command on a one-cell case), the planner
on the same cells held per user as the command's diff gives them, the command's peak memory, and the plan
file's bytes per cell. Ratios are the figures to compare across machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks import plan_bench
from benchmarks.served import free_port, served_emulator
from reconciler.core.diff import Changes
from reconciler.core.importer import import_policy
from reconciler.core.plan import make_batches
from reconciler.core.snapshot import Snapshot
from reconciler.vocabulary.cells import Cell, CellRows, Target, shared_rows

ROLES = 60
PER_ROLE = 30
DAY = dt.date(2099, 12, 31)


@dataclass(frozen=True)
class Case:
    """Users x targets as integer cells, and the policy granting them (YAML text)."""

    name: str
    users: int
    targets: int
    cells: frozenset[tuple[int, int]]
    policy: str


def _user(u: int) -> str:
    return f"u{u:06d}"


def _target(i: int) -> Target:
    return Target("llm_cube" if i % 3 else "theme", f"t{i:05d}")


def role_case(users: int, targets: int, seed: int = 1) -> Case:
    """Users in 60 roles of 30 targets each; the policy has one group and one grant statement per role."""
    rng = random.Random(seed)
    roles = [rng.sample(range(targets), PER_ROLE) for _ in range(ROLES)]
    policy = {
        "version": 1,
        "groups": {f"role{r}": {"members": [f"id:{_user(u)}" for u in range(r, users, ROLES)]} for r in range(ROLES)},
        "grants": [
            {
                "to": [f"role{r}"],
                "llm_cubes": [f"id:{_target(t).id}" for t in role if _target(t).kind == "llm_cube"],
                "themes": [f"id:{_target(t).id}" for t in role if _target(t).kind == "theme"],
            }
            for r, role in enumerate(roles)
        ],
        "manage_all_targets": True,
    }
    cells = frozenset((u, t) for u in range(users) for t in roles[u % ROLES])
    return Case(f"{users:,}", users, targets, cells, yaml.safe_dump(policy, width=10**6))


def matrix_case(path: Path) -> Case:
    """A real user-permission matrix, with the policy `reconciler import` writes for it (role-mined groups, one
    statement per role, users by account)."""
    raw = plan_bench.rbac_cells(path)
    # numbered densely: the matrices skip some IDs, and an organisation of only the matrix's users is the case
    user_number = {u: i for i, u in enumerate(sorted({u for u, _ in raw}))}
    target_number = {t: i for i, t in enumerate(sorted({t for _, t in raw}))}
    cells = frozenset((user_number[u], target_number[t]) for u, t in raw)
    users, targets = len(user_number), len(target_number)
    grants: dict[str, set[Target]] = {}
    for u, t in sorted(cells):
        grants.setdefault(_user(u), set()).add(_target(t))
    live = Snapshot({user: frozenset(row) for user, row in grants.items()})
    accounts = {_user(u): f"a{u}" for u in range(users)}
    # as after an apply: the ledger knows every cell's expiry, so the statements carry it (never)
    ledger = {(user, target): DAY for user, row in grants.items() for target in row}
    imported = import_policy("b", accounts, {}, live, ledger, {}, None, dt.date(2026, 1, 1))
    policy = yaml.safe_load(imported.text)
    policy["manage_all_targets"] = True
    return Case(path.stem, users, targets, cells, yaml.safe_dump(policy, width=10**6))


def _write_case(folder: Path, case: Case, port: int, live: bool = False) -> None:
    org = {
        "access_keys": [{"id": "bench-ak", "secret": "bench-secret"}],
        "users": [{"id": _user(u), "account": f"a{u}"} for u in range(case.users)],
        "llm_cubes": [
            {"id": t.id, "alias": f"Cube {t.id}"} for t in map(_target, range(case.targets)) if t.kind == "llm_cube"
        ],
        "themes": [
            {"id": t.id, "name": f"Theme {t.id}"} for t in map(_target, range(case.targets)) if t.kind == "theme"
        ],
    }
    (folder / "org.json").write_text(json.dumps(org))
    (folder / "policies").mkdir()
    (folder / "policies" / "bench.yaml").write_text(case.policy)
    held: dict[str, list[str]] = {_user(u): [] for u in range(case.users)}
    if live:
        for u, t in case.cells:
            held[_user(u)].append(str(_target(t)))
    snapshot = {"format_version": 1, "taken_at": "", "users": {u: sorted(ts) for u, ts in held.items()}}
    (folder / "snapshot.json").write_text(json.dumps(snapshot))
    if live:  # a steady state has applied before: its ledger records every live cell, its record the targets
        (folder / "state").mkdir()
        ledger = "".join(f"{user}\t2099-12-31\t{' '.join(sorted(ts))}\n" for user, ts in sorted(held.items()) if ts)
        (folder / "state" / "expiry-ledger.tsv").write_text(ledger)
        record = {"format_version": 1, "targets": sorted({t for ts in held.values() for t in ts})}
        (folder / "state" / "managed-targets.json").write_text(json.dumps(record))
    target = {"quickbi": {"endpoint": f"http://127.0.0.1:{port}"}, "directory_qps": 1000, "qps": 1000}
    config = {"policies": "policies/", "default_target": "b", "targets": {"b": {**target, "state_dir": "state"}}}
    (folder / "reconciler.yaml").write_text(yaml.safe_dump(config))


def _planner_alone(case: Case, as_rows: bool = False) -> float:
    """`make_batches` on the case's cells: given as a set of cells, or (`as_rows`) held per user with shared rows
    as the diff hands them to it."""
    cells = frozenset((_user(u), _target(t)) for u, t in case.cells)
    if as_rows:
        rows: dict[str, set[Target]] = {}
        for user, target in cells:
            rows.setdefault(user, set()).add(target)
        grants: Set[Cell] = CellRows(shared_rows((user, frozenset(row)) for user, row in rows.items()))
    else:
        grants = cells
    changes = Changes(grants={DAY: grants}, revokes=frozenset(), revocable={})
    start = time.perf_counter()
    make_batches(changes)
    return time.perf_counter() - start


def _measure(case: Case, live: bool, repeat: int) -> dict[str, float]:
    """The fastest of `repeat` runs of the command and of the planner (the least disturbed by other load)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        port = free_port()
        _write_case(folder, case, port, live)
        env = {
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "bench-ak",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench-secret",
            "HOME": name,
        }
        with served_emulator(folder, env, port):
            probe = (
                "import sys\n"
                "from reconciler.interface.cli import main\n"
                "sys.argv = ['reconciler', 'plan', '--snapshot', 'snapshot.json', '--out', 'plan.json']\n"
                "try:\n    main()\nexcept SystemExit:\n    pass\n"
                # this process's own high-water mark (ru_maxrss would carry the benchmark's over the exec)
                "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
                "print(peak, file=sys.__stderr__)\n"
            )
            walls = []
            for _ in range(repeat):
                # the whole process, interpreter and imports included: what a user waits for
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", probe], cwd=folder, env=env, capture_output=True, text=True, timeout=3600
                )
                walls.append(time.perf_counter() - start)
            peak_kib = done.stderr.strip().splitlines()[-1]
            plan = json.loads((folder / "plan.json").read_text())
            cells = plan["summary"]["unchanged_cells" if live else "grant_cells"]
            size = 0 if live else (folder / "plan.json").stat().st_size
    planner = min(_planner_alone(case) for _ in range(repeat))
    on_rows = min(_planner_alone(case, as_rows=True) for _ in range(repeat))
    return {
        "cells": cells,
        "wall": min(walls),
        "planner": planner,
        "on_rows": on_rows,
        "peak_mib": int(peak_kib) / 1024,
        "bytes_per_cell": size / cells,
    }


def smallest_case() -> Case:
    """One user, one cell: what the command costs before any work grows with the data (start-up, imports)."""
    policy = {"version": 1, "grants": [{"to": ["id:u000000"], "llm_cubes": ["id:t00001"]}]}
    return Case("1 cell", 1, 2, frozenset({(0, 1)}), yaml.safe_dump(policy) + "manage_all_targets: true\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="12500,25000,50000,100000", help="Users per role-structured case.")
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--live", action="store_true", help="Every desired cell already live: nothing to do.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per case; the fastest is reported.")
    parser.add_argument("--rbac", help="Also the real matrices in this folder (default: $RECONCILER_RBAC_DATA).")
    args = parser.parse_args()
    cases = [role_case(int(users), args.targets) for users in args.scales.split(",") if users]
    matrices = plan_bench.rbac_dir(args.rbac)
    if matrices is None:
        print("note: no --rbac folder or $RECONCILER_RBAC_DATA, so the real matrices are skipped", file=sys.stderr)
    else:
        cases += [matrix_case(matrices / f"{n}.txt") for n in plan_bench.RBAC_FILES if (matrices / f"{n}.txt").exists()]
    fixed = _measure(smallest_case(), args.live, args.repeat)["wall"]
    print(f"start-up (the command on one cell): {fixed:.2f} s\n")
    cells = "live cells (no change)" if args.live else "cells"
    planner = "planner s (all of them as changes)" if args.live else "planner s"
    print(
        f"| case | users | {cells} | command s | {planner} | command / planner | (command - start-up) / planner "
        "| planner on rows s | peak MiB | plan bytes / cell |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        row = _measure(case, args.live, args.repeat)
        print(
            f"| {case.name} | {case.users:,} | {row['cells']:,} | {row['wall']:.1f} | {row['planner']:.2f} | "
            f"{row['wall'] / row['planner']:.2f} | {(row['wall'] - fixed) / row['planner']:.2f} | "
            f"{row['on_rows']:.2f} | {row['peak_mib']:,.0f} | "
            f"{'-' if args.live else format(row['bytes_per_cell'], '.1f')} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
