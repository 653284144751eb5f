"""The expiry ledger: the expiry day reconciler set for each cell, since the API cannot read it back.

On disk it is a sorted text file, one line per user and expiry day (`user<TAB>day<TAB>target target …`), so
it diffs well and stays compact for a million cells; beside it an append-only log takes each finished
batch's effect as it happens (fsync'd), so a crash loses nothing. Loading replays the log over the file;
`compact` folds the log in atomically.

The API cannot read an expiry back, so a re-grant that changed a live cell's expiry cannot be confirmed: a
server that answers success without acting leaves the old day in place, and a read-back sees the cell either
way. Such a cell is *unconfirmed* (its day is written `?day`), and the next apply sends its expiry again; a
second send that succeeds confirms it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Set
from itertools import chain, product
from pathlib import Path
from typing import TypeVar, overload

from reconciler.vocabulary.cells import Cell, Target
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.files import append_text, read_regular_file, write_text_file

_Default = TypeVar("_Default")
_NONE: dict[Target, dt.date] = {}  # the row of a user with nothing recorded (never written to)


class Ledger(MutableMapping[Cell, dt.date]):
    """Each recorded cell's expiry day, kept per user: a steady state records every live cell (millions), and
    users granted alike (most of a tenant) share one table, so memory grows with the distinct rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log_path = path.with_name(path.name + ".log")
        # users whose recorded cells are the same share one row as loaded; a row is copied before it changes
        self._by_user: dict[str, dict[Target, dt.date]] = {}
        self._owned: set[str] = set()
        self.unconfirmed: set[Cell] = set()  # expiry changes of live cells sent once, not yet sent again
        self._load()

    # ---- mapping ----------------------------------------------------------------------------------------

    def __getitem__(self, cell: Cell) -> dt.date:
        return self._by_user[cell[0]][cell[1]]

    def __setitem__(self, cell: Cell, day: dt.date) -> None:
        self._own(cell[0])[cell[1]] = day

    def _own(self, user: str) -> dict[Target, dt.date]:
        """The user's row, made the user's alone before it changes."""
        if user not in self._owned:
            self._by_user[user] = dict(self._by_user.get(user, _NONE))
            self._owned.add(user)
        return self._by_user[user]

    @overload
    def get(self, cell: Cell, /) -> dt.date | None: ...

    @overload
    def get(self, cell: Cell, default: dt.date | _Default, /) -> dt.date | _Default: ...

    def get(self, cell: Cell, default: object = None, /) -> object:
        # the diff asks once per live cell (millions in a steady state): no exception per unrecorded cell
        return self._by_user.get(cell[0], _NONE).get(cell[1], default)

    def rows(self) -> Mapping[str, Mapping[Target, dt.date]]:
        """Each user's recorded targets and days, for loops over millions of cells (read only)."""
        return self._by_user

    def __contains__(self, cell: object) -> bool:
        if not isinstance(cell, tuple) or len(cell) != 2:
            return False
        return cell[1] in self._by_user.get(cell[0], _NONE)

    def __delitem__(self, cell: Cell) -> None:
        user, target = cell
        if target not in self._by_user.get(user, _NONE):
            raise KeyError(cell)
        row = self._own(user)
        del row[target]
        if not row:
            del self._by_user[user]
            self._owned.discard(user)
        self.unconfirmed.discard(cell)

    def __iter__(self) -> Iterator[Cell]:
        return chain.from_iterable(product((user,), row) for user, row in self._by_user.items())

    def __len__(self) -> int:
        return sum(map(len, self._by_user.values()))

    def forget_targets_except(self, kept: Set[Target]) -> bool:
        """Drop every cell on a target not in `kept`; whether any was dropped (then `compact` to save it)."""
        gone = [(user, target) for user, row in self._by_user.items() for target in row if target not in kept]
        for cell in gone:
            del self[cell]
        return bool(gone)

    # ---- persistence ------------------------------------------------------------------------------------

    def record(
        self, granted: Iterable[tuple[Cell, dt.date]], revoked: Iterable[Cell], regranted: Set[Cell] = frozenset()
    ) -> None:
        """Apply one batch's effect and append it durably to the log. `regranted` are the granted cells that
        were live already: their new expiry is unconfirmed, unless this was the second send (then confirmed) or
        it is the confirmed day sent again (a cell in two overlapping batches of one apply, or --allow-regrant)."""
        lines = []
        for cell, day in granted:
            confirmed = self.get(cell) == day and cell not in self.unconfirmed
            self[cell] = day
            sign = "+"
            if cell in regranted and not confirmed:  # re-sending a confirmed day changes nothing to confirm
                if cell in self.unconfirmed:
                    self.unconfirmed.discard(cell)
                else:
                    self.unconfirmed.add(cell)
                    sign = "?"
            else:
                self.unconfirmed.discard(cell)
            lines.append(f"{sign}\t{cell[0]}\t{day.isoformat()}\t{cell[1]}\n")
        for cell in revoked:
            self.pop(cell, None)
            self.unconfirmed.discard(cell)
            lines.append(f"-\t{cell[0]}\t\t{cell[1]}\n")
        if lines:
            append_text(self.log_path, "".join(lines))

    def compact(self) -> None:
        """Write the whole ledger atomically, then drop the log it now contains."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
        for user, row in self._by_user.items():
            for target, day in row.items():
                mark = "?" if (user, target) in self.unconfirmed else ""
                grouped[(user, mark + day.isoformat())].append(str(target))
        text = "".join(
            f"{user}\t{day}\t{' '.join(sorted(targets))}\n" for (user, day), targets in sorted(grouped.items())
        )
        write_text_file(self.path, text)
        self.log_path.unlink(missing_ok=True)

    def _load(self) -> None:
        if self.path.exists():
            self._load_file(read_regular_file(self.path, "expiry ledger").splitlines())
        if self.log_path.exists():
            for line in read_regular_file(self.log_path, "expiry ledger log").splitlines():
                parts = line.split("\t")
                if len(parts) != 4:
                    continue  # a torn last line from a crash mid-write: its batch is not journaled either
                sign, user, day, text = parts
                try:
                    cell = (user, Target.parse(text))
                    if sign in ("+", "?"):
                        self[cell] = dt.date.fromisoformat(day)
                        (self.unconfirmed.add if sign == "?" else self.unconfirmed.discard)(cell)
                    elif sign == "-":
                        self.pop(cell, None)
                        self.unconfirmed.discard(cell)
                except ValueError:
                    continue

    def _load_file(self, lines: list[str]) -> None:
        """The compacted file: a user's lines are consecutive (sorted), and users whose lines read the same share
        one row, built once (millions of cells name a few thousand targets: each text is parsed once too)."""
        named: dict[str, Target] = {}
        rows: dict[tuple[tuple[str, str], ...], dict[Target, dt.date]] = {}

        def take(user: str, parts: list[tuple[int, str, str]]) -> None:
            key = tuple((day, targets) for _, day, targets in parts)
            row = rows.get(key)
            if row is None:
                row = rows[key] = {}
                for number, day, targets in parts:
                    expiry = self._day(day, number)
                    for text in targets.split():
                        if text not in named:
                            named[text] = self._target(text, number)
                        row[named[text]] = expiry
            if user in self._by_user:  # lines of one user apart (an edited file): merged, not shared
                self._own(user).update(row)
            else:
                self._by_user[user] = row
            self.unconfirmed.update(
                (user, named[text]) for _, day, targets in parts if day.startswith("?") for text in targets.split()
            )

        user, parts = "", list[tuple[int, str, str]]()
        for number, line in enumerate(lines, 1):
            fields = line.split("\t")
            if len(fields) != 3 or not fields[0]:
                raise self._malformed(number)
            if fields[0] != user and parts:
                take(user, parts)
                parts = []
            user = fields[0]
            parts.append((number, fields[1], fields[2]))
        if parts:
            take(user, parts)

    def _day(self, text: str, number: int) -> dt.date:
        try:
            return dt.date.fromisoformat(text.removeprefix("?"))
        except ValueError:
            raise self._malformed(number) from None

    def _target(self, text: str, number: int) -> Target:
        try:
            return Target.parse(text)
        except ValueError:
            raise self._malformed(number) from None

    def _malformed(self, number: int) -> ReconcilerError:
        return ReconcilerError(
            Problem(f"{self.path}:{number}: malformed ledger line", hint="restore it from version control")
        )
