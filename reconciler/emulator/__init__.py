"""The built-in Quick BI emulator: a backend model (state and semantics) behind a wire-exact ASGI app."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from reconciler.adapters.quickbi import CallObserver, ClientSettings, QuickBIClient, static_credentials
from reconciler.emulator.backend import ApiError, Backend, Clock
from reconciler.emulator.limits import REQUEST_SECONDS
from reconciler.emulator.orgfile import OrgFile, read_org_file, write_org_file
from reconciler.emulator.wire import ConnectionDropped, EmulatorApp
from reconciler.vocabulary.cells import CubeReadback
from reconciler.vocabulary.fault_settings import FaultSettings

if TYPE_CHECKING:
    from reconciler.emulator.serve import BackgroundServer

IN_PROCESS_ENDPOINT = "http://quickbi-public.emulator.local"


class _InProcessTransport(httpx.AsyncBaseTransport):
    """`httpx.ASGITransport`, behaving as on a socket: a deliberately dropped answer is a transport error, and
    an answer slower than the client's read timeout is a timeout."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # a socket transport enforces the client's read timeout; an in-process call must too, or a slow
        # answer would hang the caller instead of failing like it would over the network
        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            return await asyncio.wait_for(self._inner.handle_async_request(request), timeout)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        except TimeoutError:
            raise httpx.ReadTimeout("the emulator did not answer within the read timeout", request=request) from None


def in_process_transport(app: Any) -> httpx.AsyncBaseTransport:
    """An emulator's ASGI app mounted in-process (no socket), failing as it would over the network."""
    return _InProcessTransport(app)


class Emulator:
    """One emulated organisation, reachable in-process or over loopback HTTP."""

    def __init__(
        self,
        org: OrgFile,
        clock: Clock | None = None,
        faults: FaultSettings | None = None,
        cube_readback: CubeReadback = "llm_cube",
    ) -> None:
        self.backend = Backend(org, clock, cube_readback)
        self.app = EmulatorApp(self.backend, faults)

    @classmethod
    def from_file(cls, path: Path, **options: object) -> Emulator:
        return cls(read_org_file(path), **options)  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        write_org_file(self.backend.to_org_file(), path)

    def transport(self) -> httpx.AsyncBaseTransport:
        return in_process_transport(self.app)

    def client(
        self,
        settings: ClientSettings | None = None,
        endpoint: str | None = None,
        observer: CallObserver | None = None,
    ) -> QuickBIClient:
        """A client for this emulator: in-process unless `endpoint` names a served copy."""
        key = self.backend.org.access_keys[0]
        if settings is None and endpoint is None:
            settings = ClientSettings(paced=False)  # in-process: no quota to keep to, unless faults set one
        return QuickBIClient(
            endpoint or IN_PROCESS_ENDPOINT,
            static_credentials(key.id, key.secret),
            settings,
            transport=None if endpoint else self.transport(),
            observer=observer,
        )

    def serve(
        self, host: str = "127.0.0.1", port: int = 0, request_seconds: float = REQUEST_SECONDS
    ) -> BackgroundServer:
        from reconciler.emulator.serve import BackgroundServer  # the web server only when serving

        return BackgroundServer(self.app, host, port, request_seconds)


__all__ = [
    "ApiError",
    "Backend",
    "Clock",
    "Emulator",
    "EmulatorApp",
    "FaultSettings",
    "OrgFile",
    "in_process_transport",
]
