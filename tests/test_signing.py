"""Both signature kinds reproduce the vendor's published test vectors exactly."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import parse_qsl

import httpx

from reconciler.adapters.quickbi import AcsV3Auth, RpcV1Auth, static_credentials
from reconciler.adapters.quickbi.signing import (
    EMPTY_SHA256,
    Credential,
    canonical_query,
    percent_encode,
    v1_signature,
    v3_canonical_request,
    v3_signature,
)


def test_v3_vector_from_the_signature_documentation() -> None:
    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-version": "2014-05-26",
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-content-sha256": EMPTY_SHA256,
    }
    query = [("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd"), ("RegionId", "cn-shanghai")]
    signed = sorted(headers)
    canonical = v3_canonical_request("POST", "/", query, headers, signed, EMPTY_SHA256)
    assert hashlib.sha256(canonical.encode()).hexdigest() == (
        "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    )
    assert v3_signature("YourAccessKeySecret", canonical) == (
        "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )


def test_v1_vector_from_the_rpc_documentation() -> None:
    params = {
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "Format": "XML",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Timestamp": "2016-02-23T12:46:24Z",
        "Version": "2014-05-26",
    }
    assert v1_signature("testsecret", "GET", params.items()) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_percent_encoding_rules() -> None:
    assert percent_encode("a b*c~d,e+") == "a%20b%2Ac~d%2Ce%2B"
    assert canonical_query([("b", "2"), ("a", "x y")]) == "a=x%20y&b=2"


def _signed(auth: httpx.Auth) -> httpx.Request:
    request = httpx.Request(
        "POST",
        "https://quickbi-public.cn-hangzhou.aliyuncs.com/",
        params={"UserIds": "u1,u 2", "LlmCubes": "c~1*x"},
        headers={"x-acs-action": "SmartqAuthorize", "x-acs-version": "2022-01-01"},
    )
    flow = auth.async_auth_flow(request)
    return asyncio.run(flow.__anext__())


def test_v3_auth_flow_signs_what_a_verifier_recomputes() -> None:
    request = _signed(AcsV3Auth(static_credentials("ak", "sk", "sts-token")))
    authorization = request.headers["authorization"]
    fields = dict(part.split("=", 1) for part in authorization.split(" ", 1)[1].split(","))
    signed = fields["SignedHeaders"].split(";")
    assert {"host", "x-acs-action", "x-acs-date", "x-acs-security-token"} <= set(signed)
    query = parse_qsl(request.url.query.decode(), keep_blank_values=True)
    canonical = v3_canonical_request("POST", "/", query, request.headers, signed, EMPTY_SHA256)
    assert v3_signature("sk", canonical) == fields["Signature"]


def test_v1_auth_flow_moves_action_into_the_query() -> None:
    request = _signed(RpcV1Auth(static_credentials("ak", "sk")))
    params = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
    assert params["Action"] == "SmartqAuthorize" and params["SignatureMethod"] == "HMAC-SHA1"
    signature = params.pop("Signature")
    assert v1_signature("sk", "POST", params.items()) == signature


def test_credentials_never_show_their_secrets() -> None:
    text = repr(Credential("AKID", "very-secret", "sts-token"))
    assert "very-secret" not in text and "sts-token" not in text and "AKID" in text
