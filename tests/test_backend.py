"""The emulator's backend model: Smart Q, directory and embedding semantics, and state round-trips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.emulator import ApiError, Emulator
from reconciler.emulator.orgfile import read_org_file
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import DEMO_ORG

COPILOT = "ccd3428c-dd23-460c-a608-26bae29dffee"


def test_grant_then_delete_and_deleting_a_missing_grant_is_a_no_op(demo: Emulator) -> None:
    backend = demo.backend
    assert backend.smartq_authorize(0, ["u-bob"], ["c-hr"], ["t-q4"], [], "2099-12-31") == []
    assert backend.live_grants()[("u-bob", "theme", "t-q4")] == dt.date(2099, 12, 31)
    assert backend.smartq_authorize(1, ["u-bob", "u-carol"], ["c-hr"], ["t-q4"], [], None) == []
    assert not any(k[0] == "u-bob" for k in backend.live_grants())


def test_regrant_overwrites_the_expiry(demo: Emulator) -> None:
    demo.backend.smartq_authorize(0, ["u-alice"], ["c-sales"], [], [], "2030-01-01")
    assert demo.backend.live_grants()[("u-alice", "llm_cube", "c-sales")] == dt.date(2030, 1, 1)


def test_cell_failures_name_the_reason(demo: Emulator) -> None:
    failures = demo.backend.smartq_authorize(0, ["u-bob", "u-ghost"], ["c-none"], ["t-q4"], [], None)
    reasons = {(f["UserId"], f["LlmCube"] or f["LlmCubeTheme"]): f["DetailMessage"] for f in failures}
    assert reasons == {
        ("u-bob", "c-none"): "LLM_CUBE_NOT_EXIST",
        ("u-ghost", "c-none"): "USER_NOT_EXIST",
        ("u-ghost", "t-q4"): "USER_NOT_EXIST",
    }
    assert ("u-bob", "theme", "t-q4") in demo.backend.live_grants()


def test_past_expiry_and_the_cap(demo: Emulator) -> None:
    with pytest.raises(ApiError, match="past"):
        demo.backend.smartq_authorize(0, ["u-bob"], ["c-hr"], [], [], "2001-01-01")
    with pytest.raises(ApiError, match="100"):
        demo.backend.smartq_authorize(0, [f"u{i}" for i in range(101)], ["c-hr"], [], [], None)
    assert demo.backend.smartq_authorize(0, [f"u{i}" for i in range(100)], ["c-hr"], [], [], None)


def test_dataset_readback_setting(demo: Emulator) -> None:
    demo.backend.cube_readback = "dataset"
    assert demo.backend.query_llm_cube_with_theme_list("u-alice")["CubeIds"] == {"ds-sales": "Sales"}


def test_directory(demo: Emulator) -> None:
    backend = demo.backend
    page = backend.query_user_list("a", 1, 2)
    assert page["TotalNum"] == len([u for u in backend.users.values() if "a" in u.account or "a" in u.nick.lower()])
    assert len(page["Data"]) == 2
    with pytest.raises(ApiError):
        backend.query_user_list(None, 1, 1001)
    assert backend.query_user_list("A", 1, 2)["TotalNum"] == page["TotalNum"]  # the keyword ignores case
    last = backend.query_user_list(None, 1, 2)["TotalPages"]
    pages = [backend.query_user_list(None, n, 2)["Data"] for n in range(1, last + 2)]
    listed = [user["UserId"] for data in pages for user in data]
    assert listed == list(backend.users) and not pages[-1]  # every user once, in order; then nothing
    roots = backend.query_user_group_list_by_parent_id("-1")
    assert {g["UserGroupName"] for g in roots} == {"Finance", "People"}
    assert backend.query_user_group_list_by_parent_id("g-fin")[0]["IdentifiedPath"] == "g-fin/g-fpa"
    with pytest.raises(ApiError, match="does not exist"):
        backend.query_user_info_by_account("nobody", None)
    assert backend.query_user_info_by_account("alice@corp.onaliyun.com", None)["UserId"] == "u-alice"


def test_tickets(demo: Emulator) -> None:
    backend = demo.backend
    ticket = backend.create_ticket_for_copilot(COPILOT, 3, 60, None, "alice", 3)
    assert backend.tickets[ticket].user == "u-alice" and backend.tickets[ticket].uses_left == 3
    for bad in ((0, 60), (100000, 60), (1, 241), (1, 0)):
        with pytest.raises(ApiError):
            backend.create_ticket_for_copilot(COPILOT, bad[0], bad[1], "u-alice", None, None)
    with pytest.raises(ApiError, match="AccountType"):
        backend.create_ticket_for_copilot(COPILOT, 1, 60, None, "alice", None)
    with pytest.raises(ApiError):
        backend.create_ticket_for_copilot("nope", 1, 60, "u-alice", None, None)


def test_state_round_trips_through_the_org_file_format(demo: Emulator, tmp_path: Path) -> None:
    demo.backend.smartq_authorize(0, ["u-bob"], ["c-hr"], [], [], "2031-05-05")
    demo.backend.create_ticket_for_copilot(COPILOT, 1, 60, "u-alice", None, None)
    for name in ("state.json", "state.yaml"):
        demo.save(tmp_path / name)
        again = Emulator.from_file(tmp_path / name)
        assert again.backend.live_grants() == demo.backend.live_grants()
        assert set(again.backend.tickets) == set(demo.backend.tickets)


def test_bad_org_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "org.yaml").write_text("users: [{id: u1}]\n")
    with pytest.raises(ReconcilerError, match=r"invalid organisation file at users\.0\.account"):
        read_org_file(tmp_path / "org.yaml")
    assert read_org_file(DEMO_ORG).users
