"""The shared building blocks: running a command's asynchronous work, and bulk data without the collector."""

from __future__ import annotations

import gc
import signal

import pytest

from reconciler.vocabulary.base import bulk_data, run


def test_run_returns_the_result_and_lets_errors_through() -> None:
    async def answer() -> list[int]:
        return [42]

    async def failing() -> None:
        raise ValueError("boom")

    assert run(answer()) == [42]
    with pytest.raises(ValueError, match="boom"):
        run(failing())


def test_run_leaves_no_result_for_the_sigint_restore_to_format() -> None:
    """asyncio.run puts the SIGINT handler back at the end and repr() of the old handler (bound to the main
    task) would format the whole result: a big plan cost a second. The main task must not hold it."""
    formatted: list[str] = []

    class Loud:
        def __repr__(self) -> str:
            formatted.append("repr")
            return "Loud()"

    async def produce() -> Loud:
        return Loud()

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("asyncio.run installs its SIGINT handler only over the default one")
    run(produce())
    assert formatted == []


def test_bulk_data_pauses_the_collector_and_freezes_what_was_built() -> None:
    assert gc.isenabled()
    frozen_before = gc.get_freeze_count()
    with bulk_data():
        assert not gc.isenabled()
        built = [(str(i), (i,)) for i in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(built)
    gc.unfreeze()


def test_bulk_data_nested_or_with_the_collector_off_restores_what_it_found() -> None:
    with bulk_data():
        with bulk_data():
            pass
        assert not gc.isenabled()  # the inner block does not switch the collector back on for the outer
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(RuntimeError), bulk_data():
            raise RuntimeError("stage failed")
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
