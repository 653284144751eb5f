"""Quick BI's Smart Q behind the pipeline's port (`reconciler.core.ports.AccessService`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from reconciler.adapters.quickbi import models as m
from reconciler.adapters.quickbi._client import QuickBIClient
from reconciler.adapters.quickbi.errors import QuickBIError, TransportFailure
from reconciler.core.embeds import DataRange, LiveEmbed
from reconciler.core.ports import CellFailure, DirectoryGroup, DirectoryUser
from reconciler.vocabulary.cells import CubeReadback, Target, shared_target

if TYPE_CHECKING:
    from reconciler.core.plan import Batch


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
            llm_cubes=batch.ids("llm_cube") or None,
            llm_cube_themes=batch.ids("theme") or None,
            cube_ids=batch.ids("dataset") or None,
            expire_day=batch.expire_day.isoformat() if batch.expire_day else None,
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
