"""Building blocks every part shares: the strict model base, the one way to write a UTC timestamp, the one way
to run a command's asynchronous work, and building bulk data without the cyclic collector."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict


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
