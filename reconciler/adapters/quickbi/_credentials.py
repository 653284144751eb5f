"""Where access keys come from: a fixed pair (the emulator) or the standard Alibaba Cloud credential chain."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from pathlib import Path

from reconciler.adapters.quickbi.signing import Credential, CredentialSource
from reconciler.vocabulary.errors import Problem, ReconcilerError

log = logging.getLogger("reconciler.credentials")
METADATA_HOST = "100.100.100.200"
# an ECS instance's metadata service answers in milliseconds; elsewhere the chain would spend 10-20 s on it
METADATA_PROBE_SECONDS = 1.0
_MISSING_HINT = (
    "set ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, a CLI profile, the OIDC role variables or run on ECS with a RAM role"
)


def static_credentials(
    access_key_id: str, access_key_secret: str, security_token: str | None = None
) -> CredentialSource:
    credential = Credential(access_key_id, access_key_secret, security_token)

    async def source() -> Credential:
        return credential

    return source


def configured_sources() -> list[str]:
    """The credential sources the environment names, cheapest first (no network)."""
    env = os.environ
    found = []
    if env.get("ALIBABA_CLOUD_ACCESS_KEY_ID"):
        found.append("environment")
    if env.get("ALIBABA_CLOUD_OIDC_TOKEN_FILE") and env.get("ALIBABA_CLOUD_ROLE_ARN"):
        found.append("OIDC role")
    home = Path(env.get("HOME") or Path.home())
    profile_files = [home / ".aliyun" / "config.json", home / ".alibabacloud" / "credentials.ini"]
    if env.get("ALIBABA_CLOUD_CREDENTIALS_FILE"):
        profile_files.append(Path(env["ALIBABA_CLOUD_CREDENTIALS_FILE"]))
    if any(path.is_file() for path in profile_files):
        found.append("profile file")
    if env.get("ALIBABA_CLOUD_CREDENTIALS_URI"):
        found.append("credentials URI")
    if env.get("ALIBABA_CLOUD_ECS_METADATA"):
        found.append("ECS RAM role")
    return found


def _metadata_service_answers() -> bool:
    try:
        with socket.create_connection((METADATA_HOST, 80), timeout=METADATA_PROBE_SECONDS):
            return True
    except OSError:
        return False


def _chain_failure(message: str) -> str:
    tried = re.findall(r"(\w+)CredentialsProvider: ", message)
    if tried:
        return f"no Alibaba Cloud credentials: every source in the chain failed ({', '.join(tried)}; -v for details)"
    return "no Alibaba Cloud credentials: the credential chain failed (-v for details)"


_PROVIDER = re.compile(r"(\w+CredentialsProvider): ")
_QUOTED = re.compile(r"'[^']*'?|\"[^\"]*\"?")


def _chain_details(message: str) -> str:
    """The chain's failure for -v, without what a credentials file holds: a parse error quotes the line it
    could not read, secret and all, so each source's reason is cut at its first line break and every quoted
    part is left out."""
    parts = _PROVIDER.split(message)[1:]
    details = []
    for name, text in zip(parts[::2], parts[1::2], strict=True):
        first = re.split(r"\\n|\n", text, maxsplit=1)[0]
        reason = _QUOTED.sub("…", first.rstrip("', ]\""))
        details.append(f"{name}: {reason}")
    return "; ".join(details) or "(not shown: the chain's message may quote a credentials file)"


def default_chain() -> CredentialSource:
    """The official chain: environment, OIDC role (CI runners), CLI profile file, ECS RAM role.

    The package caches temporary credentials and refreshes them before they expire, so asking per request is
    cheap and never signs with an expired STS token. The first answer is awaited once for all concurrent
    callers, and a failure is remembered: a run with no credentials fails once, in one line, within seconds.
    """
    key_id = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    key_secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if key_id and key_secret:
        # the chain's first source answers with exactly these, so the package (0.3 s of imports, aiohttp among
        # them) is loaded only when a later source has to be asked
        return static_credentials(key_id, key_secret, os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    if not configured_sources() and not _metadata_service_answers():
        raise ReconcilerError(
            Problem(
                "no Alibaba Cloud credentials: none in the environment, no profile file, no OIDC role variables, "
                "and no ECS metadata service answered",
                hint=_MISSING_HINT,
            )
        )
    from alibabacloud_credentials.client import Client

    # the package's modules give their logger a stream handler of their own as they are imported, and log
    # every failed refresh with a traceback; its failure reaches the user as our one line instead
    logging.getLogger("credentials").disabled = True
    client = Client()
    first = asyncio.Lock()
    failure: list[ReconcilerError] = []

    async def source() -> Credential:
        async with first:
            if failure:
                raise failure[0]
            try:
                model = await client.get_credential_async()
            except Exception as exc:  # the package raises its own and plain exceptions alike
                log.debug("credential chain: %s", _chain_details(str(exc)))
                failure.append(ReconcilerError(Problem(_chain_failure(str(exc)), hint=_MISSING_HINT)))
                raise failure[0] from None
        return Credential(model.access_key_id, model.access_key_secret, model.security_token or None)

    return source
