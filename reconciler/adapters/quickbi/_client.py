"""An async Quick BI OpenAPI client: signed requests, per-API rate limits, bounded concurrency, retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pydantic_core
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from reconciler.adapters.quickbi import models as m
from reconciler.adapters.quickbi._pacing import Pacer
from reconciler.adapters.quickbi.errors import QuickBIError, ThrottledError, TransportFailure
from reconciler.adapters.quickbi.signing import AcsV3Auth, CredentialSource, RpcV1Auth
from reconciler.vocabulary.redaction import scrub

API_VERSION = "2022-01-01"
log = logging.getLogger("reconciler.quickbi")


@dataclass(frozen=True)
class ClientSettings:
    """Defaults follow the reference: 50 QPS per API for writes and Smart Q, 30 for user and group reads."""

    write_qps: float = 50
    smartq_qps: float = 50
    directory_qps: float = 30
    max_concurrency: int = 16
    timeout: float = 10.0
    max_attempts: int = 8
    max_backoff: float = 20.0
    signature: str = "v3"
    extra_headers: dict[str, str] = field(default_factory=dict)
    # space calls to stay under the quotas; off against an in-process emulator with no quota to keep to
    paced: bool = True

    def qps_for(self, group: m.ApiGroup) -> float:
        return {"write": self.write_qps, "smartq": self.smartq_qps, "directory": self.directory_qps}[group]


CallObserver = Callable[[str, dict[str, str], str, str], None]


class QuickBIClient:
    """Talks to Quick BI (or the emulator) at `endpoint`; one instance per account, shared by all work."""

    def __init__(
        self,
        endpoint: str,
        credentials: CredentialSource,
        settings: ClientSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: CallObserver | None = None,
    ) -> None:
        self.settings = settings or ClientSettings()
        auth = RpcV1Auth(credentials) if self.settings.signature == "v1" else AcsV3Auth(credentials)
        self._auth = auth
        base_url = endpoint if "://" in endpoint else f"https://{endpoint}"
        limits = httpx.Limits(max_connections=self.settings.max_concurrency * 2, max_keepalive_connections=32)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            transport=transport,
            timeout=self.settings.timeout,
            limits=limits,
            headers={
                "accept": "application/json",
                "user-agent": "reconciler/0.1",
                **self.settings.extra_headers,
            },
        )
        self._semaphore = asyncio.Semaphore(self.settings.max_concurrency)
        # flow control is per API and per account, so one limiter per action, shared by every caller
        self._pacers: dict[str, Pacer] = {}
        self._observer = observer
        self.attempts = 0
        self.throttled = 0
        # the longest run of consecutive throttling answers any one call met: 0 or 1 means pacing works
        self.worst_throttle_streak = 0

    async def __aenter__(self) -> QuickBIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _pacer(self, request: m.ApiRequest) -> Pacer:
        pacer = self._pacers.get(request.action)
        if pacer is None:
            pacer = self._pacers[request.action] = Pacer(self.settings.qps_for(request.group))
        return pacer

    async def call(self, request: m.ApiRequest) -> Any:
        """Send `request` and return its `Result`, retrying what is safe to retry."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: _should_retry(request, exc)),
            reraise=True,
        )
        streak = 0
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        return await self._attempt(request)
                    except ThrottledError:
                        streak += 1
                        self.worst_throttle_streak = max(self.worst_throttle_streak, streak)
                        raise
                    except Exception:
                        streak = 0
                        raise
        finally:
            self.worst_throttle_streak = max(self.worst_throttle_streak, streak)
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ThrottledError) and error.retry_after:
            return min(error.retry_after, self.settings.max_backoff)
        backoff = wait_random_exponential(multiplier=0.1, max=self.settings.max_backoff)
        return float(backoff(state))

    async def _attempt(self, request: m.ApiRequest) -> Any:
        params = request.to_params()
        method = "GET" if request.action == "QueryUserList" else "POST"
        headers = {"x-acs-action": request.action, "x-acs-version": API_VERSION}
        async with self._semaphore:
            if self.settings.paced:
                await self._pacer(request).acquire()
            self.attempts += 1
            try:
                response = await self._http.request(method, "/", params=params, headers=headers)
            except httpx.TransportError as exc:
                reached = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                self._observe(request, params, "", f"transport error: {type(exc).__name__}")
                raise TransportFailure(request.action, exc, reached) from None
        return self._decode(request, params, response)

    def _decode(self, request: m.ApiRequest, params: dict[str, str], response: httpx.Response) -> Any:
        try:
            # in Rust: a directory page is 1,000 users, and a tenant of 100,000 has a hundred of them
            payload = pydantic_core.from_json(response.content)
        except ValueError:  # not JSON, or not UTF-8
            payload = None
        if not isinstance(payload, dict):
            # e.g. a proxy's HTML page: never mistake it for success, since a write would be taken as done
            self._observe(request, params, "", "InvalidResponse")
            message = f"not a Quick BI JSON envelope (content-type {response.headers.get('content-type', '-')})"
            raise QuickBIError(request.action, response.status_code, "InvalidResponse", message, "")
        request_id = str(payload.get("RequestId", ""))
        if response.status_code == 200 and payload.get("Success") is True:
            self._observe(request, params, request_id, "ok")
            return payload.get("Result")
        code = str(payload.get("Code") or f"HTTP{response.status_code}")
        # vendor text may quote the request (SignatureDoesNotMatch echoes the string to sign, token and all)
        message = scrub(str(payload.get("Message") or response.reason_phrase), self._auth.secrets)
        self._observe(request, params, request_id, code)
        retry_after = response.headers.get("x-acs-retry-after")
        if code.startswith("Throttling") or retry_after:
            self.throttled += 1
            seconds = int(retry_after) / 1000 if retry_after and retry_after.isdigit() else None
            raise ThrottledError(request.action, response.status_code, code, message, request_id, seconds)
        raise QuickBIError(request.action, response.status_code, code, message, request_id)

    def _observe(self, request: m.ApiRequest, params: dict[str, str], request_id: str, outcome: str) -> None:
        log.debug("%s %s -> %s", request.action, request_id, outcome)
        if self._observer is not None:
            self._observer(request.action, params, request_id, outcome)

    # ---- typed operations ------------------------------------------------------------------------------

    async def smartq_authorize(self, request: m.SmartqAuthorize) -> list[m.AuthorizeFailure]:
        result = await self.call(request)
        return [m.AuthorizeFailure.model_validate(item) for item in result or []]

    async def user_grants(self, user_id: str) -> m.UserSmartqGrants:
        result = await self.call(m.QueryLlmCubeWithThemeListByUserId(user_id=user_id))
        return m.UserSmartqGrants.model_validate(result or {})

    async def smartq_permission(self, cube_id: str, user_id: str) -> m.SmartqPermission:
        result = await self.call(m.QuerySmartqPermissionByCubeId(cube_id=cube_id, user_id=user_id))
        return m.SmartqPermission.model_validate(result)

    async def dataset_smartq_enabled(self, cube_id: str) -> bool:
        return bool(await self.call(m.QueryDatasetSmartqStatus(cube_id=cube_id)))

    async def data_range(self, kind: Literal["llmCube", "llmCubeTheme"], keyword: str | None = None) -> m.DataRange:
        result = await self.call(m.QueryDataRange(type=kind, keyword=keyword))
        return m.DataRange.model_validate(result or {})

    async def user_by_account(self, account: str, parent_account_name: str | None = None) -> m.UserInfo:
        result = await self.call(m.QueryUserInfoByAccount(account=account, parent_account_name=parent_account_name))
        return m.UserInfo.model_validate(result)

    async def user_by_id(self, user_id: str) -> m.UserInfo:
        return m.UserInfo.model_validate(await self.call(m.QueryUserInfoByUserId(user_id=user_id)))

    async def all_users(self, keyword: str | None = None, page_size: int = 1000) -> list[m.UserInfo]:
        """Every page of QueryUserList: the first tells how many there are, the rest are read concurrently
        (paced by the directory limit), not one round trip after another."""

        async def page(number: int) -> m.UserPage:
            result = await self.call(m.QueryUserList(keyword=keyword, page_num=number, page_size=page_size))
            return m.UserPage.model_validate(result)

        first = await page(1)
        rest = await asyncio.gather(*(page(n) for n in range(2, first.total_pages + 1))) if first.data else []
        users = list(first.data)
        for later in rest:
            users.extend(later.data)
        return users

    async def group_members(self, group_id: str) -> list[m.GroupMember]:
        result = await self.call(m.QueryUserGroupMember(user_group_id=group_id))
        return [m.GroupMember.model_validate(item) for item in result or []]

    async def group_users(self, group_id: str) -> set[str]:
        """Every user in a group and, recursively, its sub-groups."""
        users: set[str] = set()
        seen: set[str] = set()
        pending = [group_id]
        while pending:
            batch = [g for g in pending if g not in seen]
            seen.update(batch)
            pending = []
            for members in await asyncio.gather(*(self.group_members(g) for g in batch)):
                for member in members:
                    if member.is_user_group:
                        pending.append(member.id)
                    else:
                        users.add(member.id)
        return users

    async def child_groups(self, parent_id: str = "-1") -> list[m.UserGroup]:
        result = await self.call(m.QueryUserGroupListByParentId(parent_user_group_id=parent_id))
        return [m.UserGroup.model_validate(item) for item in result or []]

    async def all_groups(self) -> list[m.UserGroup]:
        groups: list[m.UserGroup] = []
        pending = ["-1"]
        while pending:
            children = await asyncio.gather(*(self.child_groups(parent) for parent in pending))
            pending = []
            for level in children:
                groups.extend(level)
                pending.extend(g.user_group_id for g in level)
        return groups

    async def create_copilot_ticket(self, request: m.CreateTicket4Copilot) -> str:
        return str(await self.call(request))

    async def copilot_embed_configs(self, keyword: str | None = None) -> list[m.CopilotEmbedConfig]:
        result = await self.call(m.QueryCopilotEmbedConfig(keyword=keyword))
        return [m.CopilotEmbedConfig.model_validate(item) for item in result or []]

    async def modify_copilot_embed_config(self, request: m.ModifyCopilotEmbedConfig) -> bool:
        return bool(await self.call(request))


def _should_retry(request: m.ApiRequest, error: BaseException) -> bool:
    if isinstance(error, ThrottledError):
        return True  # refused before it took effect
    if isinstance(error, TransportFailure):
        return request.idempotent or not error.may_have_reached_server
    if isinstance(error, QuickBIError):
        return error.retryable and request.idempotent
    return False
