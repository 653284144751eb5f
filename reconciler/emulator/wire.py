"""The emulator's wire layer: an ASGI app speaking Quick BI's RPC protocol over a `Backend`.

It authenticates both signature kinds, enforces replay and clock-skew checks, injects limits and faults,
parses parameters the way the official SDK sends them, and wraps results in Quick BI's envelopes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pydantic_core

from reconciler.adapters.quickbi.signing import (
    V3_ALGORITHM,
    v1_signature,
    v1_string_to_sign,
    v3_canonical_request,
    v3_signature,
)
from reconciler.emulator.backend import ApiError, Backend
from reconciler.emulator.faults import FaultInjector
from reconciler.emulator.limits import MAX_BODY_BYTES
from reconciler.vocabulary.fault_settings import FaultSettings

API_VERSION = "2022-01-01"
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
NONCE_TTL_SECONDS = 31 * 60
HOST_ID = "quickbi-public.emulator.local"
# far above any real request (SmartqAuthorize carries at most 100 cells), far below what hurts a server

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ConnectionDropped(Exception):
    """Raised after a deliberately truncated answer, so the server drops the connection mid-response."""


@dataclass
class Params:
    """Request parameters as strings, read with the SDK's conventions (True/False, comma-joined lists)."""

    values: dict[str, str]

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.values.get(name)
        if value in (None, ""):
            if required:
                raise ApiError("System.Param.Empty", f"You must specify the {name} parameter.")
            return None
        return value

    def integer(self, name: str, default: int | None = None, required: bool = False) -> int | None:
        value = self.text(name, required)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError("Invalid.Parameter.Error", f"The parameter is invalid:{name}.") from None

    def listed(self, name: str, required: bool = False) -> list[str]:
        value = self.text(name, required)
        return [item.strip() for item in value.split(",") if item.strip()] if value else []


Handler = Callable[[Backend, Params, FaultInjector], Any]


def _smartq_authorize(backend: Backend, p: Params, faults: FaultInjector) -> Any:
    rate, silent = faults.settings.partial_rate, faults.settings.silent_rate
    return backend.smartq_authorize(
        operation_type=p.integer("OperationType", required=True) or 0,
        user_ids=p.listed("UserIds", required=True),
        llm_cubes=p.listed("LlmCubes"),
        themes=p.listed("LlmCubeThemes"),
        cube_ids=p.listed("CubeIds"),
        expire_day=p.text("ExpireDay"),
        fail_cell=(lambda: faults.roll(rate)) if rate > 0 else None,
        skip_cell=(lambda: faults.roll(silent)) if silent > 0 else None,
    )


HANDLERS: dict[str, Handler] = {
    "SmartqAuthorize": _smartq_authorize,
    "QueryLlmCubeWithThemeListByUserId": lambda b, p, f: b.query_llm_cube_with_theme_list(
        p.text("UserId", required=True) or ""
    ),
    "QuerySmartqPermissionByCubeId": lambda b, p, f: b.query_smartq_permission(
        p.text("CubeId", required=True) or "", p.text("UserId", required=True) or ""
    ),
    "QueryDatasetSmartqStatus": lambda b, p, f: b.query_dataset_smartq_status(p.text("CubeId", required=True) or ""),
    "QueryDataRange": lambda b, p, f: b.query_data_range(p.text("Type", required=True) or "", p.text("Keyword")),
    "QueryUserInfoByAccount": lambda b, p, f: b.query_user_info_by_account(
        p.text("Account", required=True) or "", p.text("ParentAccountName")
    ),
    "QueryUserInfoByUserId": lambda b, p, f: b.query_user_info_by_user_id(p.text("UserId", required=True) or ""),
    "QueryUserList": lambda b, p, f: b.query_user_list(
        p.text("Keyword"), p.integer("PageNum", 1) or 1, p.integer("PageSize", 10) or 10
    ),
    "QueryUserGroupMember": lambda b, p, f: b.query_user_group_member(
        p.text("UserGroupId", required=True) or "", p.text("Keyword")
    ),
    "QueryUserGroupListByParentId": lambda b, p, f: b.query_user_group_list_by_parent_id(
        p.text("ParentUserGroupId", required=True) or ""
    ),
    "CreateTicket4Copilot": lambda b, p, f: b.create_ticket_for_copilot(
        copilot_id=p.text("CopilotId", required=True) or "",
        ticket_num=p.integer("TicketNum", 1) or 0,
        expire_minutes=p.integer("ExpireTime", 240) or 0,
        user_id=p.text("UserId"),
        account_name=p.text("AccountName"),
        account_type=p.integer("AccountType"),
    ),
    "QueryCopilotEmbedConfig": lambda b, p, f: b.query_copilot_embed_config(p.text("Keyword")),
    "ModifyCopilotEmbedConfig": lambda b, p, f: b.modify_copilot_embed_config(
        copilot_id=p.text("CopilotId", required=True) or "",
        data_range=p.text("DataRange"),
        module_name=p.text("ModuleName"),
        agent_name=p.text("AgentName"),
    ),
}


