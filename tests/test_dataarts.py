"""Huawei DataArts Insight: the client signing with Huawei's SDK core, the emulated ticket API, `ticket issue`
for `dataarts_embeds`, and `ticket audit` reaching every valid ticket past the 1000/1000 paging window."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials

from reconciler.adapters.dataarts import DataArtsClient, DataArtsError, SdkSigning, TokenAuth, default_auth
from reconciler.emulator import FaultSettings
from reconciler.emulator.dataarts import InsightEmulator, InsightOrg
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import ROOT, CliResult

Run = Callable[..., CliResult]
SALES = "8e59605c-1b7a-4c1e-9d1e-5d0f2a7c3b10"
PILOT = "5d1c0b7e-93aa-4f0e-8c55-2b6f7e9d4a21"
STATE = Path(".reconciler") / "insight" / "state.json"
FAR = "2099-01-01T00:00:00Z"


def _tenant(**extra: Any) -> InsightOrg:
    base = {
        "project_id": "p1",
        "access_keys": [{"id": "hw-ak", "secret": "hw-secret-key"}],
        "tokens": ["iam-token-value"],
        "users": [{"id": "iam-alice", "name": "alice"}, {"id": "iam-bob", "name": "bob"}],
        "embeds": [{"id": "e1", "name": "Embed one"}],
    }
    return InsightOrg.model_validate({**base, **extra})


def _client(emulator: InsightEmulator, auth: httpx.Auth, endpoint: str | None = None) -> DataArtsClient:
    transport = None if endpoint else emulator.transport()
    return DataArtsClient(endpoint or emulator.ENDPOINT, "p1", auth, transport=transport, max_attempts=1)


def test_the_sdk_signs_real_requests_over_loopback_http() -> None:
    emulator = InsightEmulator(_tenant())

    async def go(endpoint: str) -> tuple[str, int]:
        async with _client(emulator, SdkSigning(BasicCredentials("hw-ak", "hw-secret-key", "p1")), endpoint) as c:
            ticket = await c.create_ticket("e1", "iam-alice", 3)
            page = await c.list_tickets({"user_id": "iam-alice"}, 0)
            return ticket, page.tickets[0].left_num

    with emulator.serve() as server:
        ticket, left = asyncio.run(go(server.endpoint))
    assert ticket in emulator.backend.tickets and left == 3


@pytest.mark.parametrize(
    "auth",
    [
        SdkSigning(BasicCredentials("hw-ak", "wrong-secret", "p1")),
        SdkSigning(BasicCredentials("other-ak", "hw-secret-key", "p1")),
        TokenAuth("not-a-token"),
    ],
)
def test_bad_credentials_are_refused_with_huaweis_error_body(auth: httpx.Auth) -> None:
    emulator = InsightEmulator(_tenant())

    async def go() -> None:
        async with _client(emulator, auth) as client:
            await client.list_tickets({}, 0)

    with pytest.raises(DataArtsError) as refused:
        asyncio.run(go())
    assert refused.value.status == 401 and refused.value.code.startswith("APIGW.")


def test_a_signed_request_altered_in_flight_is_refused() -> None:
    emulator = InsightEmulator(_tenant())
    signer = SdkSigning(BasicCredentials("hw-ak", "hw-secret-key", "p1"))
    signed = next(
        signer.auth_flow(httpx.Request("POST", f"{emulator.ENDPOINT}/v1/p1/tickets", json={"embed_id": "e1"}))
    )
    altered = httpx.Request(
        "POST",
        signed.url,
        headers={k: v for k, v in signed.headers.items() if k.lower() != "content-length"},
        json={"embed_id": "e1", "user_id": "iam-bob", "ticket_num": 99},
    )

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=emulator.transport()) as http:
            return await http.send(altered)

    answer = asyncio.run(go())
    assert answer.status_code == 401 and set(answer.json()) == {"error_code", "error_msg"}
    assert not emulator.backend.tickets


def test_an_old_signature_is_refused() -> None:
    emulator = InsightEmulator(_tenant())
    emulator.backend.clock.fixed = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)

    async def go() -> None:
        async with _client(emulator, SdkSigning(BasicCredentials("hw-ak", "hw-secret-key", "p1"))) as client:
            await client.list_tickets({}, 0)

    with pytest.raises(DataArtsError, match=r"APIGW\.0303"):
        asyncio.run(go())


@pytest.mark.parametrize(
    ("query", "status"),
    [("limit=1001", 400), ("limit=0", 400), ("offset=1001", 400), ("offset=-1", 400), ("sort_dir=up", 400)],
)
def test_the_documented_paging_limits_are_enforced(query: str, status: int) -> None:
    emulator = InsightEmulator(_tenant())

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=emulator.transport(), auth=TokenAuth("iam-token-value")) as http:
            return await http.get(f"{emulator.ENDPOINT}/v1/p1/tickets?{query}")

    answer = asyncio.run(go())
    assert answer.status_code == status and answer.json()["error_code"] == "24010001"


def test_another_project_and_unknown_embeds_are_errors() -> None:
    emulator = InsightEmulator(_tenant())

    async def go(path: str, body: dict[str, Any]) -> httpx.Response:
        async with httpx.AsyncClient(transport=emulator.transport(), auth=TokenAuth("iam-token-value")) as http:
            return await http.post(f"{emulator.ENDPOINT}{path}", json=body)

    assert asyncio.run(go("/v1/p2/tickets", {"embed_id": "e1", "user_id": "iam-alice"})).status_code == 403
    missing = asyncio.run(go("/v1/p1/tickets", {"embed_id": "nope", "user_id": "iam-alice"}))
    assert missing.status_code == 404 and missing.json()["error_code"] == "24010003"


def test_expired_and_used_up_tickets_are_not_listed() -> None:
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
    tickets = [
        {"ticket": "t-valid", "embed_id": "e1", "user_id": "iam-alice", "left_num": 1, "expires_at": FAR},
        {"ticket": "t-expired", "embed_id": "e1", "user_id": "iam-alice", "left_num": 1, "expires_at": past},
        {"ticket": "t-used", "embed_id": "e1", "user_id": "iam-alice", "left_num": 0, "expires_at": FAR},
    ]
    emulator = InsightEmulator(_tenant(tickets=tickets))
    listed = emulator.backend.list_tickets({})
    assert listed["count"] == 1 and listed["page_data"][0]["ticket"] == "t-valid"
    assert listed["page_data"][0]["left_num"] == "1"  # a string on the wire, as documented


def test_credentials_come_from_the_token_or_the_sdks_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUAWEICLOUD_IAM_TOKEN", "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_OIDC_ID_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", "/nonexistent/credentials")
    with pytest.raises(ReconcilerError, match="no Huawei Cloud credentials found"):
        default_auth("p1")
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", "env-ak")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "env-sk")
    assert isinstance(default_auth("p1"), SdkSigning)
    monkeypatch.setenv("HUAWEICLOUD_IAM_TOKEN", "a-token")
    auth = default_auth("p1")
    assert isinstance(auth, TokenAuth) and "a-token" not in repr(auth)


# ---- through the command line, on the demo tenant (target `insight`) --------------------------------------


def _state(workspace: Path) -> dict[str, Any]:
    path = workspace / STATE
    if path.exists():
        return dict(json.loads(path.read_text()))
    return InsightEmulator.from_file(ROOT / "examples" / "demo-insight.yaml").backend.to_org().model_dump(mode="json")


def _write_state(workspace: Path, state: dict[str, Any]) -> None:
    (workspace / STATE).parent.mkdir(parents=True, exist_ok=True)
    (workspace / STATE).write_text(json.dumps(state))


def test_a_listed_user_gets_a_dataarts_ticket_on_stdout_only(workspace: Path, run_cli: Run) -> None:
    result = run_cli("-v", "ticket", "issue", "sales-dashboard", "--user", "alice", "--uses", "50")
    assert result.code == 0, result.err
    ticket = result.out.strip()
    minted = [t for t in _state(workspace)["tickets"] if t["ticket"] == ticket]
    assert minted and minted[0]["user_id"] == "iam-alice" and minted[0]["left_num"] == 50
    audit = (workspace / STATE.parent / "audit.jsonl").read_text()
    assert ticket not in audit and ticket not in result.err and f"ticket {ticket[:6]}****" in audit
    assert "hw-sk" not in result.err  # the demo tenant's secret key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--user", "judy"), "'judy' may not be issued tickets for 'sales-dashboard'"),
        (("--user", "dataarts:iam-mallory"), "'dataarts:iam-mallory' may not be issued tickets"),
        (("--user", "bob", "--uses", "101"), "101 uses is more than dataarts_embeds.sales-dashboard"),
        (("--user", "bob", "--minutes", "5"), "DataArts Insight tickets take no validity period"),
    ],
)
def test_a_dataarts_ticket_the_policy_does_not_allow_is_refused_before_any_call(
    workspace: Path, run_cli: Run, args: tuple[str, ...], message: str
) -> None:
    before = len(_state(workspace)["tickets"])
    result = run_cli("ticket", "issue", "sales-dashboard", *args)
    assert result.code == 1 and message in result.err and len(result.err.strip().splitlines()) == 1
    assert len(_state(workspace)["tickets"]) == before


def test_a_dataarts_ticket_is_not_retried_after_an_ambiguous_failure(workspace: Path, run_cli: Run) -> None:
    config = workspace / "reconciler.yaml"
    text = config.read_text()
    plain = "state: .reconciler/insight/state.json}"
    config.write_text(text.replace(plain, plain[:-1] + ", faults: {drop_rate: 1.0, actions: [CreateTickets]}}"))
    before = len(_state(workspace)["tickets"])
    result = run_cli("ticket", "issue", "sales-dashboard", "--user", "alice")
    assert result.code == 1 and "did not answer" in result.err and "Traceback" not in result.err
    assert len(_state(workspace)["tickets"]) == before + 1  # minted once; never asked for a second


def test_the_audit_finds_what_policy_does_not_allow_and_masks_every_ticket(
    workspace: Path, run_cli: Run, tmp_path: Path
) -> None:
    out = tmp_path / "audit.md"
    result = run_cli("ticket", "audit", "--format", "markdown", "--out", str(out))
    assert result.code == 2
    assert "Tickets for embeds the policy does not know: 1" in result.out
    assert "Tickets held by users the policy does not allow: 1" in result.out and "mallory" in result.out
    assert "1000 uses left, policy allows 100" in result.out
    assert "Quick BI publishes no API to list them" in result.out
    for ticket in _state(workspace)["tickets"]:
        assert ticket["ticket"] not in result.out + result.err + out.read_text()
    report = json.loads(run_cli("ticket", "audit", "--format", "json").out)
    assert report["tickets"] == 4 and not report["clean"] and not report["unlisted"]


def test_a_clean_tenant_audits_clean(workspace: Path, run_cli: Run) -> None:
    state = _state(workspace)
    state["tickets"] = [t for t in state["tickets"] if t["user_id"] == "iam-alice"]
    _write_state(workspace, state)
    result = run_cli("ticket", "audit")
    assert result.code == 0 and "1 valid tickets listed in 1 listing: no findings." in result.out


def _many(embed: str, user: str, count: int, left: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "ticket": f"{embed[:4]}-{user}-{i:05d}-xxxxxxxx",
            "embed_id": embed,
            "user_id": user,
            "left_num": left,
            "expires_at": FAR,
        }
        for i in range(count)
    ]


def test_more_than_two_thousand_tickets_are_all_listed_by_partitioning(workspace: Path, run_cli: Run) -> None:
    state = _state(workspace)
    state["users"] += [{"id": f"iam-temp{i}", "name": f"temp{i}"} for i in range(30)]
    tickets = _many(SALES, "iam-alice", 2_600)  # one holder past the window: read from both ends
    tickets += _many(SALES, "iam-bob", 700)
    for i in range(30):  # not allowed, and only findable through the partition by user
        tickets += _many(SALES, f"iam-temp{i}", 20)
    tickets += _many(PILOT, "iam-frank", 400)  # an embed the policy does not know
    state["tickets"] = tickets
    _write_state(workspace, state)
    result = run_cli("ticket", "audit", "--format", "json")
    report = json.loads(result.out)
    assert report["tickets"] == len(tickets) == 4_300
    assert not report["unlisted"]
    assert len(report["not_allowed"]) == 600 and len(report["unknown_embed"]) == 400
    assert result.code == 2


def test_tickets_no_partition_can_reach_are_counted_not_missed(workspace: Path, run_cli: Run) -> None:
    state = _state(workspace)
    state["tickets"] = _many(SALES, "iam-alice", 4_500)
    _write_state(workspace, state)
    result = run_cli("ticket", "audit", "--format", "json")
    report = json.loads(result.out)
    assert result.code == 2 and report["tickets"] == 4_000
    (unlisted,) = report["unlisted"]
    assert unlisted["detail"] == f"500 in embed_id={SALES}, user_id=iam-alice"


def test_dataarts_targets_are_chosen_by_kind(workspace: Path, run_cli: Run) -> None:
    wrong = run_cli("--target", "demo", "ticket", "audit")
    assert wrong.code == 1 and "target 'demo' is not a DataArts Insight target" in wrong.err
    assert "(insight)" in wrong.err
    plan = run_cli("--target", "insight", "plan")
    assert plan.code == 1 and "target 'insight' is DataArts Insight" in plan.err


@pytest.mark.parametrize(
    ("policy", "code", "message"),
    [  # a holder without an IAM identity is a warning: the same groups carry grants nothing may hold up
        ("x: {embed_id: e, to: [judy]}", 0, "user 'judy' is in the 'to' of DataArts"),
        ("x: {embed_id: e, to: [finance]}", 0, "group 'finance' mirrors a Quick BI group"),
        ("x: {embed_id: e, to: [nobody]}", 1, "unknown user or group 'nobody'"),
        ("sales-bot: {embed_id: e, to: [alice]}", 1, "'sales-bot' is both a copilot and"),
        ("x: {embed_id: e, to: [alice], max_uses: 100000}", 1, "max_uses"),
    ],
)
def test_dataarts_embed_mistakes_name_file_and_line(
    workspace: Path, run_cli: Run, policy: str, code: int, message: str
) -> None:
    (workspace / "policies" / "z-embeds.yaml").write_text(f"version: 1\ndataarts_embeds:\n  {policy}\n")
    result = run_cli("validate")
    assert result.code == code and message in result.err and ".yaml:" in result.err
    assert run_cli("plan").code == code


def test_a_configured_endpoint_with_sdk_credentials_never_shows_the_secret(
    workspace: Path, run_cli: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emulator = InsightEmulator.from_file(ROOT / "examples" / "demo-insight.yaml")
    secret = emulator.backend.org.access_keys[0].secret
    monkeypatch.delenv("HUAWEICLOUD_IAM_TOKEN", raising=False)
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", emulator.backend.org.access_keys[0].id)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", secret)
    with emulator.serve() as server:
        config = workspace / "reconciler.yaml"
        config.write_text(
            config.read_text()
            + f"  live-insight:\n    dataarts: {{endpoint: '{server.endpoint}', project_id: demo-project}}\n"
        )
        outputs = [
            run_cli("-v", "--target", "live-insight", "ticket", "issue", "sales-dashboard", "--user", "bob"),
            run_cli("-v", "--target", "live-insight", "ticket", "audit", "--out", str(tmp_path / "audit.txt")),
        ]
        monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "wrong-" + secret)
        outputs.append(run_cli("-v", "--target", "live-insight", "ticket", "audit"))
    issued, audited, refused = outputs
    assert issued.code == 0 and audited.code == 2 and refused.code == 1
    assert "APIGW.0301" in refused.err and len(refused.err.strip().splitlines()) == 1
    files = [p.read_text() for p in [tmp_path / "audit.txt", *workspace.rglob("*.jsonl")]]
    for text in [*(o.out + o.err for o in outputs), *files]:
        assert secret not in text
    assert issued.out.strip() not in audited.out + "".join(files)  # the ticket itself only on issue's stdout


def test_a_lost_answer_over_the_network_is_not_retried() -> None:
    emulator = InsightEmulator(_tenant(), faults=FaultSettings(drop_rate=1.0, actions=["CreateTickets"]))

    async def go(endpoint: str) -> None:
        auth = SdkSigning(BasicCredentials("hw-ak", "hw-secret-key", "p1"))
        async with DataArtsClient(endpoint, "p1", auth) as client:
            await client.create_ticket("e1", "iam-alice", 1)

    with emulator.serve() as server, pytest.raises(DataArtsError, match="did not answer"):
        asyncio.run(go(server.endpoint))
    assert len(emulator.backend.tickets) == 1


def test_dataarts_warnings_only_where_a_dataarts_target_is_configured(
    workspace: Path, run_cli: Callable[..., CliResult]
) -> None:
    people = workspace / "policies" / "people.yaml"
    people.write_text(people.read_text().replace("members: [alice, bob, frank]", "members: [alice, bob, frank, ivan]"))
    said = "user 'ivan' is in the 'to' of DataArts Insight embed 'sales-dashboard' but has no IAM user ID"
    assert said in run_cli("plan").err  # the demo config has a DataArts Insight target
    config = workspace / "reconciler.yaml"
    lines = config.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("  insight:"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("  ") and not lines[i].startswith("    "))
    config.write_text("".join(lines[:start] + lines[end:]))
    quiet = run_cli("plan")
    assert quiet.code == 0 and said not in quiet.err
