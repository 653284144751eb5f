"""Onboarding benchmark: the whole `reconciler apply` against the script admins write today, side by side.

Run: python -m benchmarks.onboarding_bench [--users 1200] [--latency-ms 80] [--qps 50]

Both run against a served emulator (a fresh copy each) that answers after `--latency-ms` and throttles each API
above `--qps`: the case of issue #12, a 1,200-user onboarding at an 80 ms round trip and 50 QPS per API.
* The script: the official SDK, sequential, the directory read page by page, then one SmartqAuthorize per user.
* reconciler: `reconciler apply --auto-approve` as a separate process (start-up, policy, directory, refresh of
  every user, planning, the batches, the read-back, the ledger), configured for the same QPS.
reconciler runs twice: as by default (read-back of everyone revoked from or failed plus a sample of clean
grants) and with `--verify full` (every touched user read back). Reported: each wall time, its ratio to the
script's (goal ≤ 0.35 for the default), calls per API, the floor (the busiest API's calls ÷ QPS), and the cells
each left wrong.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from alibabacloud_quickbi_public20220101 import models as sdk_models
from alibabacloud_quickbi_public20220101.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from reconciler.emulator import Emulator, FaultSettings
from reconciler.emulator.orgfile import OrgFile

DAY = "2099-12-31"
TEAMS = 6
CUBES = 12
THEMES = 4


def organisation(users: int) -> OrgFile:
    return OrgFile.model_validate(
        {
            "access_keys": [{"id": "bench-ak", "secret": "bench-secret"}],
            "users": [{"id": f"u{i:05d}", "account": f"user{i:05d}"} for i in range(users)],
            "llm_cubes": [{"id": f"c{i:02d}", "alias": f"Cube {i}"} for i in range(CUBES)],
            "themes": [{"id": f"t{i}", "name": f"Theme {i}", "llm_cubes": [f"c{i:02d}"]} for i in range(THEMES)],
        }
    )


def team_targets(team: int) -> tuple[list[str], list[str]]:
    """Each team's LlmCubes and themes: overlapping windows, so teams share some targets."""
    cubes = [f"c{(team * 2 + k) % CUBES:02d}" for k in range(4)]
    themes = [f"t{team % THEMES}"]
    return cubes, themes


def policy(users: int) -> dict[str, object]:
    groups = {f"team{t}": {"members": [f"account:user{i:05d}" for i in range(t, users, TEAMS)]} for t in range(TEAMS)}
    grants = []
    for team in range(TEAMS):
        cubes, themes = team_targets(team)
        grants.append(
            {"to": [f"team{team}"], "llm_cubes": [f"id:{c}" for c in cubes], "themes": [f"id:{t}" for t in themes]}
        )
    resources = {
        "llm_cubes": {f"cube{i}": {"id": f"c{i:02d}"} for i in range(CUBES)},
        "themes": {f"theme{i}": {"id": f"t{i}"} for i in range(THEMES)},
    }
    return {"version": 1, "defaults": {"expires": DAY}, "groups": groups, "resources": resources, "grants": grants}


def wanted_cells(users: int) -> set[tuple[str, str, str]]:
    cells = set()
    for i in range(users):
        cubes, themes = team_targets(i % TEAMS)
        cells |= {(f"u{i:05d}", "llm_cube", c) for c in cubes} | {(f"u{i:05d}", "theme", t) for t in themes}
    return cells


