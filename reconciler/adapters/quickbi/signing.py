"""Alibaba Cloud request signing: ACS3-HMAC-SHA256 (V3, the default) and RPC HMAC-SHA1 (V1).

The canonicalisation functions are shared by the client's `httpx.Auth` flows and the emulator's verifier,
and are pinned to the vendor's published test vectors in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

import httpx

from reconciler.vocabulary.base import utc_timestamp

V3_ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __repr__(self) -> str:
        # secrets must never reach logs or tracebacks through a stray repr()
        return f"Credential(access_key_id={self.access_key_id!r}, access_key_secret='***', security_token='***')"


CredentialSource = Callable[[], Awaitable[Credential]]


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as the signing recipes use it: space as %20, '*' as %2A, '~' unescaped."""
    return quote(value, safe="~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params))


def v3_canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(f"{name}:{lowered.get(name, '').strip()}\n" for name in signed_headers)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def v3_signature(secret: str, canonical_request: str) -> str:
    string_to_sign = f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def v1_string_to_sign(method: str, params: Iterable[tuple[str, str]]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def v1_signature(secret: str, method: str, params: Iterable[tuple[str, str]]) -> str:
    string_to_sign = v1_string_to_sign(method, params)
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class _CredentialAuth(httpx.Auth):
    def __init__(self, credentials: CredentialSource) -> None:
        self._credentials = credentials
        # every secret and token signed with, so that text coming back can be scrubbed of them
        self.secrets: set[str] = set()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("reconciler signs requests on the async client only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        credential = await self._credentials()
        self.secrets.add(credential.access_key_secret)
        if credential.security_token:
            self.secrets.add(credential.security_token)
        self.sign(request, credential)
        yield request

    def sign(self, request: httpx.Request, credential: Credential) -> None:
        raise NotImplementedError


class AcsV3Auth(_CredentialAuth):
    """ACS3-HMAC-SHA256: signs host, the x-acs-* headers and content-type over the canonical request."""

    def sign(self, request: httpx.Request, credential: Credential) -> None:
        body = request.content
        request.headers["x-acs-content-sha256"] = hashlib.sha256(body).hexdigest()
        request.headers["x-acs-date"] = utc_timestamp()
        request.headers["x-acs-signature-nonce"] = uuid.uuid4().hex
        if credential.security_token:
            request.headers["x-acs-security-token"] = credential.security_token
            request.headers["x-acs-accesskey-id"] = credential.access_key_id
        signed = sorted(
            name
            for name in (k.lower() for k in request.headers)
            if name == "host" or name == "content-type" or name.startswith("x-acs-")
        )
        query = parse_qsl(request.url.query.decode(), keep_blank_values=True)
        canonical = v3_canonical_request(
            request.method,
            request.url.path,
            query,
            request.headers,
            signed,
            request.headers["x-acs-content-sha256"],
        )
        signature = v3_signature(credential.access_key_secret, canonical)
        request.headers["Authorization"] = (
            f"{V3_ALGORITHM} Credential={credential.access_key_id},SignedHeaders={';'.join(signed)},"
            f"Signature={signature}"
        )


class RpcV1Auth(_CredentialAuth):
    """RPC HMAC-SHA1: the common parameters and the signature travel in the query string."""

    def sign(self, request: httpx.Request, credential: Credential) -> None:
        params = parse_qsl(request.url.query.decode(), keep_blank_values=True)
        action = request.headers.pop("x-acs-action", None)
        version = request.headers.pop("x-acs-version", None)
        common = {
            "Format": "json",
            "Timestamp": utc_timestamp(),
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "AccessKeyId": credential.access_key_id,
        }
        if action:
            common["Action"] = action
        if version:
            common["Version"] = version
        if credential.security_token:
            common["SecurityToken"] = credential.security_token
        params = [(k, v) for k, v in params if k not in common] + sorted(common.items())
        signature = v1_signature(credential.access_key_secret, request.method, params)
        query = urlencode([*params, ("Signature", signature)], quote_via=quote)
        request.url = request.url.copy_with(query=query.encode())
