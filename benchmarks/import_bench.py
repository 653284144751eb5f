"""Import benchmark: `reconciler import` of a tenant whose live grants are a real user-permission matrix, then
the round trip (the imported policy alone plans nothing).

Run: python -m benchmarks.import_bench --rbac DIR   (or $RECONCILER_RBAC_DATA=DIR)
Each `*.txt` matrix in DIR (`user permission` per line) becomes an organisation in the in-process emulator
(unpaced: the emulator's speed, not Quick BI's quota, is what a read costs here) with every cell live. Reported:
statements written against the literature's minimum number of roles for the known HP Labs sets (Ene et al.
2008), the whole import (directory and per-user reads, mining, writing) and the mining alone, each in seconds,
and the round trip: the cells the next plan would change (0 is exact).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks import plan_bench
from reconciler.application.config import load_config
from reconciler.application.usecases import PlanOptions, import_live, make_plan
from reconciler.application.workspace import open_target
from reconciler.core.policy import load_policy
from reconciler.core.roles import mine_roles

# the exact minimum number of roles (a minimum biclique cover) of the HP Labs sets, from the literature
KNOWN_MINIMUM = {
    "hc": 14,
    "healthcare": 14,
    "domino": 20,
    "emea": 34,
    "fire1": 64,
    "firewall1": 64,
    "fire2": 10,
    "firewall2": 10,
    "apj": 453,
    "customer": 276,
    "americas_small": 178,
    "americas_large": 398,
}
TODAY = dt.date(2026, 1, 1)


def _tenant(folder: Path, cells: set[tuple[int, int]]) -> None:
    users = sorted({u for u, _ in cells})
    targets = sorted({p for _, p in cells})
    org = {
        "access_keys": [{"id": "bench-ak", "secret": "bench-secret"}],
        "users": [{"id": f"u{u}", "account": f"user{u}"} for u in users],
        "llm_cubes": [{"id": f"c{p}", "alias": f"Cube {p}"} for p in targets],
        "grants": [{"user": f"u{u}", "llm_cube": f"c{p}", "expire_day": "2099-12-31"} for u, p in sorted(cells)],
    }
    (folder / "org.yaml").write_text(yaml.safe_dump(org, width=10**6))
    (folder / "policies").mkdir()
    (folder / "policies" / "none.yaml").write_text("version: 1\nmanage_all_targets: true\n")
    target = {"emulator": {"org": "org.yaml", "state": "state/org.json"}}
    config = {"policies": "policies/", "default_target": "b", "targets": {"b": target}}
    (folder / "reconciler.yaml").write_text(yaml.safe_dump(config))


async def _import_and_plan(folder: Path) -> tuple[int, int, float, int]:
    """Statements, roles, the import's seconds, and the cells the imported policy's plan would change."""
    config = load_config(folder / "reconciler.yaml")
    start = time.perf_counter()
    async with open_target(config, None) as session:
        imported = await import_live(session, None, TODAY)
    seconds = time.perf_counter() - start
    (folder / "imported").mkdir()
    (folder / "imported" / "imported.yaml").write_text(imported.text)
    policy = load_policy([folder / "imported" / "imported.yaml"], TODAY)
    async with open_target(config, None) as session:
        plan = await make_plan(session, policy, TODAY, PlanOptions())
    changed = plan.summary.grant_cells + plan.summary.revoke_cells
    return imported.statements, imported.roles, seconds, changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rbac", help="Folder of matrices (default: $RECONCILER_RBAC_DATA).")
    args = parser.parse_args()
    folder = plan_bench.rbac_dir(args.rbac)
    if folder is None:
        sys.exit("give --rbac DIR or set RECONCILER_RBAC_DATA: the folder of `user permission` matrices")
    print(
        "| matrix | users | cells | statements | known minimum | statements / minimum | import s | mining s | "
        "plan changes after import |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in sorted(folder.glob("*.txt")):
        cells = plan_bench.rbac_cells(path)
        rows: dict[int, set[int]] = {}
        for u, p in cells:
            rows.setdefault(u, set()).add(p)
        start = time.perf_counter()
        mine_roles({u: frozenset(r) for u, r in rows.items()})
        mining = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as name:
            _tenant(Path(name), cells)
            statements, _, seconds, changed = asyncio.run(_import_and_plan(Path(name)))
        known = KNOWN_MINIMUM.get(path.stem)
        ratio = f"{statements / known:.3f}" if known else "-"
        print(
            f"| {path.stem} | {len(rows):,} | {len(cells):,} | {statements:,} | {known or '-'} | {ratio} | "
            f"{seconds:.1f} | {mining:.2f} | {changed} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
