"""Building blocks every part shares: the strict model base, the one way to write a UTC timestamp, the one way
to run a command's asynchronous work, and building bulk data without the cyclic collector."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import re
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from deepdiff import DeepDiff
from pydantic import BaseModel, ConfigDict

_PATH_PART = re.compile(r"\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")
_CHANGE_SIGNS = {"dictionary_item_added": "+", "dictionary_item_removed": "-", "iterable_item_added": "+"}
_CHANGE_SIGNS["iterable_item_removed"] = "-"


class StrictModel(BaseModel):
    """A model of user-written or saved input: an unknown key is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class FrozenStrictModel(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def utc_timestamp(precise: bool = False) -> str:
    """Now in UTC as ISO 8601 with a Z, to the second (or microsecond), the form Alibaba Cloud also signs."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if precise else "%Y-%m-%dT%H:%M:%SZ")


Result = TypeVar("Result")


def run(work: Coroutine[Any, Any, Result]) -> Result:
    """`asyncio.run`, without the main task holding the result when the run ends.

    On its way out asyncio.run puts back the SIGINT handler, and CPython's `signal.signal` formats repr() of
    the handler it replaces: a partial bound to the main task, result included. For a plan of 3 M cells that
    repr cost a second of every command.
    """
    kept: list[Result] = []

    async def keep() -> None:
        kept.append(await work)

    asyncio.run(keep())
    return kept[0]


@contextlib.contextmanager
def bulk_data() -> Iterator[None]:
    """Build long-lived data of millions of small objects (desired cells, changes, batches) without the cyclic
    collector.

    There is nothing cyclic in it for the collector to find, yet its full passes, each over everything built so
    far, cost a third of a plan's time at 0.75 M cells. What is built is frozen on the way out (moved where the
    collector never looks again); it is freed by reference counting as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def plural(number: int, noun: str, nouns: str | None = None) -> str:
    """`1 grant`, `2 grants`, `1,000 grants`: a count and its noun, in the number's grammatical number."""
    return f"{number:,} {noun if number == 1 else nouns or noun + 's'}"


def changed_paths(before: Any, after: Any) -> list[tuple[str, str]]:
    """Where two JSON-like documents differ: (sign, dotted path) pairs, `+` added, `-` removed, `~` changed,
    in path order. Lists are compared as sets (their order carries no meaning in our files); an item added to
    or removed from one is named by its value (`groups.sales.members: ivan`), not by a position."""
    found: set[tuple[str, str]] = set()
    diff = DeepDiff(before, after, ignore_order=True, cutoff_intersection_for_pairs=0, view="tree")
    for kind, paths in diff.items():
        sign = _CHANGE_SIGNS.get(kind, "~")
        for item in paths:
            path = _dotted(item.path())
            if kind.startswith("iterable_item_"):
                value = item.t2 if sign == "+" else item.t1
                path = f"{path.rsplit('[', 1)[0]}: {value}"
            found.add((sign, path))
    return sorted(found, key=lambda change: (change[1], change[0]))


def _dotted(path: str) -> str:
    """DeepDiff's `root['a']['b'][0]` as `a.b[0]`."""
    parts = [f"[{index}]" if index else f".{key}" for key, index in _PATH_PART.findall(path)]
    return "".join(parts).lstrip(".") or "(the whole document)"
