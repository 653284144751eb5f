"""What the pipeline needs from a BI service's access API, and Quick BI as its implementation.

The stages (resolve, refresh, apply) speak only this protocol: a directory of users and groups, the catalogue
of targets, each user's live grants, and authorize calls of at most `cap` cells. Quick BI's Smart Q is the one
implementation today; its wire details (SmartqAuthorize's fields, CubeIds readback) stay behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.cells import CubeReadback, Target, shared_target
from reconciler.embeds import DataRange, LiveEmbed
from reconciler.quickbi import QuickBIClient, QuickBIError, TransportFailure
from reconciler.quickbi import models as m

if TYPE_CHECKING:  # a batch is only passed through here: no import of the planning stages at run time
    from reconciler.plan import Batch


@dataclass(frozen=True)
class DirectoryUser:
    user_id: str
    account: str
    deactivated: bool = False


@dataclass(frozen=True)
class DirectoryGroup:
    group_id: str
    name: str


@dataclass(frozen=True)
class CellFailure:
    """One cell an authorize call did not change, and why."""

    user: str
    target: Target
    operation: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.operation} {self.user} {self.target}: {self.code}: {self.message}"


class AccessService(Protocol):
    """A BI service's access API, as the pipeline uses it."""

    @property
    def cap(self) -> int:
        """Cells (users x targets) one authorize call may carry."""

    @property
    def cube_readback(self) -> CubeReadback: ...

    async def users(self) -> list[DirectoryUser]: ...

    async def groups(self) -> list[DirectoryGroup]: ...

    async def group_users(self, group_id: str) -> set[str]:
        """Every user of a group and, recursively, its sub-groups."""

    async def catalogue(self) -> dict[Target, str]:
        """Every grantable target with its display name."""

    async def dataset_has_smart_q(self, dataset_id: str) -> bool: ...

    async def user_targets(self, user_id: str) -> frozenset[Target]:
        """The targets a user may query now."""

    async def authorize(self, batch: Batch) -> list[CellFailure]:
        """Send one batch; the cells it did not change (the whole batch when the call itself failed)."""

    async def create_ticket(self, copilot_id: str, user_id: str, uses: int, minutes: int) -> str:
        """A ticket to an embedded Smart Q module for one user; never retried after an ambiguous failure."""

    async def embeds(self) -> dict[str, LiveEmbed]:
        """Every embedded Smart Q module with its data range, by module ID."""

    async def set_embed_range(self, copilot_id: str, data_range: DataRange) -> str | None:
        """Set a module's data range: None when done, else why not."""


