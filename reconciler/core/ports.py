"""The port the pipeline speaks to a BI service through: what the stages need from its access API.

The stages (resolve, refresh, apply) speak only this protocol: a directory of users and groups, the catalogue
of targets, each user's live grants, and authorize calls of at most `cap` cells. Adapters implement it beside
their clients (Quick BI's Smart Q: `reconciler.adapters.quickbi.QuickBIAccess`); their wire details stay behind it, and
nothing here imports a network library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from reconciler.core.embeds import DataRange, LiveEmbed
from reconciler.vocabulary.cells import CubeReadback, Target

if TYPE_CHECKING:  # a batch is only passed through here: no import of the planning stages at run time
    from reconciler.core.plan import Batch


class DirectoryUser(NamedTuple):
    """A user of the organisation (a named tuple: a tenant's directory is 10^5 of them, made in one go)."""

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


# DataArts Insight's ticket listing, as the ticket audit reads it: the documented paging window is a limit in
# [1, 1000] and an offset in [0, 1000]
LIST_LIMIT = 1000
LIST_OFFSET_LIMIT = 1000


@dataclass(frozen=True)
class Ticket:
    ticket: str
    embed_id: str
    user_id: str
    user_name: str
    left_num: int
    expire_time: str


@dataclass(frozen=True)
class TicketPage:
    count: int
    tickets: list[Ticket]
