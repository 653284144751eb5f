"""Configuration loading, target selection, snapshots on disk, and the client settings a target implies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.adapters.quickbi import models as m
from reconciler.application.config import load_config
from reconciler.application.workspace import client_settings
from reconciler.core.snapshot import Snapshot
from reconciler.interface.progress import progress
from reconciler.vocabulary.cells import Target, shared_rows
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import ROOT, CliResult


def test_repository_config() -> None:
    config = load_config(ROOT / "reconciler.yaml")
    name, target = config.target(None)
    assert name == "demo" and target.emulator is not None
    assert config.state_dir(name, target) == ROOT / ".reconciler"
    prod_name, prod = config.target("prod")
    assert prod.quickbi is not None and prod.quickbi.url == "https://quickbi-public.cn-hongkong.aliyuncs.com"
    assert config.state_dir(prod_name, prod) == ROOT / ".reconciler" / "prod"
    settings = client_settings(prod)
    assert settings.write_qps == 40 and settings.directory_qps == 30


def test_config_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "reconciler.yaml"
    path.write_text("policies: p/\ntargets:\n  x:\n    quickbi: {region: cn-hangzhou, endpoint: https://e}\n")
    with pytest.raises(ReconcilerError, match=r"reconciler.yaml:4: .*exactly one of region or endpoint"):
        load_config(path)
    path.write_text("policies: p/\ntargets:\n  x:\n    emulatr: {}\n")
    with pytest.raises(ReconcilerError, match=r"reconciler.yaml:4: targets.x.emulatr: unknown key"):
        load_config(path)


def test_snapshot_round_trip_and_digest(tmp_path: Path) -> None:
    snapshot = Snapshot({"u1": frozenset({Target("llm_cube", "a"), Target("theme", "b")}), "u2": frozenset()}, "t")
    path = tmp_path / "snap.json"
    path.write_text(snapshot.to_json())
    again = Snapshot.read(path)
    assert again == snapshot and again.digest() == snapshot.digest()
    assert snapshot.digest(["u1"]) != snapshot.digest(["u2"])
    path.write_text('{"format_version": 9}')
    with pytest.raises(ReconcilerError, match="not a reconciler snapshot"):
        Snapshot.read(path)


def test_a_snapshot_shares_one_object_per_target_and_still_refuses_bad_entries(tmp_path: Path) -> None:
    """A live snapshot names a few thousand targets millions of times; each is read into one shared object."""
    path = tmp_path / "snap.json"
    users = {f"u{i}": ["llm_cube:a", "theme:b"] for i in range(50)}
    path.write_text(json.dumps({"format_version": 1, "taken_at": "", "users": users}))
    snapshot = Snapshot.read(path)
    assert len({id(t) for targets in snapshot.grants.values() for t in targets}) == 2
    assert snapshot.grants["u7"] == {Target("llm_cube", "a"), Target("theme", "b")}
    for bad in (["cube:a"], "llm_cube:a", [["llm_cube:a"]], [7]):
        path.write_text(json.dumps({"format_version": 1, "taken_at": "", "users": {"u1": bad}}))
        with pytest.raises(ReconcilerError, match="not a reconciler snapshot"):
            Snapshot.read(path)


def test_request_serialisation_matches_the_sdk() -> None:
    request = m.SmartqAuthorize(operation_type=0, user_ids=["u1", "u 2"], llm_cubes=["c1"], expire_day="2099-12-31")
    assert request.to_params() == {
        "OperationType": "0",
        "UserIds": "u1,u 2",
        "LlmCubes": "c1",
        "ExpireDay": "2099-12-31",
    }
    assert m.QueryUserList(page_num=2).to_params() == {"PageNum": "2", "PageSize": "1000"}


def test_plain_progress_lines_without_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with progress(3, "apply") as tick:
        for _ in range(3):
            tick()
    assert capsys.readouterr().err == ""  # quick work stays quiet in CI logs
    monkeypatch.setattr("reconciler.interface.progress.PLAIN_INTERVAL_SECONDS", 0.0)
    with progress(3, "apply") as tick:
        for _ in range(3):
            tick()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("apply: 1/3 (") and lines[-1].startswith("apply: 3/3 (") and "eta" in lines[-1]


def test_the_digest_is_the_hash_of_the_compact_sorted_json() -> None:
    """Plan files record snapshot digests: the streamed digest must equal the documented canonical form."""
    snapshot = Snapshot(
        {
            "u-2": frozenset({Target("theme", "t\u00e9"), Target("llm_cube", "a")}),
            'u"1': frozenset(),
            "u-3": frozenset({Target("dataset", "ds")}),
        }
    )
    # and across the slices it is hashed in (DIGEST_SLICE users at a time)
    many = Snapshot(
        {f"u{i:05d}\u00e9": frozenset({Target("llm_cube", f"c{i % 7}")} if i % 3 else ()) for i in range(2501)}
    )
    for case, users in (
        (snapshot, None),
        (snapshot, ["u-3", 'u"1']),
        (snapshot, []),
        (snapshot, ["nobody"]),
        (many, None),
        (Snapshot(shared_rows(many.grants.items())), None),  # users with the same targets share one set
    ):
        chosen = sorted(case.grants if users is None else set(users))
        canonical = {u: sorted(map(str, case.grants.get(u, frozenset()))) for u in chosen}
        payload = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        assert case.digest(users) == "sha256:" + hashlib.sha256(payload).hexdigest()


def test_a_mistyped_region_is_one_line_with_a_suggestion(workspace: Path, run_cli: Callable[..., CliResult]) -> None:
    config = workspace / "reconciler.yaml"
    config.write_text(config.read_text().replace("{region: cn-hongkong}", "{region: cn-hongkog}"))
    result = run_cli("--target", "prod", "plan")
    assert result.code == 1 and len(result.err.strip().splitlines()) == 1
    assert "reconciler.yaml:" in result.err and "Quick BI's OpenAPI has no region 'cn-hongkog'" in result.err
    assert "did you mean cn-hongkong?" in result.err and "give endpoint: https://quickbi-public." in result.err


def test_users_with_the_same_live_targets_share_one_set() -> None:
    a, b = Target("llm_cube", "a"), Target("theme", "b")
    grants = shared_rows([("u1", frozenset({a, b})), ("u2", frozenset({b, a})), ("u3", frozenset({a}))])
    assert grants["u1"] is grants["u2"] and grants["u1"] == frozenset({a, b}) and grants["u3"] == frozenset({a})