class QuickBIAccess:
    """Quick BI Smart Q behind the protocol: SmartqAuthorize, QueryLlmCubeWithThemeListByUserId, the directory."""

    cap = 100

    def __init__(self, client: QuickBIClient, cube_readback: CubeReadback = "llm_cube") -> None:
        self.client = client
        self._cube_readback: CubeReadback = cube_readback

    @property
    def cube_readback(self) -> CubeReadback:
        return self._cube_readback

    async def users(self) -> list[DirectoryUser]:
        return [DirectoryUser(u.user_id, u.account_name, u.is_deleted) for u in await self.client.all_users()]

    async def groups(self) -> list[DirectoryGroup]:
        return [DirectoryGroup(g.user_group_id, g.user_group_name) for g in await self.client.all_groups()]

    async def group_users(self, group_id: str) -> set[str]:
        return await self.client.group_users(group_id)

    async def catalogue(self) -> dict[Target, str]:
        cubes, themes = await asyncio.gather(self.client.data_range("llmCube"), self.client.data_range("llmCubeTheme"))
        names = {Target("llm_cube", c.llm_cube_id): c.alias for c in cubes.llm_cubes}
        names.update({Target("theme", t.theme_id): t.theme_name for t in themes.themes})
        return names

    async def dataset_has_smart_q(self, dataset_id: str) -> bool:
        return await self.client.dataset_smartq_enabled(dataset_id)

    async def user_targets(self, user_id: str) -> frozenset[Target]:
        answer = await self.client.user_grants(user_id)
        cubes = [shared_target(self._cube_readback, c) for c in answer.cube_ids]
        return frozenset(cubes + [shared_target("theme", t) for t in answer.theme_ids])

    async def create_ticket(self, copilot_id: str, user_id: str, uses: int, minutes: int) -> str:
        request = m.CreateTicket4Copilot(copilot_id=copilot_id, user_id=user_id, ticket_num=uses, expire_time=minutes)
        return await self.client.create_copilot_ticket(request)

    async def embeds(self) -> dict[str, LiveEmbed]:
        return {c.copilot_id: _live_embed(c) for c in await self.client.copilot_embed_configs()}

    async def set_embed_range(self, copilot_id: str, data_range: DataRange) -> str | None:
        request = m.ModifyCopilotEmbedConfig(copilot_id=copilot_id, data_range=data_range.wire())
        try:
            done = await self.client.modify_copilot_embed_config(request)
        except (QuickBIError, TransportFailure) as exc:
            return str(exc)
        return None if done else "Quick BI answered Result=false"

    async def authorize(self, batch: Batch) -> list[CellFailure]:
        request = m.SmartqAuthorize(
            operation_type=0 if batch.operation == "grant" else 1,
            user_ids=batch.user_ids,
            llm_cubes=batch.llm_cubes or None,
            llm_cube_themes=batch.llm_cube_themes or None,
            cube_ids=batch.cube_ids or None,
            expire_day=batch.expire_day,
        )
        try:
            answer = await self.client.smartq_authorize(request)
        except (QuickBIError, TransportFailure) as exc:
            code = exc.code if isinstance(exc, QuickBIError) else "TransportFailure"
            message = exc.message if isinstance(exc, QuickBIError) else str(exc)
            return [CellFailure(user, target, batch.operation, code, message) for user, target in batch.cells()]
        # Result names the LlmCube even for a cube granted by dataset ID; such a failure matches no planned
        # cell, and the verification read afterwards reports the cell instead
        return [
            CellFailure(
                f.user_id,
                Target("llm_cube", f.llm_cube) if f.llm_cube else Target("theme", f.llm_cube_theme or ""),
                batch.operation,
                "CellFailed",
                f.detail_message,
            )
            for f in answer
        ]


class DirectoryOnce:
    """An AccessService that reads the directory and catalogue once, however many resolutions share it (e.g.
    a pull request's plan resolving both the base and the changed policy). Everything else passes through."""

    def __init__(self, service: AccessService) -> None:
        self._service = service
        self._reads: dict[tuple[str, str], asyncio.Future[Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def _once(self, key: tuple[str, str], read: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        if key not in self._reads:
            self._reads[key] = asyncio.ensure_future(read())
        return self._reads[key]

    async def users(self) -> list[DirectoryUser]:
        return list(await self._once(("users", ""), self._service.users))

    async def groups(self) -> list[DirectoryGroup]:
        return list(await self._once(("groups", ""), self._service.groups))

    async def catalogue(self) -> dict[Target, str]:
        return dict(await self._once(("catalogue", ""), self._service.catalogue))

    async def group_users(self, group_id: str) -> set[str]:
        return set(await self._once(("group", group_id), lambda: self._service.group_users(group_id)))


def _live_embed(config: m.CopilotEmbedConfig) -> LiveEmbed:
    """A module's data range as one kind, when Quick BI's answer can be read so (an "all" switch wins over
    lists, as ModifyCopilotEmbedConfig documents); otherwise described as it came."""
    wire = config.data_range or m.CopilotDataRange()
    candidates = [
        DataRange(kind="llm_cube", all=True) if wire.all_cube else None,
        DataRange(kind="theme", all=True) if wire.all_theme else None,
    ]
    if not any(candidates):
        candidates = [
            DataRange(kind="llm_cube", ids=tuple(sorted(wire.llm_cubes))) if wire.llm_cubes else None,
            DataRange(kind="theme", ids=tuple(sorted(wire.themes))) if wire.themes else None,
        ]
    found = [c for c in candidates if c is not None]
    if len(found) == 1:
        return LiveEmbed(config.copilot_id, config.show_name or config.module_name, found[0], found[0].describe())
    described = "no data range" if not found else " and ".join(c.describe() for c in found) + " (ambiguous)"
    return LiveEmbed(config.copilot_id, config.show_name or config.module_name, None, described)
