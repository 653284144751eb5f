"""Quick BI OpenAPI client: signing, credentials, typed operations, rate limits and retries."""

from reconciler.adapters.quickbi import models
from reconciler.adapters.quickbi._client import CallObserver, ClientSettings, QuickBIClient
from reconciler.adapters.quickbi._credentials import default_chain, static_credentials
from reconciler.adapters.quickbi.access import QuickBIAccess
from reconciler.adapters.quickbi.errors import QuickBIError, ThrottledError, TransportFailure
from reconciler.adapters.quickbi.signing import AcsV3Auth, Credential, CredentialSource, RpcV1Auth

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
