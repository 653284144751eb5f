"""The client against the served emulator: typed answers, typed errors, retries under faults, rate limits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reconciler.adapters.quickbi import (
    ClientSettings,
    QuickBIClient,
    QuickBIError,
    ThrottledError,
    TransportFailure,
    static_credentials,
)
from reconciler.adapters.quickbi import models as m
from reconciler.emulator import Emulator, FaultSettings
from tests.conftest import DEMO_ORG, ROOT

FAST_RETRY = ClientSettings(max_backoff=0.2, timeout=2.0)


def test_typed_operations_in_process(demo: Emulator) -> None:
    async def go() -> None:
        async with demo.client() as client:
            users = await client.all_users(page_size=4)
            assert len(users) == len(demo.backend.users)
            assert await client.group_users("g-fin") == {"u-carol", "u-dave", "u-erin"}
            assert {g.user_group_name for g in await client.all_groups()} == {"Finance", "FP&A", "People"}
            assert (await client.user_by_account("alice")).user_id == "u-alice"
            assert (await client.user_by_id("u-bob")).account_name == "bob"
            assert (await client.user_grants("u-admin")).cube_ids.keys() == {"c-sales", "c-finance", "c-ops"}
            assert (await client.smartq_permission("ds-sales", "u-alice")).has_permission
            assert await client.dataset_smartq_enabled("ds-sales")
            assert [c.copilot_id for c in await client.copilot_embed_configs()] == list(demo.backend.copilots)
            with pytest.raises(QuickBIError) as info:
                await client.user_by_id("u-nobody")
            assert info.value.code == "ApiUser.Not.Exists" and info.value.request_id and info.value.status == 400

    asyncio.run(go())


def test_every_answer_right_with_faults_on() -> None:
    faults = FaultSettings(qps=40, error_rate=0.15, drop_rate=0.1, slow_rate=0.03, slow_seconds=3, seed=11)
    emulator = Emulator.from_file(DEMO_ORG, faults=faults)
    settings = ClientSettings(max_backoff=0.3, timeout=1.0, max_attempts=12)
    expected = {u: emulator.backend.query_llm_cube_with_theme_list(u) for u in emulator.backend.users}

    async def go() -> dict[str, m.UserSmartqGrants]:
        async with emulator.client(settings, endpoint=server.endpoint) as client:
            users = sorted(expected) * 4
            answers = await asyncio.gather(*(client.user_grants(u) for u in users))
            assert client.attempts > len(users)  # faults really happened and were retried
            return dict(zip(users, answers, strict=True))

    with emulator.serve() as server:
        answers = asyncio.run(go())
    for user, answer in answers.items():
        assert answer.cube_ids == expected[user]["CubeIds"] and answer.theme_ids == expected[user]["ThemeIds"]


def test_non_idempotent_calls_are_not_repeated_after_an_ambiguous_failure() -> None:
    emulator = Emulator.from_file(DEMO_ORG, faults=FaultSettings(drop_rate=1.0))
    request = m.CreateTicket4Copilot(copilot_id="ccd3428c-dd23-460c-a608-26bae29dffee", user_id="u-alice")

    async def go() -> None:
        async with emulator.client(FAST_RETRY, endpoint=server.endpoint) as client:
            with pytest.raises(TransportFailure):
                await client.create_copilot_ticket(request)
            assert client.attempts == 1

    with emulator.serve() as server:
        asyncio.run(go())
    # the server did issue the ticket before the connection dropped: a retry would have issued a second
    assert len(emulator.backend.tickets) == 1


def test_idempotent_calls_are_retried_after_drops() -> None:
    emulator = Emulator.from_file(DEMO_ORG, faults=FaultSettings(drop_rate=0.5, seed=5))

    async def go() -> int:
        async with emulator.client(FAST_RETRY, endpoint=server.endpoint) as client:
            for _ in range(10):
                await client.user_by_id("u-bob")
            return client.attempts

    with emulator.serve() as server:
        assert asyncio.run(go()) > 10


def test_business_errors_are_not_retried(demo: Emulator) -> None:
    async def go() -> None:
        async with demo.client(FAST_RETRY) as client:
            with pytest.raises(QuickBIError):
                await client.smartq_authorize(
                    m.SmartqAuthorize(operation_type=0, user_ids=["u-bob"], llm_cubes=["c-hr"], expire_day="2001-01-01")
                )
            assert client.attempts == 1

    asyncio.run(go())


def test_throttling_exhausts_into_a_typed_error() -> None:
    emulator = Emulator.from_file(DEMO_ORG, faults=FaultSettings(qps=1))
    settings = ClientSettings(smartq_qps=1000, max_attempts=2, max_backoff=0.01)

    async def go() -> None:
        async with emulator.client(settings) as client:
            with pytest.raises(ThrottledError) as info:
                await asyncio.gather(*(client.user_grants("u-bob") for _ in range(5)))
            assert info.value.code == "Throttling.User" and info.value.retry_after is not None

    asyncio.run(go())


def test_rate_limiter_stays_under_the_configured_qps(demo: Emulator) -> None:
    settings = ClientSettings(smartq_qps=20)

    async def go() -> float:
        async with demo.client(settings) as client:
            start = time.monotonic()
            await asyncio.gather(*(client.user_grants("u-bob") for _ in range(30)))
            return time.monotonic() - start

    # 30 calls at 20/s cannot finish in much under a second whatever the machine's speed
    assert asyncio.run(go()) >= 1.0


CHAIN_PROBE = """
import asyncio, sys, httpx
from reconciler.emulator import Emulator
from reconciler.adapters.quickbi import QuickBIClient, default_chain
from tests.conftest import DEMO_ORG, ROOT

