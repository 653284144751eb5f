"""Credentials for DataArts Insight, as `httpx.Auth` flows: an IAM token in `X-Auth-Token`, or AK/SK signing
done by Huawei Cloud's own SDK core (SDK-HMAC-SHA256), never by a signer of ours."""

from __future__ import annotations

import logging
import os
from collections.abc import Generator
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import httpx

from reconciler.vocabulary.errors import Problem, ReconcilerError

if TYPE_CHECKING:  # the SDK is imported when credentials are made, not by every run that imports this package
    from huaweicloudsdkcore.auth.credentials import Credentials

# ours, not the SDK's: an IAM user token (what IAM returns in X-Subject-Token), for token authentication
TOKEN_VARIABLE = "HUAWEICLOUD_IAM_TOKEN"


class TokenAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "TokenAuth(****)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Auth-Token"] = self._token
        yield request


class SdkSigning(httpx.Auth):
    """Sign each request with the SDK core's signer over exactly what httpx will send."""

    requires_request_body = True

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def __repr__(self) -> str:
        return "SdkSigning(****)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from huaweicloudsdkcore.sdk_request import SdkRequest

        headers = {"Host": request.headers["host"]}
        if "content-type" in request.headers:
            headers["Content-Type"] = request.headers["content-type"]
        signed = self._credentials.sign_request(
            SdkRequest(
                method=request.method,
                schema=request.url.scheme,
                host=request.headers["host"],
                resource_path=request.url.path,
                query_params=parse_qsl(request.url.query.decode(), keep_blank_values=True),
                header_params=headers,
                body=request.content or None,
            )
        )
        # what the signer added (date, signature, project, security token) goes out exactly as it signed it
        for name, value in signed.header_params.items():
            if name.lower() != "host":
                request.headers[name] = value
        yield request


def default_auth(project_id: str) -> httpx.Auth:
    """The caller's credentials: an IAM token from HUAWEICLOUD_IAM_TOKEN, else the SDK's own providers
    (GitHub-style OIDC, HUAWEICLOUD_SDK_AK/SK environment, the credentials profile file). The instance
    metadata service is not probed: a machine outside Huawei Cloud would wait on it for nothing."""
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        return TokenAuth(token)
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.auth.provider import (
        CredentialProviderChain,
        EnvCredentialProvider,
        OidcStsCredentialProvider,
        ProfileCredentialProvider,
    )

    chain = CredentialProviderChain(
        (
            OidcStsCredentialProvider.get_basic(),
            EnvCredentialProvider.get_basic(),
            ProfileCredentialProvider.get_basic(),
        )
    )
    logging.getLogger("huaweicloudsdkcore").setLevel(logging.CRITICAL)  # its failures are reported below, once
    try:
        credentials = chain.get_credentials()
    except Exception:  # the SDK raises its own error kinds per provider; any of them means "none usable"
        raise ReconcilerError(
            Problem(
                "no Huawei Cloud credentials found",
                hint=f"set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or a credentials profile, or {TOKEN_VARIABLE})",
            )
        ) from None
    if isinstance(credentials, BasicCredentials) and not credentials.project_id:
        credentials.project_id = project_id
    return SdkSigning(credentials)
