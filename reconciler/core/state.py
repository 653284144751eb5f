"""What a target's state remembers between applies besides the expiry ledger: the targets it managed.

Like Terraform's state, this is how a target deleted from `resources` is told apart from one never managed:
the record lists what the policy managed at the last apply, and a target that leaves it without being
`released:` has its grants revoked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path

from reconciler.vocabulary.base import plural, utc_timestamp
from reconciler.vocabulary.cells import Cell, Target
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.files import MAX_SMALL_FILE_BYTES, read_json_file, write_text_file

RECORD_FORMAT = 1
MANAGED_RECORD = "managed-targets.json"
LEDGER = "expiry-ledger.tsv"


@dataclass(frozen=True)
class ManagedRecord:
    """The targets managed at the last apply; `found` is False when no apply has written one yet."""

    targets: frozenset[Target]
    found: bool
    # targets the expiry ledger holds grants on that the record lacks: an edited record, kept managed
    lacking: frozenset[Target] = frozenset()

    def including(self, ledger_cells: Iterable[Cell]) -> ManagedRecord:
        """The record with every target the expiry ledger holds a grant on: reconciler granted those, so they
        were managed, and a record that lost one (edited by hand) must not let its grants stay unseen."""
        held = frozenset(map(itemgetter(1), ledger_cells))
        lacking = held - self.targets if self.found else frozenset()
        return replace(self, targets=self.targets | held, lacking=lacking)

    def note(self) -> str | None:
        """What a plan must say when the record is missing (removed targets then cannot be detected), or lacks
        targets the ledger shows were managed."""
        if self.lacking:
            listed = ", ".join(sorted(map(str, self.lacking))[:5]) + (", …" if len(self.lacking) > 5 else "")
            return (
                f"the managed-target record ({MANAGED_RECORD}) lacks {plural(len(self.lacking), 'target')} the "
                f"expiry ledger holds grants on ({listed}): they stay managed; restore the record from the state's "
                "history"
            )
        if self.found:
            return None
        return (
            "no record of the targets managed at the last apply yet (the next apply writes it): a target "
            "deleted from resources before then keeps its grants"
        )


def read_state(state_dir: Path) -> ManagedRecord:
    """The managed-target record, after checking the state is whole: a target that has applied before (it has
    a record) must have its expiry ledger, or every live cell would silently count as unrecorded."""
    record = read_managed(state_dir)
    if record.found and not (state_dir / LEDGER).exists():
        raise ReconcilerError(
            Problem(
                f"{state_dir / LEDGER}: the expiry ledger is missing, but this target has applied before "
                f"({MANAGED_RECORD} is there)",
                hint="restore the state from its backup or branch history; it is not safe to plan without it",
            )
        )
    return record


def read_managed(state_dir: Path) -> ManagedRecord:
    path = state_dir / MANAGED_RECORD
    if not path.exists():
        return ManagedRecord(frozenset(), found=False)
    hint = "restore it from its backup or version control; without it removed targets cannot be found"
    data = read_json_file(path, "managed-target record", hint=hint)
    try:
        if data.get("format_version") != RECORD_FORMAT:
            raise ValueError(f"unsupported format_version {data.get('format_version')!r}")
        targets = frozenset(Target.parse(item) for item in data["targets"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReconcilerError(
            Problem(
                f"{path}: unreadable managed-target record: {exc}",
                hint="restore it from its backup or version control; without it removed targets cannot be found",
            )
        ) from None
    return ManagedRecord(targets, found=True)


def write_managed(state_dir: Path, targets: frozenset[Target]) -> None:
    record = {
        "format_version": RECORD_FORMAT,
        "updated_at": utc_timestamp(),
        "targets": sorted(map(str, targets)),
    }
    write_text_file(state_dir / MANAGED_RECORD, json.dumps(record, indent=1) + "\n")


APPLIED_COMMIT = "last-apply.json"
_COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


@dataclass(frozen=True)
class AppliedCommit:
    """The policy repository's commit that the last complete apply of a target made live.

    An incremental apply plans from it to the new commit, reading only the users the change touches. It is
    written only after an apply that left every user as that commit's policy says, and taken away before any
    call of an apply of anything else, so that a run that dies part-way leaves no record to trust."""

    commit: str
    target: str


def read_applied(state_dir: Path, target: str) -> AppliedCommit | str:
    """The record of the last applied commit, or why there is none that can be used (one line)."""
    path = state_dir / APPLIED_COMMIT
    if not path.exists():
        return f"no record of the commit the last apply made live ({APPLIED_COMMIT})"
    try:
        data = read_json_file(path, "last-apply record", MAX_SMALL_FILE_BYTES)
        if data.get("format_version") != RECORD_FORMAT:
            raise ValueError(f"unsupported format_version {data.get('format_version')!r}")
        record = AppliedCommit(str(data["commit"]), str(data["target"]))
    except ReconcilerError as exc:
        return f"the last-apply record is unreadable ({exc.problems[0].message})"
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"the last-apply record ({path}) is unreadable: {exc}"
    if not _COMMIT.fullmatch(record.commit):
        return f"the last-apply record ({path}) names no commit id"
    if record.target != target:
        return f"the last-apply record is of target '{record.target}', not '{target}'"
    return record


def write_applied(state_dir: Path, record: AppliedCommit) -> None:
    data = {
        "format_version": RECORD_FORMAT,
        "updated_at": utc_timestamp(),
        "commit": record.commit,
        "target": record.target,
    }
    write_text_file(state_dir / APPLIED_COMMIT, json.dumps(data, indent=1) + "\n")


def forget_applied(state_dir: Path) -> None:
    (state_dir / APPLIED_COMMIT).unlink(missing_ok=True)
