"""Huawei Cloud DataArts Insight's ticket API (embedded-analysis tickets): the client and its credentials."""

from reconciler.adapters.dataarts._auth import SdkSigning, TokenAuth, default_auth
from reconciler.adapters.dataarts._client import DataArtsClient, DataArtsError
from reconciler.core.ports import LIST_LIMIT, LIST_OFFSET_LIMIT, Ticket, TicketPage

__all__ = [
    "LIST_LIMIT",
    "LIST_OFFSET_LIMIT",
    "DataArtsClient",
    "DataArtsError",
    "SdkSigning",
    "Ticket",
    "TicketPage",
    "TokenAuth",
    "default_auth",
]
