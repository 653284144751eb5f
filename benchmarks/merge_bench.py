"""Merge benchmark: the apply after a merge, incremental against full, in a large tenant at a real quota.

Run: python -m benchmarks.merge_bench [--users 100000] [--changed 40] [--qps 50]
A served emulator (limit --qps per API, the client paced to it) holds a tenant in the steady state: users in
50 roles of 8 targets each, every desired grant live, the expiry ledger and last-apply record as a complete
apply of the first commit leaves them. Two merges follow, each moving --changed users to the next role: the
first is applied in full (`apply`), the second incrementally (`apply --incremental`). Reported for each: wall
time of the whole command, calls by API from the audit log; then the incremental apply's time as a share of
the full one's (the target is at most 0.05 for 40 of 100,000 users). A full apply reads every user, so at
100,000 users and 50 QPS it alone takes over half an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks.served import free_port, served_emulator

ROLES = 50
PER_ROLE = 8
TARGETS = 200
KEY = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "bench-ak", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench-secret"}


def _user(u: int) -> str:
    return f"u{u:06d}"


def _target(t: int) -> tuple[str, str]:
    return ("llm_cube", f"c{t:04d}") if t % 4 else ("theme", f"t{t:04d}")


def _policy(role_of: list[int], roles: list[list[int]]) -> str:
    members: dict[int, list[str]] = {r: [] for r in range(ROLES)}
    for u, r in enumerate(role_of):
        members[r].append(f"id:{_user(u)}")
    document = {
        "version": 1,
        "manage_all_targets": True,
        "groups": {f"role{r}": {"members": members[r]} for r in range(ROLES)},
        "grants": [
            {
                "to": [f"role{r}"],
                "llm_cubes": [f"id:{_target(t)[1]}" for t in targets if _target(t)[0] == "llm_cube"],
                "themes": [f"id:{_target(t)[1]}" for t in targets if _target(t)[0] == "theme"],
            }
            for r, targets in enumerate(roles)
        ],
    }
    return yaml.safe_dump(document, width=10**6)


def _tenant(folder: Path, users: int, port: int, qps: float, rng: random.Random) -> tuple[list[int], list[list[int]]]:
    """The organisation (every desired grant live), the policy committed, and the state a complete apply of
    that commit leaves: the ledger, the managed-target record and the last-apply record."""
    roles = [rng.sample(range(TARGETS), PER_ROLE) for _ in range(ROLES)]
    role_of = [rng.randrange(ROLES) for _ in range(users)]
    grants = []
    ledger = []
    for u, r in enumerate(role_of):
        for t in sorted(roles[r]):
            kind, target_id = _target(t)
            grants.append({"user": _user(u), kind: target_id, "expire_day": "2099-12-31"})
        ledger.append(f"{_user(u)}\t2099-12-31\t{' '.join(sorted(':'.join(_target(t)) for t in roles[r]))}\n")
    org = {
        "access_keys": [{"id": KEY["ALIBABA_CLOUD_ACCESS_KEY_ID"], "secret": KEY["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]}],
        "users": [{"id": _user(u), "account": f"a{u}"} for u in range(users)],
        "llm_cubes": [{"id": _target(t)[1], "alias": f"Cube {t}"} for t in range(TARGETS) if t % 4],
        "themes": [{"id": _target(t)[1], "name": f"Theme {t}"} for t in range(TARGETS) if not t % 4],
        "grants": grants,
    }
    (folder / "org.json").write_text(json.dumps(org))
    (folder / "policies").mkdir()
    (folder / "policies" / "roles.yaml").write_text(_policy(role_of, roles))
    target = {"quickbi": {"endpoint": f"http://127.0.0.1:{port}"}, "qps": qps, "state_dir": "state"}
    (folder / "reconciler.yaml").write_text(yaml.safe_dump({"policies": "policies/", "targets": {"b": target}}))
    (folder / ".gitignore").write_text("state/\norg.json\n")
    commit = _commit(folder, "roles")
    state = folder / "state"
    state.mkdir()
    (state / "expiry-ledger.tsv").write_text("".join(sorted(ledger)))
    managed = sorted({":".join(_target(t)) for role in roles for t in role})
    (state / "managed-targets.json").write_text(json.dumps({"format_version": 1, "targets": managed}))
    (state / "last-apply.json").write_text(json.dumps({"format_version": 1, "commit": commit, "target": "b"}))
    return role_of, roles


def _commit(folder: Path, message: str) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    if not (folder / ".git").exists():
        git("init", "--quiet", "-b", "main")
    git("add", "--all")
    git("-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "--quiet", "-m", message)
    return git("rev-parse", "HEAD")


def _merge(folder: Path, role_of: list[int], roles: list[list[int]], changed: int, rng: random.Random) -> None:
    """A merge moving `changed` users to the next role."""
    for u in rng.sample(range(len(role_of)), changed):
        role_of[u] = (role_of[u] + 1) % ROLES
    (folder / "policies" / "roles.yaml").write_text(_policy(role_of, roles))
    _commit(folder, f"{changed} users change role")


@dataclass(frozen=True)
class Run:
    wall: float
    calls: Counter[str]


def _apply(folder: Path, env: dict[str, str], *flags: str) -> Run:
    """One whole `apply` process: its wall time, and its calls by API from the audit log."""
    audit = folder / "state" / "audit.jsonl"
    before = audit.read_text().count("\n") if audit.exists() else 0
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "--target", "b", "apply", "--auto-approve", *flags],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=4 * 3600,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"apply {' '.join(flags)} failed: {done.stderr[-2000:]}")
    lines = audit.read_text().splitlines()[before:]
    return Run(wall, Counter(json.loads(line)["action"] for line in lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=40)
    parser.add_argument("--qps", type=float, default=50)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        port = free_port()
        role_of, roles = _tenant(folder, args.users, port, args.qps, rng)
        env = {**os.environ, **KEY, "HOME": name}
        with served_emulator(folder, env, port, "--qps", str(args.qps)):
            _merge(folder, role_of, roles, args.changed, rng)
            full = _apply(folder, env)
            _merge(folder, role_of, roles, args.changed, rng)
            incremental = _apply(folder, env, "--incremental")
    cells = args.users * PER_ROLE
    print(f"{args.users:,} users, {cells:,} live cells, {args.changed} users changed per merge, {args.qps:g} QPS")
    print("| apply | wall s | reads (QueryLlmCubeWithThemeListByUserId) | SmartqAuthorize | all calls |")
    print("|---|---|---|---|---|")
    for label, run in (("full (`apply`)", full), ("incremental (`apply --incremental`)", incremental)):
        reads, writes = run.calls["QueryLlmCubeWithThemeListByUserId"], run.calls["SmartqAuthorize"]
        print(f"| {label} | {run.wall:,.1f} | {reads:,} | {writes} | {run.calls.total():,} |")
    print(f"incremental ÷ full wall time: {incremental.wall / full.wall:.4f}")


if __name__ == "__main__":
    main()
