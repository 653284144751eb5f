"""Where access keys come from: a fixed pair (the emulator) or the standard Alibaba Cloud credential chain."""

from __future__ import annotations

from reconciler.errors import Problem, ReconcilerError
from reconciler.quickbi._signing import Credential, CredentialSource


def static_credentials(
    access_key_id: str, access_key_secret: str, security_token: str | None = None
) -> CredentialSource:
    credential = Credential(access_key_id, access_key_secret, security_token)

    async def source() -> Credential:
        return credential

    return source


def default_chain() -> CredentialSource:
    """The official chain: environment, OIDC role (CI runners), CLI profile file, ECS RAM role.

    The package caches temporary credentials and refreshes them before they expire, so asking per request is
    cheap and never signs with an expired STS token.
    """
    from alibabacloud_credentials.client import Client

    client = Client()

    async def source() -> Credential:
        try:
            model = await client.get_credential_async()
        except Exception as exc:  # the package raises its own and plain exceptions alike
            raise ReconcilerError(
                Problem(
                    f"no Alibaba Cloud credentials: {str(exc).splitlines()[0][:300]}",
                    hint="set ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, a CLI profile, the OIDC role variables "
                    "or an ECS RAM role",
                )
            ) from None
        return Credential(model.access_key_id, model.access_key_secret, model.security_token or None)

    return source
