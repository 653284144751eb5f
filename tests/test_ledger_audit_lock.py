"""The expiry ledger, the audit log and the target lock: durable, crash-tolerant files."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.audit import AuditLog
from reconciler.core.ledger import Ledger
from reconciler.core.lock import TargetLock
from reconciler.vocabulary.cells import Target
from reconciler.vocabulary.errors import ReconcilerError

A, B = Target("llm_cube", "a"), Target("theme", "b")
DAY = dt.date(2099, 12, 31)


def test_ledger_survives_a_crash_before_compaction(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.record([(("u1", A), DAY), (("u1", B), DAY), (("u2", A), dt.date(2027, 1, 1))], [])
    ledger.record([], [("u1", B)])
    with (tmp_path / "ledger.tsv.log").open("a") as log:
        log.write("+\tu9\t2099-")  # torn last line from a crash mid-write
    reopened = Ledger(tmp_path / "ledger.tsv")
    assert dict(reopened) == {("u1", A): DAY, ("u2", A): dt.date(2027, 1, 1)}


def test_ledger_compacts_to_a_sorted_diff_friendly_file(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    ledger.record([(("u2", A), DAY), (("u1", B), DAY), (("u1", A), DAY)], [])
    ledger.compact()
    assert (tmp_path / "ledger.tsv").read_text() == "u1\t2099-12-31\tllm_cube:a theme:b\nu2\t2099-12-31\tllm_cube:a\n"
    assert not (tmp_path / "ledger.tsv.log").exists()
    assert dict(Ledger(tmp_path / "ledger.tsv")) == dict(ledger)


def test_malformed_ledger_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "ledger.tsv").write_text("u1\t2099-12-31\tllm_cube:a\nbroken line\n")
    with pytest.raises(ReconcilerError, match=r"ledger.tsv:2: malformed ledger line"):
        Ledger(tmp_path / "ledger.tsv")


def test_audit_log_drops_secret_parameters(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    audit("SmartqAuthorize", {"UserIds": "u1", "Signature": "sig", "SecurityToken": "tok"}, "RID", "ok")
    record = json.loads((tmp_path / "audit.jsonl").read_text())
    assert record["params"] == {"UserIds": "u1"} and record["request_id"] == "RID" and record["outcome"] == "ok"


def test_lock_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "apply.lock"
    with (
        TargetLock(path, "demo"),
        pytest.raises(ReconcilerError, match=r"target 'demo' is locked by .* \(pid"),
        TargetLock(path, "demo"),
    ):
        pass
    assert not path.exists()


def test_a_dead_holder_on_this_host_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "apply.lock"
    path.write_text(json.dumps({"owner": f"x@{socket.gethostname()}", "pid": 2**22 + 7, "since": "t"}))
    with TargetLock(path, "demo"):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_a_holder_elsewhere_needs_break_lock(tmp_path: Path) -> None:
    path = tmp_path / "apply.lock"
    path.write_text(json.dumps({"owner": "ci@runner-7", "pid": 1, "since": "2026-11-23T00:00:00Z"}))
    with pytest.raises(ReconcilerError, match="--break-lock"), TargetLock(path, "demo"):
        pass
    with TargetLock(path, "demo", break_stale=True):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_ledger_lookups_answer_without_raising_for_unrecorded_cells(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    cell = ("u1", Target("llm_cube", "a"))
    ledger[cell] = dt.date(2030, 1, 1)
    assert ledger.get(cell) == dt.date(2030, 1, 1) and cell in ledger
    missing = ("u2", Target("llm_cube", "a"))
    assert ledger.get(missing) is None and ledger.get(missing, dt.date(2000, 1, 1)) == dt.date(2000, 1, 1)
    assert missing not in ledger and dict(ledger) == {cell: dt.date(2030, 1, 1)}


def test_an_expiry_sent_to_a_live_cell_stays_unconfirmed_until_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "expiry-ledger.tsv"
    ledger = Ledger(path)
    live, fresh = ("alice", Target("llm_cube", "c1")), ("bob", Target("llm_cube", "c1"))
    ledger.record([(live, dt.date(2027, 1, 1)), (fresh, dt.date(2027, 1, 1))], [], regranted={live})
    assert ledger.unconfirmed == {live}
    assert Ledger(path).unconfirmed == {live}  # from the log, as after a crash
    ledger.compact()
    assert "alice\t?2027-01-01\tllm_cube:c1" in path.read_text()
    reread = Ledger(path)
    assert reread.unconfirmed == {live} and reread[live] == dt.date(2027, 1, 1)
    reread.record([(live, dt.date(2027, 1, 1))], [], regranted={live})  # the second send confirms it
    assert not reread.unconfirmed and not Ledger(path).unconfirmed
    # the confirmed day sent again (the cell in a second overlapping batch of the same apply) stays confirmed
    reread.record([(live, dt.date(2027, 1, 1))], [], regranted={live})
    assert not reread.unconfirmed and not Ledger(path).unconfirmed
    reread.record([(fresh, dt.date(2027, 2, 1))], [], regranted={fresh})
    reread.record([], [fresh])  # a revoke forgets it
    assert not Ledger(path).unconfirmed


def test_the_ledger_is_a_mapping_of_cells_kept_per_user(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.tsv")
    a, b, c = (Target("llm_cube", name) for name in "abc")
    day = dt.date(2030, 1, 1)
    for cell in (("u1", a), ("u1", b), ("u2", c)):
        ledger[cell] = day
    assert len(ledger) == 3 and sorted(ledger) == [("u1", a), ("u1", b), ("u2", c)]
    assert ledger.rows() == {"u1": {a: day, b: day}, "u2": {c: day}}
    del ledger[("u2", c)]
    assert ledger.rows() == {"u1": {a: day, b: day}}  # a user with nothing left has no row
    with pytest.raises(KeyError):
        del ledger[("u2", c)]
    assert "u1" not in ledger and ("u1",) not in ledger and None not in ledger  # not cells: never an error
    assert ledger.forget_targets_except({b}) and dict(ledger) == {("u1", b): day}
    ledger.compact()
    assert Ledger(tmp_path / "ledger.tsv").rows() == {"u1": {b: day}}


def test_users_recorded_alike_share_a_row_until_one_of_them_changes(tmp_path: Path) -> None:
    path = tmp_path / "expiry-ledger.tsv"
    path.write_text(
        "u1\t2030-01-01\tllm_cube:a llm_cube:b\n"
        "u1\t?2031-01-01\ttheme:t\n"
        "u2\t2030-01-01\tllm_cube:a llm_cube:b\n"
        "u2\t?2031-01-01\ttheme:t\n"
        "u3\t2030-01-01\tllm_cube:a\n"
        "u1\t2032-01-01\tllm_cube:z\n"  # a line of u1 out of order (an edited file): merged into u1's own row
    )
    ledger = Ledger(path)
    a, t = Target("llm_cube", "a"), Target("theme", "t")
    rows = ledger.rows()
    assert rows["u2"] is not rows["u3"] and rows["u2"][t] == dt.date(2031, 1, 1)
    assert ledger[("u1", Target("llm_cube", "z"))] == dt.date(2032, 1, 1) and len(rows["u1"]) == 4
    assert ledger.unconfirmed == {("u1", t), ("u2", t)}
    shared = Ledger(path)
    shared_rows = shared.rows()
    assert shared_rows["u2"] is not shared_rows["u1"]  # u1 merged its extra line, so it owns its row
    path.write_text("u1\t2030-01-01\tllm_cube:a\nu2\t2030-01-01\tllm_cube:a\n")
    alike = Ledger(path)
    assert alike.rows()["u1"] is alike.rows()["u2"]  # one row for both
    alike[("u1", a)] = dt.date(2040, 1, 1)  # a change to one is not a change to the other
    assert alike[("u2", a)] == dt.date(2030, 1, 1) and alike[("u1", a)] == dt.date(2040, 1, 1)
    del alike[("u2", a)]
    assert ("u2", a) not in alike and alike[("u1", a)] == dt.date(2040, 1, 1)
    with pytest.raises(KeyError):
        del alike[("u2", a)]


_cells = st.tuples(st.sampled_from(["u1", "u2", "u3"]), st.sampled_from([Target("llm_cube", c) for c in "abc"]))
_days = st.sampled_from([dt.date(2030, 1, 1), dt.date(2031, 1, 1)])


@settings(max_examples=80, deadline=None)
@given(
    start=st.dictionaries(_cells, _days),
    changes=st.lists(st.tuples(_cells, st.one_of(st.none(), _days)), max_size=12),
)
def test_the_ledger_behaves_as_a_dict_of_cells_through_changes_and_reloads(
    tmp_path_factory: pytest.TempPathFactory, start: dict, changes: list
) -> None:
    path = tmp_path_factory.mktemp("ledger") / "expiry-ledger.tsv"
    first = Ledger(path)
    first.update(start)
    first.compact()
    ledger, reference = Ledger(path), dict(start)  # loaded: users recorded alike share rows
    assert dict(ledger) == reference
    for cell, day in changes:
        if day is None:
            ledger.pop(cell, None)
            reference.pop(cell, None)
        else:
            ledger[cell] = day
            reference[cell] = day
        assert dict(ledger) == reference and len(ledger) == len(reference)
    ledger.compact()
    assert dict(Ledger(path)) == reference
