"""Property-based fuzzing of the two parsers that take input from outside: the policy loader and the
emulator's request handling. A fixed example budget keeps CI fast; for a long run:

    HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.adapters.quickbi import AcsV3Auth, static_credentials
from reconciler.core.policy import load_policy
from reconciler.emulator import Emulator
from reconciler.emulator.wire import HANDLERS
from reconciler.vocabulary.errors import ReconcilerError
from tests.conftest import DEMO_ORG, ROOT

settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TODAY = dt.date(2026, 11, 23)
KEYS = [
    "version", "defaults", "expires", "users", "groups", "members", "quickbi_group", "resources", "llm_cubes",
    "themes", "grants", "to", "protected_users", "manage_all_targets", "released", "account", "id", "alias",
    "name", "dataset", "ttl", "renew_within", "alice", "analysts", "sales",
]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(["never", "2027-06-30", "2001-01-01", "2027-02-30", "30d", "id:c-sales", "account:alice", "1"]),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


def _load(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            load_policy([path], TODAY)
        except ReconcilerError as error:
            assert all(p.message for p in error.problems)


@given(DOCUMENTS)
def test_policy_loader_survives_structured_junk(document: Any) -> None:
    _load(yaml.safe_dump({"version": 1, **document} if isinstance(document, dict) else document))


@given(st.binary(max_size=400) | st.text(max_size=400))
def test_policy_loader_survives_any_bytes(raw: bytes | str) -> None:
    _load(raw)


PARAMETERS = ["UserIds", "UserId", "LlmCubes", "LlmCubeThemes", "CubeIds", "OperationType", "ExpireDay",
              "PageNum", "PageSize", "Keyword", "Type", "UserGroupId", "ParentUserGroupId", "CopilotId",
              "TicketNum", "ExpireTime", "AccountName", "AccountType", "Account", "CubeId"]  # fmt: skip
EMULATOR = Emulator.from_file(DEMO_ORG)


async def _send(action: str, params: dict[str, str], form: bool) -> httpx.Response:
    content = httpx.QueryParams(params) if form else None
    request = httpx.Request(
        "POST",
        "http://quickbi-public.emulator.local/",
        params=None if form else params,
        content=str(content).encode() if content is not None else None,
        headers={
            "x-acs-action": action,
            "x-acs-version": "2022-01-01",
            **({"content-type": "application/x-www-form-urlencoded"} if form else {}),
        },
    )
    signed = await AcsV3Auth(static_credentials("demo-ak", "demo-secret")).async_auth_flow(request).__anext__()
    async with httpx.AsyncClient(transport=EMULATOR.transport()) as client:
        return await client.send(signed)


def documented_codes() -> dict[str, set[int]]:
    """The emulator's error codes and statuses as docs/reference.md lists them."""
    table = (ROOT / "docs" / "reference.md").read_text().split("### The emulator's limits and error codes")[1]
    codes: dict[str, set[int]] = {}
    for line in table.split("\n## ")[0].splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0][:3].isdigit():
            statuses = {int(n) for n in re.findall(r"\d{3}", cells[0])}
            for code in re.findall(r"`([^`]+)`", cells[1]):
                codes[code] = statuses
    return codes


DOCUMENTED = documented_codes()
# JSON a client may put inside a parameter: deep, huge, odd, and the well-formed shapes
_JSON_JUNK = st.sampled_from(
    [
        "[" * 5000 + "]" * 5000,
        '{"llmCubes": ' + "[" * 300 + "]" * 300 + "}",
        '{"allCube": ' + "9" * 5001 + "}",
        '{"allCube": 1e999999}',
        '{"llmCubes": ["c-sales"]}',
        '{"allTheme": true}',
        '{"themes": [1, 2]}',
        "",
    ]
) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["allCube", "llmCubes", "themes", "x"]), inner, max_size=2)
    ),
).map(json.dumps)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(HANDLERS)),
    st.dictionaries(st.sampled_from(PARAMETERS) | st.text(max_size=8), st.text(max_size=30), max_size=6),
    st.dictionaries(st.just("DataRange"), _JSON_JUNK, max_size=1),
    st.booleans(),
)
def test_any_signed_request_gets_2xx_or_a_documented_4xx(
    action: str, params: dict[str, str], json_params: dict[str, str], form: bool
) -> None:
    response = asyncio.run(_send(action, {**params, **json_params}, form))
    body = response.json()
    assert "RequestId" in body, response.text
    if response.status_code == 200:
        assert body.get("Success") is True
    else:
        assert body.get("Code") in DOCUMENTED, response.text
        assert response.status_code in DOCUMENTED[body["Code"]] and response.status_code < 500, response.text


def test_every_code_the_emulator_can_answer_is_documented() -> None:
    source = "".join(p.read_text() for p in (ROOT / "reconciler" / "emulator").glob("*.py"))
    raised = set(re.findall(r'ApiError\(\s*"([A-Za-z.]+)"', source))
    raised |= set(re.findall(r'_error\(\s*request_id,\s*"([A-Za-z.]+)"', source))
    raised |= set(re.findall(r'_error\(_request_id\(\), "([A-Za-z.]+)"', source))
    assert raised and raised <= set(DOCUMENTED), raised - set(DOCUMENTED)
