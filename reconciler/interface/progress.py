"""Progress for long runs: a rich bar on a terminal, plain periodic lines in CI logs."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

PLAIN_INTERVAL_SECONDS = 10.0


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:.1f}/s")


@contextlib.contextmanager
def progress(total: int, label: str, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yield a `tick` to call once per finished unit of work."""
    if not enabled or total == 0:
        yield lambda: None
        return
    if sys.stderr.isatty():
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda: bar.advance(task)
        return
    state = {"done": 0, "last": time.monotonic(), "start": time.monotonic(), "printed": 0}

    def tick() -> None:
        state["done"] += 1
        now = time.monotonic()
        # quick work stays quiet; long work reports every interval and then its end
        finished_long_work = state["done"] == total and state["printed"]
        if now - state["last"] >= PLAIN_INTERVAL_SECONDS or finished_long_work:
            rate = state["done"] / max(now - state["start"], 1e-9)
            eta = (total - state["done"]) / rate if rate else 0.0
            print(f"{label}: {int(state['done'])}/{total} ({rate:.1f}/s, eta {eta:.0f}s)", file=sys.stderr)
            state["last"] = now
            state["printed"] += 1

    yield tick
