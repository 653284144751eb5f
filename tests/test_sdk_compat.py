"""The official Alibaba Cloud SDK, which nobody here wrote, talks to the served emulator with both signatures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_quickbi_public20220101 import models as m
from alibabacloud_quickbi_public20220101.client import Client
from alibabacloud_tea_openapi.models import Config

from reconciler.emulator import Emulator
from reconciler.emulator.serve import BackgroundServer
from tests.conftest import DEMO_ORG


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Emulator, BackgroundServer]]:
    emulator = Emulator.from_file(DEMO_ORG)
    with emulator.serve() as server:
        yield emulator, server


def sdk(server: BackgroundServer, algorithm: str | None, secret: str = "demo-secret") -> Client:
    config = Config(
        access_key_id="demo-ak", access_key_secret=secret, endpoint=f"127.0.0.1:{server.port}", protocol="http"
    )
    if algorithm:
        config.signature_algorithm = algorithm
    return Client(config)


ALGORITHMS = [None, "v2"]  # None: the SDK's default ACS3-HMAC-SHA256; "v2": RPC HMAC-SHA1


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=["v3", "v1"])
def test_every_operation_matches_the_emulator_state(served: Any, algorithm: str | None) -> None:
    emulator, server = served
    client = sdk(server, algorithm)
    backend = emulator.backend

    granted = client.smartq_authorize(
        m.SmartqAuthorizeRequest(
            operation_type=0,
            user_ids="u-bob,u-ghost",
            llm_cubes="c-hr",
            llm_cube_themes="t-q4",
            expire_day="2099-12-31",
        )
    ).body
    assert granted.success and {(f.user_id, f.detail_message) for f in granted.result} == {
        ("u-ghost", "USER_NOT_EXIST")
    }
    assert ("u-bob", "llm_cube", "c-hr") in backend.live_grants()

    by_dataset = client.smartq_authorize(
        m.SmartqAuthorizeRequest(operation_type=0, user_ids="u-bob", cube_ids="ds-budget", expire_day="2099-12-31")
    ).body
    assert by_dataset.success and ("u-bob", "llm_cube", "c-budget") in backend.live_grants()

    listed = client.query_llm_cube_with_theme_list_by_user_id(
        m.QueryLlmCubeWithThemeListByUserIdRequest(user_id="u-bob")
    ).body.result
    assert set(listed.cube_ids) == {k[2] for k in backend.live_grants() if k[0] == "u-bob" and k[1] == "llm_cube"}
    assert set(listed.theme_ids) == {"t-q4"}

    permission = client.query_smartq_permission_by_cube_id(
        m.QuerySmartqPermissionByCubeIdRequest(cube_id="ds-hr", user_id="u-bob")
    ).body.result
    assert permission.has_perssion is True and permission.cube_name == "Headcount"

    assert client.query_dataset_smartq_status(m.QueryDatasetSmartqStatusRequest(cube_id="ds-hr")).body.result is True

    cubes = client.query_data_range(m.QueryDataRangeRequest(type="llmCube")).body.result
    assert {c.llm_cube_id for c in cubes.api_copilot_llm_cube_models} == set(backend.llm_cubes)
    themes = client.query_data_range(m.QueryDataRangeRequest(type="llmCubeTheme", keyword="q4")).body.result
    assert [t.theme_id for t in themes.api_copilot_theme_models] == ["t-q4"]

    info = client.query_user_info_by_account(m.QueryUserInfoByAccountRequest(account="alice")).body.result
    assert info.user_id == "u-alice"
    assert (
        client.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest(user_id="u-bob")).body.result.nick_name
        == "Bob"
    )

    page = client.query_user_list(m.QueryUserListRequest(page_num=2, page_size=5)).body.result
    assert page.total_num == len(backend.users) and page.page_num == 2 and len(page.data) == 5

    roots = client.query_user_group_list_by_parent_id(
        m.QueryUserGroupListByParentIdRequest(parent_user_group_id="-1")
    ).body.result
    assert {g.user_group_name for g in roots} == {"Finance", "People"}

    members = client.query_user_group_member(m.QueryUserGroupMemberRequest(user_group_id="g-fin")).body.result
    assert {(x.id, x.is_user_group) for x in members} == {("g-fpa", True), ("u-carol", False)}

    ticket = client.create_ticket_4copilot(
        m.CreateTicket4CopilotRequest(
            copilot_id="ccd3428c-dd23-460c-a608-26bae29dffee", user_id="u-alice", ticket_num=1
        )
    ).body.result
    assert backend.tickets[ticket].user == "u-alice"

    configs = client.query_copilot_embed_config(m.QueryCopilotEmbedConfigRequest()).body.result
    assert [c.copilot_id for c in configs] == list(backend.copilots)

    modified = client.modify_copilot_embed_config(
        m.ModifyCopilotEmbedConfigRequest(
            copilot_id="ccd3428c-dd23-460c-a608-26bae29dffee", data_range='{"themes":["t-q4"]}', module_name="Sales"
        )
    ).body
    assert modified.success and modified.result is True
    (config,) = client.query_copilot_embed_config(m.QueryCopilotEmbedConfigRequest()).body.result
    assert config.data_range.themes == ["t-q4"] and not config.data_range.all_cube and config.module_name == "Sales"

    revoked = client.smartq_authorize(
        m.SmartqAuthorizeRequest(operation_type=1, user_ids="u-bob", llm_cubes="c-hr,c-budget", llm_cube_themes="t-q4")
    ).body
    assert revoked.success and not any(k[0] == "u-bob" for k in backend.live_grants())


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=["v3", "v1"])
def test_wrong_secret_is_403(served: Any, algorithm: str | None) -> None:
    _, server = served
    with pytest.raises(Exception) as info:
        sdk(server, algorithm, secret="wrong").query_user_list(m.QueryUserListRequest())
    assert info.value.code == "SignatureDoesNotMatch" and "403" in str(info.value)


def test_unknown_access_key_is_404(served: Any) -> None:
    _, server = served
    config = Config(access_key_id="nobody", access_key_secret="x", endpoint=f"127.0.0.1:{server.port}", protocol="http")
    with pytest.raises(Exception) as info:
        Client(config).query_user_list(m.QueryUserListRequest())
    assert info.value.code == "InvalidAccessKeyId.NotFound" and "404" in str(info.value)


def test_business_errors_reach_the_sdk_with_code_and_request_id(served: Any) -> None:
    _, server = served
    client = sdk(server, None)
    with pytest.raises(Exception) as info:
        client.smartq_authorize(
            m.SmartqAuthorizeRequest(operation_type=0, user_ids="u-bob", llm_cubes="c-hr", expire_day="2020-01-01")
        )
    assert info.value.code == "Invalid.Parameter.Error" and info.value.data["RequestId"]
    with pytest.raises(Exception) as missing:
        client.query_user_info_by_user_id(m.QueryUserInfoByUserIdRequest())
    assert missing.value.code == "System.Param.Empty"


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=["v3", "v1"])
def test_a_replayed_sdk_nonce_is_refused(served: Any, algorithm: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from alibabacloud_tea_openapi import utils

    _, server = served
    client = sdk(server, algorithm)
    nonce = f"replayed-nonce-{algorithm}"
    monkeypatch.setattr(utils.Utils, "get_nonce", staticmethod(lambda: nonce))
    client.query_user_list(m.QueryUserListRequest())
    with pytest.raises(Exception) as info:
        client.query_user_list(m.QueryUserListRequest())
    assert info.value.code == "SignatureNonceUsed"
