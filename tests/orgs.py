"""Generated organisations and policies for apply tests and benchmarks."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml


def org_and_policy(
    users: int, cubes: int, themes: int, seed: int, teams: int = 6
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Teams of users granted team-specific targets, some stale live grants to revoke, one protected admin."""
    rng = random.Random(seed)
    user_ids = [f"u{i:05d}" for i in range(users)]
    cube_ids = [f"c{i:03d}" for i in range(cubes)]
    theme_ids = [f"t{i:03d}" for i in range(themes)]
    live = []
    for user in rng.sample(user_ids, users // 3):
        for target in rng.sample(cube_ids + theme_ids, 3):
            live.append(
                {"user": user, ("llm_cube" if target[0] == "c" else "theme"): target, "expire_day": "2099-12-31"}
            )
    org = {
        "access_keys": [{"id": "test-ak", "secret": "test-secret"}],
        "users": [{"id": u, "account": f"acct-{u}"} for u in user_ids],
        "llm_cubes": [{"id": c, "alias": f"Cube {c}"} for c in cube_ids],
        "themes": [{"id": t, "name": f"Theme {t}"} for t in theme_ids],
        "grants": live,
    }
    groups: dict[str, Any] = {}
    grants = []
    for team in range(teams):
        members = [f"id:{u}" for u in user_ids[team::teams]]
        groups[f"team{team}"] = {"members": members}
        grants.append(
            {
                "to": [f"team{team}"],
                "llm_cubes": [f"id:{c}" for c in rng.sample(cube_ids, rng.randint(2, min(12, cubes)))],
                "themes": [f"id:{t}" for t in rng.sample(theme_ids, rng.randint(1, min(4, themes)))],
            }
        )
    policy = {
        "version": 1,
        "groups": groups,
        "resources": {
            "llm_cubes": {c: {"id": c} for c in cube_ids},
            "themes": {t: {"id": t} for t in theme_ids},
        },
        "grants": grants,
        "protected_users": [f"id:{user_ids[0]}"],
    }
    return org, policy


def write_target(folder: Path, org: dict[str, Any], policy: dict[str, Any], target: dict[str, Any]) -> Path:
    """A config with one target named `t`, the policy in `policies/`, the organisation in `org.yaml`."""
    (folder / "policies").mkdir(parents=True, exist_ok=True)
    (folder / "policies" / "generated.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    (folder / "org.yaml").write_text(yaml.safe_dump(org, sort_keys=False))
    config = {"policies": "policies/", "default_target": "t", "targets": {"t": target}}
    (folder / "reconciler.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "reconciler.yaml"