class EmulatorApp:
    """ASGI application. Mount it in-process with `httpx.ASGITransport` or serve it with uvicorn."""

    def __init__(self, backend: Backend, faults: FaultSettings | None = None, throttle_status: int = 400) -> None:
        self.backend = backend
        self.faults = FaultInjector(faults or FaultSettings())
        # Quick BI's throttling status is UNCONFIRMED (400 in Alibaba's generic tables, 429 elsewhere)
        self.throttle_status = throttle_status
        self._nonces: dict[str, float] = {}
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.requests += 1
        body = await _read_body(scope, receive)
        if body is _DISCONNECTED:
            return  # the client went away (or was cut off for being too slow): nobody to answer
        status: int
        payload: dict[str, Any]
        headers: dict[str, str]
        if body is None:
            status, payload, headers = 413, _error(_request_id(), "RequestEntityTooLarge", _TOO_LARGE), {}
        else:
            status, payload, headers = await self._handle(scope, body)
        if status == 0:
            encoded = json.dumps({"RequestId": _request_id()}).encode()
            await send(_start(200, encoded, {}))
            await send({"type": "http.response.body", "body": encoded[: len(encoded) // 2], "more_body": True})
            raise ConnectionDropped("fault injection: connection dropped mid-response")
        encoded = pydantic_core.to_json(payload)  # UTF-8 as sent; in Rust: a directory page is 1,000 users
        await send(_start(status, encoded, headers))
        await send({"type": "http.response.body", "body": encoded})

    async def _handle(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        request_id = _request_id()
        form: list[tuple[str, str]] = []
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            try:
                form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                return 400, _error(request_id, "InvalidParameter", "The request body is not UTF-8 form data."), {}
        params = dict(query + form)
        try:
            if scope.get("method") not in ("GET", "POST"):
                raise ApiError("UnsupportedHTTPMethod", "This http method is not supported.", 400)
            action = headers.get("x-acs-action") or params.get("Action") or ""
            version = headers.get("x-acs-version") or params.get("Version") or ""
            caller = self.backend.caller_of(self._authenticate(scope, headers, query, params, body))
            if caller == "outsider":
                raise ApiError("Invalid.User.Organization", "The user is not in your organization.", 400)
            if caller == "member":
                message = "You are not an administrator or API call auth user of this organization."
                raise ApiError("Not.ApiCall.AuthUser", message, 400)
            if action not in HANDLERS:
                raise ApiError("InvalidAction.NotFound", f"Specified api '{action}' is not found.", 404)
            if version != API_VERSION:
                raise ApiError("NoSuchVersion", f"The specified version '{version}' does not exist.", 400)
            wait = self.faults.admit(action)
            if wait is not None:
                retry_after_ms = str(max(1, int(wait * 1000)))
                error = _error(request_id, "Throttling.User", "Request was denied due to user flow control.")
                return self.throttle_status, error, {"x-acs-retry-after": retry_after_ms}
            settings = self.faults.for_action(action)
            if settings.latency_ms:
                await asyncio.sleep(settings.latency_ms / 1000)
            if self.faults.roll(settings.slow_rate):
                await asyncio.sleep(settings.slow_seconds)
            if self.faults.roll(settings.error_rate):
                message = "The request has failed due to a temporary failure of the server."
                return 503, _error(request_id, "ServiceUnavailable", message), {}
            with self.backend.lock:
                result = HANDLERS[action](self.backend, Params(params), self.faults)
            if self.faults.roll(settings.drop_rate):
                return 0, {}, {}  # the server acted, but its answer is lost: the caller cannot tell
            return 200, {"RequestId": request_id, "Success": True, "Result": result}, {}
        except ApiError as exc:
            return exc.status, _error(request_id, exc.code, exc.message), {}

    def _authenticate(
        self,
        scope: Scope,
        headers: dict[str, str],
        query: list[tuple[str, str]],
        params: dict[str, str],
        body: bytes,
    ) -> str:
        """The access key ID of a correctly signed request."""
        authorization = headers.get("authorization", "")
        if authorization.startswith(V3_ALGORITHM):
            return self._verify_v3(scope, headers, query, body, authorization)
        if "Signature" in params:
            return self._verify_v1(scope, params)
        raise ApiError("IncompleteSignature", "The request signature does not conform to Aliyun standards.")

    def _verify_v3(
        self,
        scope: Scope,
        headers: dict[str, str],
        query: list[tuple[str, str]],
        body: bytes,
        authorization: str,
    ) -> str:
        fields = dict(
            part.strip().split("=", 1) for part in authorization[len(V3_ALGORITHM) :].split(",") if "=" in part
        )
        access_key_id = fields.get("Credential", "")
        signed = [h for h in fields.get("SignedHeaders", "").split(";") if h]
        if not access_key_id or not signed or "Signature" not in fields:
            raise ApiError("IncompleteSignature", "The request signature does not conform to Aliyun standards.")
        # what is not signed can be changed in flight (e.g. x-acs-action): host and every x-acs-* header must be
        unsigned = sorted(h for h in headers if (h == "host" or h.startswith("x-acs-")) and h not in signed)
        if unsigned:
            raise ApiError(
                "IncompleteSignature", f"The request signature does not cover the header(s) {', '.join(unsigned)}."
            )
        secret = self._secret(access_key_id)
        if headers.get("x-acs-content-sha256", "") != hashlib.sha256(body).hexdigest():
            raise _mismatch()
        self._check_time(headers.get("x-acs-date", ""))
        canonical = v3_canonical_request(
            scope["method"], scope.get("path") or "/", query, headers, signed, headers["x-acs-content-sha256"]
        )
        if not hmac.compare_digest(v3_signature(secret, canonical), fields["Signature"]):
            raise _mismatch(canonical)
        self._use_nonce(access_key_id, headers.get("x-acs-signature-nonce", ""))
        return access_key_id

    def _verify_v1(self, scope: Scope, params: dict[str, str]) -> str:
        secret = self._secret(params.get("AccessKeyId", ""))
        self._check_time(params.get("Timestamp", ""))
        signed = [(k, v) for k, v in params.items() if k != "Signature"]
        if not hmac.compare_digest(v1_signature(secret, scope["method"], signed), params["Signature"]):
            raise _mismatch(v1_string_to_sign(scope["method"], signed))
        self._use_nonce(params.get("AccessKeyId", ""), params.get("SignatureNonce", ""))
        return params.get("AccessKeyId", "")

    def _secret(self, access_key_id: str) -> str:
        secret = self.backend.secret_for(access_key_id)
        if secret is None:
            raise ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        return secret

    def _check_time(self, stamp: str) -> None:
        try:
            when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            raise ApiError(
                "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            ) from None
        if abs(dt.datetime.now(dt.UTC) - when) > MAX_CLOCK_SKEW:
            raise ApiError("InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")

    def _use_nonce(self, access_key_id: str, nonce: str) -> None:
        if not nonce:
            raise ApiError("MissingSignatureNonce", "SignatureNonce is mandatory for this action.")
        now = time.monotonic()
        if len(self._nonces) > 100_000:
            self._nonces = {k: t for k, t in self._nonces.items() if now - t < NONCE_TTL_SECONDS}
        key = f"{access_key_id}/{nonce}"
        seen = self._nonces.get(key)
        if seen is not None and now - seen < NONCE_TTL_SECONDS:
            raise ApiError("SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces[key] = now


def _mismatch(string_to_sign: str = "") -> ApiError:
    """As Quick BI answers it: with the string the server signed, which quotes the request's parameters (an STS
    token among them, percent-encoded twice under signature v1, as sent under v3)."""
    echo = f" server string to sign is:{string_to_sign}" if string_to_sign else ""
    return ApiError(
        "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation." + echo,
        403,
    )


def _error(request_id: str, code: str, message: str) -> dict[str, Any]:
    return {
        "RequestId": request_id,
        "HostId": HOST_ID,
        "Code": code,
        "Message": message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=quickbi-public",
    }


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _start(status: int, body: bytes, headers: dict[str, str]) -> Message:
    raw = [(b"content-type", b"application/json;charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http.response.start", "status": status, "headers": raw}


_TOO_LARGE = f"The request body is larger than {MAX_BODY_BYTES} bytes."


_DISCONNECTED = b"\x00disconnected"


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The request body, None once it passes MAX_BODY_BYTES (the rest is not read into memory), or
    `_DISCONNECTED` when the client left before sending all of it."""
    declared = dict(scope["headers"]).get(b"content-length", b"0")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _DISCONNECTED
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
