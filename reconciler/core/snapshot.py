"""Live grants, read one user at a time, as a serialisable snapshot."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain, product
from pathlib import Path
from typing import Any

from reconciler.core.ports import AccessService
from reconciler.vocabulary.base import bulk_data, utc_timestamp
from reconciler.vocabulary.cells import Cell, Target, shared_rows
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.files import read_json_file

SNAPSHOT_FORMAT = 1


DIGEST_SLICE = 1000  # users hashed per update
_ascii_string: Callable[[str], str] = json.encoder.encode_basestring_ascii
_NOTHING: frozenset[Target] = frozenset()  # not made anew per lookup: the diff looks up millions of cells


@dataclass(frozen=True)
class Snapshot:
    """Every read user's live targets. A user absent from `grants` was not read."""

    grants: dict[str, frozenset[Target]]
    taken_at: str = ""

    def has(self, cell: Cell) -> bool:
        """Whether `cell` is live (False for a user that was not read)."""
        return cell[1] in self.grants.get(cell[0], _NOTHING)

    def cells(self) -> Iterable[Cell]:
        # millions of live cells in a steady state: made at C speed
        return chain.from_iterable(product((user,), targets) for user, targets in self.grants.items())

    def digest(self, users: Iterable[str] | None = None) -> str:
        """SHA-256 of the compact JSON of {user: sorted targets} over the chosen users, keys sorted.

        Hashed a user at a time rather than built whole: the JSON of 3 M live cells is 100 MB.
        """
        hashed = hashlib.sha256(b"{")
        compact = json.JSONEncoder(separators=(",", ":")).encode
        chosen = sorted(self.grants if users is None else set(users))
        encoded: dict[int, str] = {}  # by set object: users with the same targets share one (see shared_rows)
        for start in range(0, len(chosen), DIGEST_SLICE):
            entries = []
            for user in chosen[start : start + DIGEST_SLICE]:
                targets = self.grants.get(user, _NOTHING)
                text = encoded.get(id(targets))
                if text is None:
                    text = encoded[id(targets)] = compact(sorted(map(str, targets))) if targets else "[]"
                entries.append(f"{_ascii_string(user)}:{text}")
            hashed.update((("," if start else "") + ",".join(entries)).encode())
        hashed.update(b"}")
        return "sha256:" + hashed.hexdigest()

    def to_json(self) -> str:
        data = {
            "format_version": SNAPSHOT_FORMAT,
            "taken_at": self.taken_at,
            "users": {u: sorted(map(str, targets)) for u, targets in sorted(self.grants.items())},
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> Snapshot:
        with bulk_data():
            return cls._parse(path, read_json_file(path, "snapshot"))

    @classmethod
    def _parse(cls, path: Path, data: Any) -> Snapshot:
        try:
            if data.get("format_version") != SNAPSHOT_FORMAT:
                raise ValueError(f"unsupported format_version {data.get('format_version')!r}")
            users = data["users"]
            # a snapshot names a few thousand targets millions of times: parse each once, share the objects
            parsed = {text: Target.parse(text) for text in set(chain.from_iterable(users.values()))}
            grants = shared_rows((u, frozenset(map(parsed.__getitem__, ts))) for u, ts in users.items())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReconcilerError(
                Problem(
                    f"{path}: not a reconciler snapshot: {exc}",
                    hint="write one with 'reconciler refresh --out'",
                )
            ) from None
        return cls(grants, str(data.get("taken_at", "")))


async def refresh(
    service: AccessService, user_ids: Iterable[str], on_user: Callable[[], None] | None = None
) -> Snapshot:
    """One read per user, concurrently under the service's limits."""

    async def read(user: str) -> tuple[str, frozenset[Target]]:
        targets = await service.user_targets(user)
        if on_user:
            on_user()
        return user, targets

    pairs = await asyncio.gather(*(read(u) for u in sorted(set(user_ids))))
    taken_at = utc_timestamp()
    return Snapshot(shared_rows(pairs), taken_at)
