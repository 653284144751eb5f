"""Whole-command benchmark: `reconciler plan --snapshot` end to end (policy load, directory reads from a served
emulator, diff, planning, plan file, rendering), against the planner alone on the same changes.

Run: python -m benchmarks.command_bench [--scales 12500,25000,50000,100000] [--targets 2000] [--live]
Each case is a role-structured onboarding: users in 60 roles, 30 targets each, nothing live yet; with --live,
the steady state instead: every desired cell already live (a scheduled run that finds nothing to do). Reported per
case: cells, wall time of the command, the planner alone (`make_batches`), their ratio, the command's peak
memory (child process), and the plan file's bytes per cell. Ratios are the figures to compare across machines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from reconciler.cells import Target
from reconciler.diff import Changes
from reconciler.plan import make_batches

ROLES = 60
PER_ROLE = 30
DAY = dt.date(2099, 12, 31)


def _roles(users: int, targets: int, seed: int = 1) -> list[list[int]]:
    rng = random.Random(seed)
    return [rng.sample(range(targets), PER_ROLE) for _ in range(ROLES)]


def _target(i: int) -> Target:
    return Target("llm_cube" if i % 3 else "theme", f"t{i:05d}")


def _write_case(folder: Path, users: int, targets: int, port: int, live: bool = False) -> None:
    roles = _roles(users, targets)
    org = {
        "access_keys": [{"id": "bench-ak", "secret": "bench-secret"}],
        "users": [{"id": f"u{u:06d}", "account": f"a{u}"} for u in range(users)],
        "llm_cubes": [
            {"id": t.id, "alias": f"Cube {t.id}"} for t in map(_target, range(targets)) if t.kind == "llm_cube"
        ],
        "themes": [{"id": t.id, "name": f"Theme {t.id}"} for t in map(_target, range(targets)) if t.kind == "theme"],
    }
    (folder / "org.json").write_text(json.dumps(org))
    policy = {
        "version": 1,
        "groups": {f"role{r}": {"members": [f"id:u{u:06d}" for u in range(r, users, ROLES)]} for r in range(ROLES)},
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
    (folder / "policies").mkdir()
    (folder / "policies" / "bench.yaml").write_text(yaml.safe_dump(policy, width=10**6))
    held = {f"u{u:06d}": sorted(str(_target(t)) for t in roles[u % ROLES]) if live else [] for u in range(users)}
    snapshot = {"format_version": 1, "taken_at": "", "users": held}
    (folder / "snapshot.json").write_text(json.dumps(snapshot))
    target = {"quickbi": {"endpoint": f"http://127.0.0.1:{port}"}, "directory_qps": 1000, "qps": 1000}
    config = {"policies": "policies/", "default_target": "b", "targets": {"b": {**target, "state_dir": "state"}}}
    (folder / "reconciler.yaml").write_text(yaml.safe_dump(config))


def _planner_alone(users: int, targets: int) -> float:
    roles = _roles(users, targets)
    cells = frozenset((f"u{u:06d}", _target(t)) for u in range(users) for t in roles[u % ROLES])
    changes = Changes(grants={DAY: cells}, revokes=frozenset(), revocable={})
    start = time.perf_counter()
    make_batches(changes)
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _case(users: int, targets: int, live: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        port = _free_port()
        _write_case(folder, users, targets, port, live)
        env = {
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "bench-ak",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench-secret",
            "HOME": name,
        }
        serve = [sys.executable, "-m", "reconciler", "emulator", "serve", "--org", "org.json", "--port", str(port)]
        server = subprocess.Popen(serve, cwd=folder, env=env, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError("emulator did not start")
                time.sleep(0.1)
            probe = (
                "import resource, sys, time\n"
                "from reconciler.cli import main\n"
                "sys.argv = ['reconciler', 'plan', '--snapshot', 'snapshot.json', '--out', 'plan.json']\n"
                "start = time.perf_counter()\n"
                "try:\n    main()\nexcept SystemExit:\n    pass\n"
                "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
                " file=sys.__stderr__)\n"
            )
            done = subprocess.run(
                [sys.executable, "-c", probe], cwd=folder, env=env, capture_output=True, text=True, timeout=3600
            )
            wall, peak_kib = done.stderr.strip().splitlines()[-1].split()
            plan = json.loads((folder / "plan.json").read_text())
            cells = plan["summary"]["unchanged_cells" if live else "grant_cells"]
            size = 0 if live else (folder / "plan.json").stat().st_size
        finally:
            server.terminate()
            server.wait(timeout=30)
    planner = _planner_alone(users, targets)
    return {
        "cells": cells,
        "wall": float(wall),
        "planner": planner,
        "peak_mib": int(peak_kib) / 1024,
        "bytes_per_cell": size / cells,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="12500,25000,50000,100000")
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--live", action="store_true", help="Every desired cell already live: nothing to do.")
    args = parser.parse_args()
    cells = "live cells (no change)" if args.live else "cells"
    planner = "planner s (all of them as changes)" if args.live else "planner s"
    print(f"| users | {cells} | command s | {planner} | command / planner | peak MiB | plan bytes / cell |")
    print("|---|---|---|---|---|---|---|")
    for users in (int(s) for s in args.scales.split(",")):
        row = _case(users, args.targets, args.live)
        print(
            f"| {users:,} | {row['cells']:,} | {row['wall']:.1f} | {row['planner']:.1f} | "
            f"{row['wall'] / row['planner']:.2f} | {row['peak_mib']:,.0f} | "
            f"{'-' if args.live else format(row['bytes_per_cell'], '.1f')} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
