"""The shared vocabulary (targets, timestamps, strict models) and the product's file handling."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.vocabulary import bitsets
from reconciler.vocabulary.base import StrictModel, utc_timestamp
from reconciler.vocabulary.cells import CellRows, Target, shared_rows, users_of
from reconciler.vocabulary.errors import ReconcilerError
from reconciler.vocabulary.files import read_regular_file, write_text_file


def test_targets_round_trip_and_reject_garbage() -> None:
    for text in ("llm_cube:c-1", "theme:t:with:colons", "dataset:ds-9"):
        assert str(Target.parse(text)) == text
    for bad in ("cube:c", "llm_cube:", "theme", ""):
        with pytest.raises(ValueError, match="not a target"):
            Target.parse(bad)


def test_timestamps_are_utc_with_a_z() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_timestamp())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc_timestamp(precise=True))


def test_strict_models_refuse_unknown_keys() -> None:
    class Example(StrictModel):
        name: str

    with pytest.raises(ValidationError, match="extra"):
        Example.model_validate({"name": "x", "nmae": "y"})


def test_read_refuses_what_is_not_a_regular_utf8_file_of_bounded_size(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "big").write_text("x" * 2048)
    cases = {
        fifo: "not a regular file",
        tmp_path: "not a regular file",
        loop: "cannot read plan",
        tmp_path / "missing": "No such file",
        tmp_path / "binary": "not UTF-8 text",
    }
    for path, message in cases.items():
        with pytest.raises(ReconcilerError, match=message):
            read_regular_file(path, "plan")
    with pytest.raises(ReconcilerError, match="larger than"):
        read_regular_file(tmp_path / "big", "plan", limit=1024)
    assert read_regular_file(tmp_path / "big", "plan") == "x" * 2048


def test_write_is_atomic_and_fails_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.txt"
    write_text_file(target, "one")
    write_text_file(target, "two")
    assert target.read_text() == "two" and [p.name for p in target.parent.iterdir()] == ["report.txt"]
    with pytest.raises(ReconcilerError, match="it is a folder"):
        write_text_file(tmp_path / "out", "x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() != 0:  # root writes anywhere
            with pytest.raises(ReconcilerError, match="cannot write"):
                write_text_file(locked / "x.txt", "x")
    finally:
        locked.chmod(0o700)


def test_counts_take_the_number_of_their_noun() -> None:
    from reconciler.vocabulary.base import plural

    assert plural(1, "grant") == "1 grant" and plural(0, "grant") == "0 grants"
    assert plural(12_345, "user") == "12,345 users" and plural(2, "batch", "batches") == "2 batches"


def test_bitsets_round_trip_a_set_of_small_integers() -> None:
    assert bitsets.mask([0, 3, 64]) == 1 | 8 | (1 << 64)
    assert bitsets.members(bitsets.mask([64, 3, 0, 3])) == [0, 3, 64]
    assert bitsets.members(0) == [] and bitsets.mask([]) == 0
    # few items and many, sparse and dense (listed three ways), give the same increasing list
    sparse, dense = [0, *range(40, 80), 10_000], [*range(1, 3000, 2), 4095]
    for items in ([5, 17, 9000], list(range(0, 3000, 7)), sparse, dense, list(range(500)), list(range(17))):
        assert bitsets.members(bitsets.mask(items)) == sorted(items)


def test_bitsets_transpose_rows_into_columns() -> None:
    rows = {0: bitsets.mask([1, 2]), 3: bitsets.mask([2])}
    assert bitsets.transposed(rows) == {1: bitsets.mask([0]), 2: bitsets.mask([0, 3])}
    assert bitsets.transposed(bitsets.transposed(rows)) == rows


def test_cell_rows_are_a_set_of_cells_held_per_user() -> None:
    a, b = Target("theme", "a"), Target("llm_cube", "b")
    rows = shared_rows([("u1", frozenset({a, b})), ("u2", frozenset({b, a})), ("u3", frozenset({a}))])
    assert rows["u1"] is rows["u2"]
    cells = CellRows(rows)
    plain = {("u1", a), ("u1", b), ("u2", a), ("u2", b), ("u3", a)}
    assert cells == plain and plain == cells and len(cells) == 5
    assert ("u3", b) not in cells and ("u9", a) not in cells and "u1" not in cells
    assert cells - {("u1", a)} == plain - {("u1", a)} and isinstance(cells | {("u4", a)}, frozenset)
    assert users_of(cells) == {"u1", "u2", "u3"} == users_of(plain)
