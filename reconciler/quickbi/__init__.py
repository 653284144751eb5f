"""Quick BI OpenAPI client: signing, credentials, typed operations, rate limits and retries."""

from reconciler.quickbi import models
from reconciler.quickbi._client import CallObserver, ClientSettings, QuickBIClient
from reconciler.quickbi._credentials import default_chain, static_credentials
from reconciler.quickbi.access import QuickBIAccess
from reconciler.quickbi.errors import QuickBIError, ThrottledError, TransportFailure
from reconciler.quickbi.signing import AcsV3Auth, Credential, CredentialSource, RpcV1Auth

__all__ = [
    "AcsV3Auth",
    "CallObserver",
    "ClientSettings",
    "Credential",
    "CredentialSource",
    "QuickBIAccess",
    "QuickBIClient",
    "QuickBIError",
    "RpcV1Auth",
    "ThrottledError",
    "TransportFailure",
    "default_chain",
    "models",
    "static_credentials",
]