emulator = Emulator.from_file(DEMO_ORG)
inner = emulator.transport()
seen = []

class Recording(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request):
        seen.append(request)
        return await inner.handle_async_request(request)

async def go():
    async with QuickBIClient("http://emulator", default_chain(), transport=Recording()) as client:
        return (await client.user_by_id("u-bob")).account_name

account = asyncio.run(go())
token = seen[0].headers.get("x-acs-security-token", "-")
print(account, token, "sts-token-value" in seen[0].headers["authorization"])
print("package loaded" if "alibabacloud_credentials" in sys.modules else "package not loaded")
"""


def test_default_credential_chain_reads_the_environment(tmp_path: Path) -> None:
    # the credentials package reads the environment once, at import: probe it in a fresh interpreter
    env = {
        **os.environ,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "demo-ak",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "demo-secret",
        "ALIBABA_CLOUD_SECURITY_TOKEN": "sts-token-value",
        "HOME": str(tmp_path),
    }
    probe = subprocess.run(
        [sys.executable, "-c", CHAIN_PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    # the chain's first source is the environment: read without loading the package (0.3 s of start-up)
    assert probe.stdout.splitlines() == ["bob sts-token-value False", "package not loaded"]


def test_default_credential_chain_asks_the_package_past_the_environment(tmp_path: Path) -> None:
    # an ID without a secret is not the environment source: the package's chain goes on to the profile file
    profile = tmp_path / ".alibabacloud" / "credentials.ini"
    profile.parent.mkdir()
    profile.write_text("[default]\ntype = access_key\naccess_key_id = demo-ak\naccess_key_secret = demo-secret\n")
    env = {**os.environ, "HOME": str(tmp_path), "ALIBABA_CLOUD_ACCESS_KEY_ID": "demo-ak"}
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN", "ALIBABA_CLOUD_CREDENTIALS_FILE"):
        env.pop(name, None)
    probe = subprocess.run(
        [sys.executable, "-c", CHAIN_PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines() == ["bob - False", "package loaded"]


@pytest.mark.parametrize(
    "body",
    [
        b"<html>gateway</html>",
        b'{"Success": true, "Result": "\xff\xfe"}',  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # nested past any parser's depth
        b'["Success", true]',
        b'{"Success": true, "Result": []',  # cut short
    ],
    ids=["html", "not-utf8", "deep", "not-an-object", "truncated"],
)
def test_a_non_json_answer_is_never_taken_for_success(demo: Emulator, body: bytes) -> None:
    inner = demo.transport()

    class Proxy(httpx.AsyncBaseTransport):
        """A misbehaving proxy in front of the emulator: it answers 200 with something else once."""

        def __init__(self) -> None:
            self.calls = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.calls += 1
            if self.calls == 1:
                return httpx.Response(200, content=body, headers={"content-type": "text/html"})
            return await inner.handle_async_request(request)

    proxy = Proxy()

    async def go() -> None:
        key = demo.backend.org.access_keys[0]
        client = QuickBIClient("http://emulator", static_credentials(key.id, key.secret), FAST_RETRY, transport=proxy)
        async with client:
            failures = await client.smartq_authorize(
                m.SmartqAuthorize(operation_type=0, user_ids=["u-bob"], llm_cubes=["c-hr"], expire_day="2099-12-31")
            )
            assert failures == [] and client.attempts == 2

    asyncio.run(go())
    assert ("u-bob", "llm_cube", "c-hr") in demo.backend.live_grants()
