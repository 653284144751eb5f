"""Generated user-permission matrices of many shapes, for measuring the planner where nobody tuned it.

Run: python -m benchmarks.shapes DIR [--count 64] [--first 0]
Writes one `user permission` matrix (`*.txt`, one pair per line, as the HP Labs matrices come) per seed from
--first to --first + --count - 1 into DIR, for `versus_bench REV --whole DIR`. The seed picks the family in
turn and everything else at random, so the same seeds always give the same files:

- nested: users hold a prefix of one ranking of the targets plus a few others (healthcare's shape);
- roles: users hold one to five of a few dozen random roles, plus noise;
- uniform: every cell present with one probability (sparse to nearly full);
- blocks: a block diagonal of dense blocks;
- tall and wide: thousands of users on a few dozen targets, and the transpose;
- dense and dense-wide: 60-97% of the cells present, and 30-90% transposed.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path

Cells = set[tuple[int, int]]


def nested(rng: random.Random) -> Cells:
    users, targets = rng.randint(20, 120), rng.randint(20, 90)
    cells: Cells = set()
    for user in range(users):
        held = rng.choice([rng.randint(1, targets), int(targets * rng.choice([0.45, 0.5, 0.7, 0.98]))])
        cells.update((user, target) for target in range(max(1, held)))
        cells.update((user, target) for target in rng.sample(range(targets), rng.randint(0, 4)))
    return cells


def _roles(rng: random.Random, users: int, targets: int, roles: int, per_user: int, noise: int) -> Cells:
    defined = [
        rng.sample(range(targets), rng.randint(1, max(1, targets // rng.choice([2, 4, 8, 16])))) for _ in range(roles)
    ]
    cells: Cells = set()
    for user in range(users):
        for role in rng.sample(defined, min(roles, rng.randint(1, per_user))):
            cells.update((user, target) for target in role)
        cells.update((user, rng.randrange(targets)) for _ in range(noise))
    return cells


def roles(rng: random.Random) -> Cells:
    return _roles(
        rng, rng.randint(50, 3000), rng.randint(20, 600), rng.randint(3, 60), rng.randint(1, 5), rng.randint(0, 3)
    )


def _uniform(rng: random.Random, users: int, targets: int, density: float) -> Cells:
    return {(user, target) for user in range(users) for target in range(targets) if rng.random() < density}


def uniform(rng: random.Random) -> Cells:
    return _uniform(rng, rng.randint(10, 200), rng.randint(10, 200), rng.choice([0.05, 0.2, 0.5, 0.8, 0.95]))


def blocks(rng: random.Random) -> Cells:
    users, targets, count = rng.randint(30, 1500), rng.randint(30, 400), rng.randint(2, 20)
    user_cuts = [0, *sorted(rng.sample(range(1, users), count - 1)), users]
    target_cuts = [0, *sorted(rng.sample(range(1, targets), count - 1)), targets]
    cells: Cells = set()
    for block in range(count):
        for user in range(user_cuts[block], user_cuts[block + 1]):
            for target in range(target_cuts[block], target_cuts[block + 1]):
                if rng.random() < 0.95:
                    cells.add((user, target))
    return cells


def tall(rng: random.Random) -> Cells:
    return _roles(rng, rng.randint(2000, 8000), rng.randint(5, 40), rng.randint(2, 12), 3, 1)


def wide(rng: random.Random) -> Cells:
    return {(t, u) for u, t in _roles(rng, rng.randint(2000, 6000), rng.randint(5, 40), rng.randint(2, 12), 3, 1)}


def dense(rng: random.Random) -> Cells:
    return _uniform(rng, rng.randint(50, 400), rng.randint(50, 300), rng.uniform(0.6, 0.97))


def dense_wide(rng: random.Random) -> Cells:
    return {(t, u) for u, t in _uniform(rng, rng.randint(20, 300), rng.randint(50, 500), rng.uniform(0.3, 0.9))}


FAMILIES: list[Callable[[random.Random], Cells]] = [nested, roles, uniform, blocks, tall, wide, dense, dense_wide]


def matrix(seed: int) -> tuple[str, Cells]:
    """The matrix of one seed, and its file name's stem: its family and seed."""
    family = FAMILIES[seed % len(FAMILIES)]
    return f"{family.__name__.replace('_', '-')}_{seed:04d}", family(random.Random(seed))


def write(folder: Path, seeds: range) -> list[Path]:
    """One matrix file per seed (none for an empty matrix), in the HP Labs format."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for seed in seeds:
        name, cells = matrix(seed)
        if cells:
            path = folder / f"{name}.txt"
            path.write_text("".join(f"{user} {permission}\n" for user, permission in sorted(cells)))
            written.append(path)
    return written


def _at_least_zero(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="Where to write the matrices (made if missing).")
    parser.add_argument("--count", type=_at_least_zero, default=64, help="How many seeds, one matrix each.")
    parser.add_argument("--first", type=_at_least_zero, default=0, help="The first seed.")
    args = parser.parse_args()
    if args.folder.exists() and not args.folder.is_dir():
        sys.exit(f"error: {args.folder}: not a folder (give a folder to write the matrices into)")
    written = write(args.folder, range(args.first, args.first + args.count))
    print(f"{len(written)} matrices written to {args.folder}")


if __name__ == "__main__":
    main()
