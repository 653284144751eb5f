"""The expiry ledger: the expiry day reconciler set for each cell, since the API cannot read it back.

On disk it is a sorted text file, one line per user and expiry day (`user<TAB>day<TAB>target target …`), so
it diffs well and stays compact for a million cells; beside it an append-only log takes each finished
batch's effect as it happens (fsync'd), so a crash loses nothing. Loading replays the log over the file;
`compact` folds the log in atomically.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, MutableMapping, Set
from pathlib import Path
from typing import TypeVar, overload

from reconciler.cells import Cell, Target
from reconciler.errors import Problem, ReconcilerError
from reconciler.files import append_text, read_regular_file, write_text_file

_Default = TypeVar("_Default")


class Ledger(MutableMapping[Cell, dt.date]):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.log_path = path.with_name(path.name + ".log")
        self._cells: dict[Cell, dt.date] = {}
        self._load()

    # ---- mapping ----------------------------------------------------------------------------------------

    def __getitem__(self, cell: Cell) -> dt.date:
        return self._cells[cell]

    def __setitem__(self, cell: Cell, day: dt.date) -> None:
        self._cells[cell] = day

    @overload
    def get(self, cell: Cell, /) -> dt.date | None: ...

    @overload
    def get(self, cell: Cell, default: dt.date | _Default, /) -> dt.date | _Default: ...

    def get(self, cell: Cell, default: object = None, /) -> object:
        # the diff asks once per live cell (millions in a steady state): no exception per unrecorded cell
        return self._cells.get(cell, default)

    def __contains__(self, cell: object) -> bool:
        return cell in self._cells

    def __delitem__(self, cell: Cell) -> None:
        del self._cells[cell]

    def __iter__(self) -> Iterator[Cell]:
        return iter(self._cells)

    def __len__(self) -> int:
        return len(self._cells)

    def forget_targets_except(self, kept: Set[Target]) -> bool:
        """Drop every cell on a target not in `kept`; whether any was dropped (then `compact` to save it)."""
        gone = [cell for cell in self._cells if cell[1] not in kept]
        for cell in gone:
            del self._cells[cell]
        return bool(gone)

    # ---- persistence ------------------------------------------------------------------------------------

    def record(self, granted: Iterable[tuple[Cell, dt.date]], revoked: Iterable[Cell]) -> None:
        """Apply one batch's effect and append it durably to the log."""
        lines = []
        for cell, day in granted:
            self._cells[cell] = day
            lines.append(f"+\t{cell[0]}\t{day.isoformat()}\t{cell[1]}\n")
        for cell in revoked:
            self._cells.pop(cell, None)
            lines.append(f"-\t{cell[0]}\t\t{cell[1]}\n")
        if lines:
            append_text(self.log_path, "".join(lines))

    def compact(self) -> None:
        """Write the whole ledger atomically, then drop the log it now contains."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
        for (user, target), day in self._cells.items():
            grouped[(user, day.isoformat())].append(str(target))
        text = "".join(
            f"{user}\t{day}\t{' '.join(sorted(targets))}\n" for (user, day), targets in sorted(grouped.items())
        )
        write_text_file(self.path, text)
        self.log_path.unlink(missing_ok=True)

    def _load(self) -> None:
        if self.path.exists():
            for number, line in enumerate(read_regular_file(self.path, "expiry ledger").splitlines(), 1):
                try:
                    user, day, targets = line.split("\t")
                    expiry = dt.date.fromisoformat(day)
                    for target in targets.split():
                        self._cells[(user, Target.parse(target))] = expiry
                except ValueError:
                    raise ReconcilerError(
                        Problem(
                            f"{self.path}:{number}: malformed ledger line",
                            hint="restore it from version control",
                        )
                    ) from None
        if self.log_path.exists():
            for line in read_regular_file(self.log_path, "expiry ledger log").splitlines():
                parts = line.split("\t")
                if len(parts) != 4:
                    continue  # a torn last line from a crash mid-write: its batch is not journaled either
                sign, user, day, target = parts
                try:
                    cell = (user, Target.parse(target))
                    if sign == "+":
                        self._cells[cell] = dt.date.fromisoformat(day)
                    elif sign == "-":
                        self._cells.pop(cell, None)
                except ValueError:
                    continue
