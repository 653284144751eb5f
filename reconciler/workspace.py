"""Opening a configured target: the access service for it, and for the embedded emulator the state it persists.

The emulator (and the web server it can run under) is imported only when an emulator target is opened: a run
against Quick BI never loads the test double.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.audit import AuditLog
from reconciler.cells import CubeReadback
from reconciler.config import Config, TargetConfig
from reconciler.quickbi import ClientSettings, QuickBIClient, default_chain
from reconciler.service import AccessService, QuickBIAccess


@dataclass
class Session:
    """An open target: its name, the service to talk to, and where its state lives."""

    name: str
    service: AccessService
    state_dir: Path

    @property
    def cube_readback(self) -> CubeReadback:
        return self.service.cube_readback


def client_settings(target: TargetConfig) -> ClientSettings:
    settings = ClientSettings(max_concurrency=target.max_concurrency)
    if target.qps is not None:
        directory_qps = target.directory_qps or min(target.qps, settings.directory_qps)
        settings = replace(settings, write_qps=target.qps, smartq_qps=target.qps, directory_qps=directory_qps)
    elif target.directory_qps is not None:
        settings = replace(settings, directory_qps=target.directory_qps)
    if target.quickbi is not None:
        settings = replace(settings, signature=target.quickbi.signature)
    return settings


@contextlib.asynccontextmanager
async def open_target(config: Config, name: str | None, audit: bool = False) -> AsyncIterator[Session]:
    """Yield a session; an embedded emulator's state is saved on the way out, whatever happened."""
    chosen, target = config.target(name)
    state_dir = config.state_dir(chosen, target)
    observer = AuditLog(state_dir / "audit.jsonl") if audit else None
    settings = client_settings(target)
    if target.emulator is not None:
        from reconciler.emulator import Emulator

        state = config.resolve(target.emulator.state)
        source = state if state.exists() else config.resolve(target.emulator.org)
        emulator = Emulator.from_file(source, cube_readback=target.cube_readback, faults=target.emulator.faults)
        client = emulator.client(settings, observer=observer)
        try:
            async with client:
                yield Session(chosen, QuickBIAccess(client, target.cube_readback), state_dir)
        finally:
            emulator.save(state)
        return
    assert target.quickbi is not None
    credentials = default_chain()
    await credentials()  # fail once, before any work starts, when there are none
    async with QuickBIClient(target.quickbi.url, credentials, settings, observer=observer) as client:
        yield Session(chosen, QuickBIAccess(client, target.cube_readback), state_dir)
