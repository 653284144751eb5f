"""DataArts Insight's ticket endpoints over httpx: `GET/POST /v1/{project_id}/tickets`.

Reads are retried on throttling (429), server errors and lost connections; creating a ticket is retried only
when the gateway refused it before it took effect (429), since a retry after a lost answer could mint a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from reconciler.core.ports import LIST_LIMIT, Ticket, TicketPage


class DataArtsError(Exception):
    """DataArts Insight answered with an error (`{"error_code", "error_msg"}`), or did not answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"DataArts Insight: {code}: {message} (HTTP {status})" if status else message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def refused_before_effect(self) -> bool:
        return self.status == 429

    @property
    def transient(self) -> bool:
        return self.status == 429 or self.status >= 500 or self.status == 0


class DataArtsClient:
    def __init__(
        self,
        endpoint: str,
        project_id: str,
        auth: httpx.Auth,
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 8,
        max_attempts: int = 5,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=endpoint, auth=auth, transport=transport, timeout=30)
        self._path = f"/v1/{project_id}/tickets"
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_attempts = max_attempts
        self.calls = 0

    async def __aenter__(self) -> DataArtsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def list_tickets(
        self, filters: Mapping[str, str], offset: int, limit: int = LIST_LIMIT, descending: bool = False
    ) -> TicketPage:
        params = {**filters, "offset": str(offset), "limit": str(limit), "sort_dir": "desc" if descending else "asc"}
        body = await self._retrying(lambda: self._send("GET", params=params), lambda e: e.transient)
        return TicketPage(int(body.get("count", 0)), [_ticket(item) for item in body.get("page_data") or []])

    async def create_ticket(self, embed_id: str, user_id: str, ticket_num: int) -> str:
        payload = {"embed_id": embed_id, "user_id": user_id, "ticket_num": ticket_num}
        body = await self._retrying(lambda: self._send("POST", json=payload), lambda e: e.refused_before_effect)
        return str(body["ticket"])

    async def _retrying(self, send: Any, retry: Any) -> dict[str, Any]:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_random_exponential(multiplier=0.1, max=5),
            retry=retry_if_exception(lambda e: isinstance(e, DataArtsError) and retry(e)),
            reraise=True,
        ):
            with attempt:
                result: dict[str, Any] = await send()
                return result
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def _send(self, method: str, **options: Any) -> dict[str, Any]:
        async with self._slots:
            self.calls += 1
            try:
                response = await self._http.request(method, self._path, **options)
            except httpx.TransportError as exc:
                raise DataArtsError(
                    0, "TransportFailure", f"DataArts Insight did not answer: {type(exc).__name__}"
                ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body if isinstance(body, dict) else {}
            raise DataArtsError(
                response.status_code,
                str(error.get("error_code", "Unknown")),
                str(error.get("error_msg", response.reason_phrase)),
            )
        return body


def _ticket(item: dict[str, Any]) -> Ticket:
    return Ticket(
        ticket=str(item.get("ticket", "")),
        embed_id=str(item.get("embed_id", "")),
        user_id=str(item.get("user_id", "")),
        user_name=str(item.get("user_name", "")),
        left_num=int(item.get("left_num") or 0),  # a string on the wire
        expire_time=str(item.get("expire_time", "")),
    )
