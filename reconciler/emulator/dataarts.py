"""An emulated Huawei Cloud DataArts Insight tenant, for its ticket API only (`GET/POST /v1/{project_id}/tickets`).

As for Quick BI, a backend model (`InsightBackend`: tickets and their semantics) behind a thin ASGI layer
(`InsightApp`: authentication by IAM token or SDK-HMAC-SHA256 signature, paging limits, Huawei error bodies).
The signature is checked by recomputing it with Huawei Cloud's own SDK core signer, over what arrived.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx
import pydantic_core
from huaweicloudsdkcore.auth.credentials import BasicCredentials, Credentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from pydantic import Field

from reconciler.adapters.dataarts import LIST_LIMIT, LIST_OFFSET_LIMIT, SdkSigning
from reconciler.emulator import in_process_transport
from reconciler.emulator.backend import Clock
from reconciler.emulator.faults import FaultInjector
from reconciler.emulator.orgfile import read_model_file
from reconciler.emulator.wire import ConnectionDropped
from reconciler.vocabulary.base import StrictModel
from reconciler.vocabulary.fault_settings import FaultSettings
from reconciler.vocabulary.files import write_text_file

if TYPE_CHECKING:
    from reconciler.emulator.serve import BackgroundServer

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
MAX_BODY_BYTES = 64 * 1024
_PATH = re.compile(r"^/v1/(?P<project>[^/]+)/tickets/?$")
_SDK_DATE = "%Y%m%dT%H%M%SZ"


class InsightError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class InsightKey(StrictModel):
    id: str
    secret: str


class InsightUser(StrictModel):
    id: str
    name: str
    type: int = 1


class InsightEmbed(StrictModel):
    id: str
    name: str


class InsightTicket(StrictModel):
    ticket: str
    embed_id: str
    user_id: str
    left_num: int
    expires_at: dt.datetime
    group_ids: list[str] = Field(default_factory=list)


class InsightOrg(StrictModel):
    """The emulated tenant (YAML or JSON); its saved state has the same shape."""

    project_id: str
    access_keys: list[InsightKey] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list)
    users: list[InsightUser] = Field(default_factory=list)
    embeds: list[InsightEmbed] = Field(default_factory=list)
    tickets: list[InsightTicket] = Field(default_factory=list)
    # no expiry parameter is documented for CreateTickets; the emulator's tickets last this long
    ticket_hours: int = Field(default=24, ge=1)


class InsightBackend:
    def __init__(self, org: InsightOrg, clock: Clock | None = None) -> None:
        self.org = org
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.users = {u.id: u for u in org.users}
        self.embeds = {e.id: e for e in org.embeds}
        self.tickets = {t.ticket: t for t in org.tickets}

    def to_org(self) -> InsightOrg:
        with self.lock:
            return self.org.model_copy(update={"tickets": self._valid()})

    def _valid(self) -> list[InsightTicket]:
        now = self.clock.now()
        return [t for t in self.tickets.values() if t.expires_at > now and t.left_num > 0]

    def list_tickets(self, query: dict[str, str]) -> dict[str, Any]:
        limit = _integer(query, "limit", 10, 1, LIST_LIMIT)
        offset = _integer(query, "offset", 0, 0, LIST_OFFSET_LIMIT)
        sort_dir = query.get("sort_dir", "asc")
        if sort_dir not in ("asc", "desc"):
            raise InsightError(400, "24010001", "sort_dir must be asc or desc")
        with self.lock:
            found = [t for t in self._valid() if self._matches(t, query)]
        if sort_dir == "desc":
            found.reverse()
        return {"count": len(found), "page_data": [self._ticket_vo(t) for t in found[offset : offset + limit]]}

    def _matches(self, ticket: InsightTicket, query: dict[str, str]) -> bool:
        user = self.users.get(ticket.user_id)
        wanted = {
            "embed_id": ticket.embed_id,
            "user_id": ticket.user_id,
            "user_name": user.name if user else "",
            "user_type": str(user.type) if user else "",
        }
        return all(query[key] == value for key, value in wanted.items() if query.get(key))

    def _ticket_vo(self, ticket: InsightTicket) -> dict[str, Any]:
        user = self.users.get(ticket.user_id)
        return {
            "ticket": ticket.ticket,
            "embed_id": ticket.embed_id,
            "expire_time": ticket.expires_at.strftime("%Y-%m-%d %H:%M:%S"),
            "left_num": str(ticket.left_num),
            "user_id": ticket.user_id,
            "user_name": user.name if user else "",
            "user_type": str(user.type) if user else "",
            "group_ids": ticket.group_ids,
        }

    def create_ticket(self, body: dict[str, Any]) -> dict[str, str]:
        embed_id, user_id = body.get("embed_id"), body.get("user_id")
        if not isinstance(embed_id, str) or not embed_id or not isinstance(user_id, str) or not user_id:
            raise InsightError(400, "24010001", "embed_id and user_id are required")
        ticket_num = body.get("ticket_num", 1)
        if not isinstance(ticket_num, int) or isinstance(ticket_num, bool) or ticket_num < 1:
            raise InsightError(400, "24010001", "ticket_num must be a positive integer")
        if embed_id not in self.embeds:
            raise InsightError(404, "24010003", f"embed {embed_id} not found")
        if user_id not in self.users:
            raise InsightError(404, "24010003", f"user {user_id} not found")
        ticket = uuid.uuid4().hex
        expires_at = self.clock.now() + dt.timedelta(hours=self.org.ticket_hours)
        with self.lock:
            self.tickets[ticket] = InsightTicket(
                ticket=ticket,
                embed_id=embed_id,
                user_id=user_id,
                left_num=ticket_num,
                expires_at=expires_at,
                group_ids=[str(g) for g in body.get("group_ids") or []],
            )
        return {"ticket": ticket}


def _integer(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise InsightError(400, "24010001", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InsightError(400, "24010001", f"{name} must be between {low} and {high}")
    return value


class InsightApp:
    """The wire layer: one ASGI app per tenant."""

    def __init__(self, backend: InsightBackend, faults: FaultSettings | None = None) -> None:
        self.backend = backend
        self.faults = FaultInjector(faults or FaultSettings())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                status, payload = 413, _error("24010001", "request body too large")
                break
            if not message.get("more_body"):
                status, payload = await self._handle(scope, body)
                break
        encoded = json.dumps(payload if status else {"ticket": "x" * 32}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(encoded)).encode())]
        await send({"type": "http.response.start", "status": status or 200, "headers": headers})
        if status == 0:  # the server acted, but the answer is cut off mid-body: the caller cannot tell
            await send({"type": "http.response.body", "body": encoded[: len(encoded) // 2], "more_body": True})
            raise ConnectionDropped("fault injection: connection dropped mid-response")
        await send({"type": "http.response.body", "body": encoded})

    async def _handle(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        action = "ListTickets" if scope["method"] == "GET" else "CreateTickets"
        try:
            self._authenticate(scope, headers, query, body)
            matched = _PATH.match(scope.get("path") or "")
            if not matched or scope["method"] not in ("GET", "POST"):
                raise InsightError(404, "APIGW.0101", "The API does not exist or has not been published.")
            if matched["project"] != self.backend.org.project_id:
                raise InsightError(403, "20010003", "no permission for this project")
            if self.faults.admit(action) is not None:
                raise InsightError(429, "APIGW.0308", "The throttling threshold has been reached.")
            settings = self.faults.for_action(action)
            if settings.latency_ms:
                await asyncio.sleep(settings.latency_ms / 1000)
            if self.faults.roll(settings.error_rate):
                raise InsightError(500, "24010000", "internal error")
            if scope["method"] == "GET":
                result = self.backend.list_tickets(dict(query))
            else:
                result = self.backend.create_ticket(_json_body(body))
            if self.faults.roll(settings.drop_rate):
                return 0, {}
            return 200, result
        except InsightError as exc:
            return exc.status, _error(exc.code, exc.message)

    def _authenticate(self, scope: Scope, headers: dict[str, str], query: list[tuple[str, str]], body: bytes) -> None:
        token = headers.get("x-auth-token")
        if token is not None:
            if not any(hmac.compare_digest(token, known) for known in self.backend.org.tokens):
                raise InsightError(401, "APIGW.0307", "The token must be updated.")
            return
        authorization = headers.get("authorization", "")
        if not authorization.startswith("SDK-HMAC-SHA256 "):
            raise InsightError(401, "APIGW.0301", "Incorrect IAM authentication information.")
        fields = dict(part.strip().split("=", 1) for part in authorization[16:].split(",") if "=" in part)
        signed = [h for h in fields.get("SignedHeaders", "").split(";") if h]
        keys = {k.id: k.secret for k in self.backend.org.access_keys}
        secret = keys.get(fields.get("Access", ""))
        if secret is None or "host" not in signed or "x-sdk-date" not in signed:
            raise InsightError(401, "APIGW.0301", "Incorrect IAM authentication information.")
        try:
            when = dt.datetime.strptime(headers.get("x-sdk-date", ""), _SDK_DATE).replace(tzinfo=dt.UTC)
        except ValueError:
            raise InsightError(401, "APIGW.0301", "Incorrect IAM authentication information.") from None
        if abs(self.backend.clock.now() - when) > MAX_CLOCK_SKEW:
            raise InsightError(401, "APIGW.0303", "Incorrect app authentication information: request expired.")
        expected = Signer(Credentials(fields["Access"], secret)).sign(
            SdkRequest(
                method=scope["method"],
                host=headers.get("host", ""),
                resource_path=scope.get("path") or "/",
                query_params=query,
                header_params={name: headers.get(name, "") for name in signed},
                body=body or None,
            )
        )
        if not hmac.compare_digest(expected.header_params["Authorization"], authorization):
            raise InsightError(401, "APIGW.0301", "Incorrect IAM authentication information.")


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = pydantic_core.from_json(body.decode("utf-8"))  # bounded: depth, number sizes
    except (UnicodeDecodeError, ValueError):
        raise InsightError(400, "24010001", "the request body is not JSON") from None
    if not isinstance(value, dict):
        raise InsightError(400, "24010001", "the request body must be a JSON object")
    return value


def _error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "error_msg": message}


class InsightEmulator:
    """One emulated DataArts Insight tenant, mountable in-process (`transport()`) or served over loopback."""

    ENDPOINT = "http://dataartsinsight.emulator.local"

    def __init__(self, org: InsightOrg, clock: Clock | None = None, faults: FaultSettings | None = None) -> None:
        self.backend = InsightBackend(org, clock)
        self.app = InsightApp(self.backend, faults)

    @classmethod
    def from_file(cls, path: Path, faults: FaultSettings | None = None) -> InsightEmulator:
        return cls(read_insight_org(path), faults=faults)

    def save(self, path: Path) -> None:
        payload = self.backend.to_org().model_dump(mode="json", exclude_defaults=True)
        write_text_file(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")

    def transport(self) -> httpx.AsyncBaseTransport:
        return in_process_transport(self.app)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
        from reconciler.emulator.serve import BackgroundServer  # the web server only when serving

        return BackgroundServer(self.app, host, port)

    def auth(self, project_id: str) -> httpx.Auth:
        """AK/SK signing with the tenant's first access key, as a real caller's SDK credentials would sign."""
        key = self.backend.org.access_keys[0]
        return SdkSigning(BasicCredentials(key.id, key.secret, project_id))


def read_insight_org(path: Path) -> InsightOrg:
    return read_model_file(path, InsightOrg, "DataArts Insight tenant file")
