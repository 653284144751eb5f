"""Opening a configured target: the access service for it, and for the embedded emulator the state it persists.

The emulator (and the web server it can run under) is imported only when an emulator target is opened: a run
against Quick BI never loads the test double.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.adapters.quickbi import ClientSettings, CredentialSource, QuickBIAccess, QuickBIClient, default_chain
from reconciler.application.config import Config, TargetConfig
from reconciler.core.audit import AuditLog
from reconciler.core.ports import AccessService
from reconciler.vocabulary.cells import CubeReadback
from reconciler.vocabulary.errors import Problem, ReconcilerError

if TYPE_CHECKING:  # Huawei Cloud's SDK is loaded only by a run against DataArts Insight
    from reconciler.adapters.dataarts import DataArtsClient


@dataclass
class Session:
    """An open target: its name, the service to talk to, and where its state lives."""

    name: str
    service: AccessService
    state_dir: Path
    exclusive: bool = False  # opened for an apply: no other apply of this target runs meanwhile

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
    elif target.qps is None and target.directory_qps is None:
        # an in-process emulator has no quota unless its faults set one (then it throttles, as Quick BI does)
        settings = replace(settings, paced=False)
    return settings


@contextlib.asynccontextmanager
async def open_target(
    config: Config, name: str | None, exclusive: bool = False, break_lock: bool = False
) -> AsyncIterator[Session]:
    """Yield a session over the target's state: as it is, or `exclusive`ly for an apply (locked, saved at the
    end, API calls written to its audit log). An embedded emulator's own state is saved whatever happened."""
    chosen, target = config.target(name)
    if target.dataarts is not None:
        raise ReconcilerError(
            Problem(
                f"target '{chosen}' is DataArts Insight, which has embed tickets only (ticket issue, ticket audit)",
                hint="choose a Quick BI target with --target",
            )
        )
    credentials = None
    if target.quickbi is not None:
        credentials = default_chain()
        await credentials()  # fail once, before any work starts, when there are none
    backend = config.state_backend(chosen, target)
    with backend.applying(break_lock) if exclusive else backend.reading() as state_dir:
        async with _session(config, chosen, target, state_dir, exclusive, credentials) as session:
            yield session


@contextlib.asynccontextmanager
async def _session(
    config: Config,
    chosen: str,
    target: TargetConfig,
    state_dir: Path,
    exclusive: bool,
    credentials: CredentialSource | None,
) -> AsyncIterator[Session]:
    observer = AuditLog(state_dir / "audit.jsonl") if exclusive else None
    settings = client_settings(target)
    if target.emulator is not None:
        from reconciler.emulator import Emulator

        state = config.resolve(target.emulator.state)
        source = state if state.exists() else config.resolve(target.emulator.org)
        emulator = Emulator.from_file(source, cube_readback=target.cube_readback, faults=target.emulator.faults)
        client = emulator.client(settings, observer=observer)
        try:
            async with client:
                yield Session(chosen, QuickBIAccess(client, target.cube_readback), state_dir, exclusive)
        finally:
            emulator.save(state)
        return
    assert target.quickbi is not None and credentials is not None
    async with QuickBIClient(target.quickbi.url, credentials, settings, observer=observer) as client:
        yield Session(chosen, QuickBIAccess(client, target.cube_readback), state_dir, exclusive)


@dataclass
class InsightSession:
    """An open DataArts Insight target: its ticket client, and where its audit log lives."""

    name: str
    client: DataArtsClient
    state_dir: Path


@contextlib.asynccontextmanager
async def open_insight(config: Config, name: str | None) -> AsyncIterator[InsightSession]:
    """Yield a session on a DataArts Insight target (the one named, or the only one configured). An emulated
    tenant's state is saved whatever happened."""
    from reconciler.adapters.dataarts import DataArtsClient, default_auth

    chosen, target = config.dataarts_target(name)
    assert target.dataarts is not None
    where = target.dataarts
    state_dir = config.state_dir(chosen, target)
    if where.emulator is None:
        async with DataArtsClient(where.url, where.project_id, default_auth(where.project_id)) as client:
            yield InsightSession(chosen, client, state_dir)
        return
    from reconciler.emulator.dataarts import InsightEmulator

    state = config.resolve(where.emulator.state)
    source = state if state.exists() else config.resolve(where.emulator.org)
    emulator = InsightEmulator.from_file(source, faults=where.emulator.faults)
    try:
        auth = emulator.auth(where.project_id)
        async with DataArtsClient(emulator.ENDPOINT, where.project_id, auth, emulator.transport()) as client:
            yield InsightSession(chosen, client, state_dir)
    finally:
        emulator.save(state)