def sdk_script(endpoint: str, users: int) -> tuple[float, int]:
    """What an admin writes today: read the directory, then grant each user their team's targets."""
    client = Client(
        Config(access_key_id="bench-ak", access_key_secret="bench-secret", endpoint=endpoint, protocol="http")
    )
    runtime = RuntimeOptions(autoretry=True, max_attempts=5, read_timeout=10000)
    calls = 0
    start = time.perf_counter()
    ids: dict[str, str] = {}
    page = 1
    while True:
        answer = client.query_user_list_with_options(
            sdk_models.QueryUserListRequest(page_num=page, page_size=100), runtime
        ).body.result
        calls += 1
        ids.update({u.account_name: u.user_id for u in answer.data})
        if page * 100 >= answer.total_num:
            break
        page += 1
    for i in range(users):
        cubes, themes = team_targets(i % TEAMS)
        request = sdk_models.SmartqAuthorizeRequest(
            operation_type=0,
            user_ids=ids[f"user{i:05d}"],
            llm_cubes=",".join(cubes),
            llm_cube_themes=",".join(themes),
            expire_day=DAY,
        )
        while True:
            calls += 1
            try:
                client.smartq_authorize_with_options(request, runtime)
                break
            except Exception as error:  # throttled: wait as told, like a careful script would
                wait = getattr(error, "retry_after", None) or 200
                time.sleep(wait / 1000)
    return time.perf_counter() - start, calls


def reconciler_apply(
    endpoint: str, users: int, qps: float, folder: Path, flags: list[str]
) -> tuple[float, collections.Counter[str], str]:
    (folder / "policies").mkdir()
    (folder / "policies" / "onboarding.yaml").write_text(yaml.safe_dump(policy(users), sort_keys=False))
    config = {
        "policies": "policies/",
        "default_target": "bench",
        "targets": {"bench": {"quickbi": {"endpoint": endpoint}, "qps": qps, "state_dir": ".state"}},
    }
    (folder / "reconciler.yaml").write_text(yaml.safe_dump(config))
    environment = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "bench-ak",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench-secret",
        "NO_COLOR": "1",
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "-v", "apply", "--auto-approve", *flags],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"reconciler apply failed ({done.returncode}): {done.stderr[-2000:]}")
    calls = collections.Counter(re.findall(r"reconciler\.quickbi: (\w+) ", done.stderr))
    summary = [line for line in done.stdout.splitlines() if line.startswith(("Plan:", "Apply"))]
    return elapsed, calls, " / ".join(summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--users", type=int, default=1200)
    parser.add_argument("--latency-ms", type=float, default=80)
    parser.add_argument("--qps", type=float, default=50)
    args = parser.parse_args()
    faults = FaultSettings(qps=args.qps, latency_ms=args.latency_ms)
    wanted = wanted_cells(args.users)

    theirs = Emulator(organisation(args.users), faults=faults)
    with theirs.serve() as server:
        sdk_elapsed, sdk_calls = sdk_script(f"127.0.0.1:{server.port}", args.users)
    sdk_wrong = len(wanted ^ set(theirs.backend.live_grants()))

    rows = []
    for flags in ([], ["--verify", "full"]):
        ours = Emulator(organisation(args.users), faults=faults)
        with ours.serve() as server, tempfile.TemporaryDirectory() as folder:
            elapsed, calls, summary = reconciler_apply(server.endpoint, args.users, args.qps, Path(folder), flags)
        wrong = len(wanted ^ set(ours.backend.live_grants()))
        rows.append((" ".join(["reconciler apply", *flags]), elapsed, calls, summary, wrong))

    print(
        f"{args.users} users onboarded, {len(wanted):,} cells; {args.latency_ms:g} ms latency, {args.qps:g} QPS per API"
    )
    print("| runner | wall s | calls | busiest API's calls ÷ QPS (floor) s | cells left wrong | wall / SDK script |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| sequential SDK script | {sdk_elapsed:.1f} | {sdk_calls} | - | {sdk_wrong} | 1.00 |")
    for name, elapsed, calls, _, wrong in rows:
        floor = max(calls.values()) / args.qps
        print(
            f"| {name} | {elapsed:.1f} | {sum(calls.values())} | {floor:.1f} | {wrong} | {elapsed / sdk_elapsed:.2f} |"
        )
    for name, _, calls, summary, _ in rows:
        print(f"{name}: {summary}")
        print("  calls per API: " + ", ".join(f"{a} {n}" for a, n in sorted(calls.items())))
    print("goal: the default apply ≤ 0.35 of the SDK script's wall time")


if __name__ == "__main__":
    main()
