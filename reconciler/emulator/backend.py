"""The emulated Quick BI organisation: state and semantics, with no knowledge of the wire format.

Each public method is one API operation, taking typed arguments and returning plain data shaped like the
API's `Result`. Business errors raise `ApiError`; the wire layer turns them into Quick BI's error envelope.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core

from reconciler.emulator.orgfile import OrgFile, OrgGrant, OrgTicket
from reconciler.vocabulary.cells import CubeReadback, ResourceKind

MAX_CELLS_PER_CALL = 100
DEFAULT_GRANT_DAYS = 7
MAX_PAGE_SIZE = 1000
GrantKey = tuple[str, ResourceKind, str]


class ApiError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def invalid(detail: str) -> ApiError:
    return ApiError("Invalid.Parameter.Error", f"The parameter is invalid:{detail}.")


def user_not_found() -> ApiError:
    return ApiError("ApiUser.Not.Exists", "The specified user does not exist.")


@dataclass
class Clock:
    """The emulator's notion of now; tests move it to make grants and tickets expire."""

    fixed: dt.datetime | None = None

    def now(self) -> dt.datetime:
        return self.fixed or dt.datetime.now(dt.UTC)

    def today(self) -> dt.date:
        return self.now().date()


class GrantStore:
    """Live Smart Q grants indexed by user: reading one user's grants costs that user's grants, as in Quick BI,
    not a scan of the organisation's. Expired grants are dropped when read, as Quick BI stops honouring them."""

    def __init__(self) -> None:
        self._by_user: dict[str, dict[tuple[ResourceKind, str], dt.date]] = {}

    def put(self, user: str, kind: ResourceKind, target: str, day: dt.date) -> None:
        self._by_user.setdefault(user, {})[(kind, target)] = day

    def drop(self, user: str, kind: ResourceKind, target: str) -> None:
        held = self._by_user.get(user)
        if held is not None:
            held.pop((kind, target), None)

    def of_user(self, user: str, today: dt.date) -> dict[tuple[ResourceKind, str], dt.date]:
        held = self._by_user.get(user, {})
        for key in [key for key, day in held.items() if day < today]:
            del held[key]
        return dict(held)

    def every(self, today: dt.date) -> dict[GrantKey, dt.date]:
        return {
            (user, kind, target): day
            for user in list(self._by_user)
            for (kind, target), day in self.of_user(user, today).items()
        }


class Backend:
    """Quick BI's Smart Q, directory and embedding APIs over one organisation's state."""

    def __init__(self, org: OrgFile, clock: Clock | None = None, cube_readback: CubeReadback = "llm_cube") -> None:
        self.org = org
        self.clock = clock or Clock()
        # QueryLlmCubeWithThemeListByUserId's CubeIds keys: the reference says dataset IDs (UNCONFIRMED)
        self.cube_readback = cube_readback
        self.lock = threading.RLock()
        self.users = {u.id: u for u in org.users}
        self.groups = {g.id: g for g in org.groups}
        self.llm_cubes = {c.id: c for c in org.llm_cubes}
        self.themes = {t.id: t for t in org.themes}
        self.copilots = {c.id: c for c in org.copilots}
        self.grants = GrantStore()
        for grant in org.grants:
            kind: ResourceKind = "llm_cube" if grant.llm_cube else "theme"
            self.grants.put(grant.user, kind, grant.llm_cube or grant.theme or "", grant.expire_day)
        self.tickets: dict[str, OrgTicket] = {t.ticket: t for t in org.tickets}
        self.authorize_calls = 0

    # ---- state -------------------------------------------------------------------------------------

    def secret_for(self, access_key_id: str) -> str | None:
        return next((k.secret for k in self.org.access_keys if k.id == access_key_id), None)

    def caller_of(self, access_key_id: str) -> str:
        return next((k.caller for k in self.org.access_keys if k.id == access_key_id), "outsider")

    def live_grants(self) -> dict[GrantKey, dt.date]:
        """Grants in force today; expired ones are dropped, as Quick BI stops honouring them."""
        with self.lock:
            return self.grants.every(self.clock.today())

    def to_org_file(self) -> OrgFile:
        with self.lock:
            grants = [
                OrgGrant(user=u, expire_day=day, **{kind: target})
                for (u, kind, target), day in sorted(self.live_grants().items())
            ]
            now = self.clock.now()
            tickets = [t for t in self.tickets.values() if t.expires_at > now and t.uses_left > 0]
            copilots = list(self.copilots.values())
            return self.org.model_copy(update={"grants": grants, "tickets": tickets, "copilots": copilots})

    # ---- Smart Q authorisation ---------------------------------------------------------------------

    def smartq_authorize(
        self,
        operation_type: int,
        user_ids: list[str],
        llm_cubes: list[str],
        themes: list[str],
        cube_ids: list[str],
        expire_day: str | None,
        fail_cell: Callable[[], bool] | None = None,
        skip_cell: Callable[[], bool] | None = None,
    ) -> list[dict[str, str]]:
        """Grant (0) or delete (1) every cell of users x targets; the failed cells are returned, not raised.

        `fail_cell` lets the fault injector fail single cells the way a half-successful call does; `skip_cell`
        leave them undone while reporting success, the way only a read-back can catch.
        """
        if operation_type not in (0, 1):
            raise invalid("OperationType")
        if not user_ids:
            raise ApiError("System.Param.Empty", "You must specify the UserIds parameter.")
        targets = len(llm_cubes) + len(themes) + len(cube_ids)
        if targets == 0:
            raise invalid("LlmCubes, LlmCubeThemes or CubeIds")
        if len(user_ids) * targets > MAX_CELLS_PER_CALL:
            raise invalid(f"users x (llmCubes + themes) must not exceed {MAX_CELLS_PER_CALL}")
        day = self._expire_day(expire_day) if operation_type == 0 else None
        by_dataset = {c.dataset: c.id for c in self.llm_cubes.values() if c.dataset}
        for dataset in cube_ids:
            if dataset not in by_dataset:
                raise ApiError("Invalid.Parameter.Error", f"The Q&A resource does not exist for cube {dataset}.")
        cubes = list(dict.fromkeys([*llm_cubes, *(by_dataset[d] for d in cube_ids)]))
        failures: list[dict[str, str]] = []
        with self.lock:
            self.authorize_calls += 1
            for user in dict.fromkeys(user_ids):
                for kind, target_ids in (("llm_cube", cubes), ("theme", list(dict.fromkeys(themes)))):
                    for target in target_ids:
                        reason = self._cell_problem(user, kind, target)  # type: ignore[arg-type]
                        if not reason and fail_cell is not None and fail_cell():
                            reason = "INTERNAL_ERROR"
                        if reason:
                            failures.append(_failure(user, kind, target, reason))  # type: ignore[arg-type]
                        elif skip_cell is not None and skip_cell():
                            continue
                        elif operation_type == 0:
                            self.grants.put(user, kind, target, day)  # type: ignore[arg-type]
                        else:
                            self.grants.drop(user, kind, target)  # type: ignore[arg-type]
        return failures

    def _expire_day(self, value: str | None) -> dt.date:
        today = self.clock.today()
        if not value:
            return today + dt.timedelta(days=DEFAULT_GRANT_DAYS)
        try:
            # fromisoformat also takes forms such as 2030-W01-1 or 20300101: only yyyy-MM-dd is the API's
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise invalid("ExpireDay must be a date written yyyy-MM-dd") from None
        if day < today:
            raise invalid("ExpireDay must not be in the past")
        return day

    def _cell_problem(self, user: str, kind: ResourceKind, target: str) -> str:
        if user not in self.users or self.users[user].deleted:
            return "USER_NOT_EXIST"
        if kind == "llm_cube" and target not in self.llm_cubes:
            return "LLM_CUBE_NOT_EXIST"
        if kind == "theme" and target not in self.themes:
            return "LLM_CUBE_THEME_NOT_EXIST"
        return ""

    def query_llm_cube_with_theme_list(self, user_id: str) -> dict[str, dict[str, str]]:
        self._user(user_id)
        cubes: dict[str, str] = {}
        themes: dict[str, str] = {}
        with self.lock:
            held = self.grants.of_user(user_id, self.clock.today())
        for kind, target in sorted(held):
            if kind == "llm_cube":
                cube = self.llm_cubes[target]
                key = cube.dataset if self.cube_readback == "dataset" and cube.dataset else cube.id
                cubes[key] = cube.alias
            else:
                themes[target] = self.themes[target].name
        return {"CubeIds": cubes, "ThemeIds": themes}

    def query_smartq_permission(self, cube_id: str, user_id: str) -> dict[str, Any]:
        self._user(user_id)
        cube = self._cube_by_dataset(cube_id)
        with self.lock:
            granted = ("llm_cube", cube.id) in self.grants.of_user(user_id, self.clock.today())
        return {"CubeId": cube_id, "CubeName": cube.alias, "HasPerssion": granted}

    def query_dataset_smartq_status(self, cube_id: str) -> bool:
        return any(c.dataset == cube_id for c in self.llm_cubes.values())

    def _cube_by_dataset(self, dataset: str) -> Any:
        for cube in self.llm_cubes.values():
            if cube.dataset == dataset:
                return cube
        raise ApiError("Cube.Not.Exist", "The dataset does not exist or has no Q&A resource.")

    def query_data_range(self, kind: str, keyword: str | None) -> dict[str, list[dict[str, Any]]]:
        if kind not in ("llmCube", "llmCubeTheme"):
            raise invalid("Type must be llmCube or llmCubeTheme")

        def matches(name: str) -> bool:
            return not keyword or keyword.lower() in name.lower()

        def cube_model(cube_id: str) -> dict[str, str]:
            cube = self.llm_cubes[cube_id]
            return {"LlmCubeId": cube.id, "Alias": cube.alias, "CreateUser": cube.create_user}

        cubes = [cube_model(c.id) for c in self.llm_cubes.values() if kind == "llmCube" and matches(c.alias)]
        themes = [
            {
                "ThemeId": t.id,
                "ThemeName": t.name,
                "CreateUser": t.create_user,
                "ApiCopilotLlmCubeModels": [cube_model(c) for c in t.llm_cubes if c in self.llm_cubes],
            }
            for t in self.themes.values()
            if kind == "llmCubeTheme" and matches(t.name)
        ]
        return {"ApiCopilotLlmCubeModels": cubes, "ApiCopilotThemeModels": themes}

    # ---- directory ---------------------------------------------------------------------------------

    def _user(self, user_id: str) -> Any:
        user = self.users.get(user_id)
        if user is None:
            raise user_not_found()
        return user

    def _user_info(self, user: Any) -> dict[str, Any]:
        return {
            "UserId": user.id,
            "AccountId": user.account_id or "",
            "AccountName": user.account,
            "NickName": user.nick,
            "UserType": user.user_type,
            "AdminUser": False,
            "AuthAdminUser": False,
            "RoleIdList": [],
            "IsDeleted": user.deleted,
        }

    def query_user_info_by_account(self, account: str, parent_account: str | None) -> dict[str, Any]:
        name = account.split("@", 1)[0]
        for user in self.users.values():
            if name in (user.account, user.account_id):
                return self._user_info(user)
        raise user_not_found()

    def query_user_info_by_user_id(self, user_id: str) -> dict[str, Any]:
        return self._user_info(self._user(user_id))

    def query_user_list(self, keyword: str | None, page_num: int, page_size: int) -> dict[str, Any]:
        if page_num < 1:
            raise invalid("PageNum")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise invalid(f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
        if keyword:
            wanted = keyword.lower()
            users = [u for u in self.users.values() if wanted in u.account.lower() or wanted in u.nick.lower()]
        else:  # a copy of the values at C speed: a tenant of 100,000 users is read in 100 pages
            users = list(self.users.values())
        start = (page_num - 1) * page_size
        page = users[start : start + page_size]
        return {
            "Data": [self._user_info(u) for u in page],
            "PageNum": page_num,
            "PageSize": page_size,
            "TotalNum": len(users),
            "TotalPages": (len(users) + page_size - 1) // page_size,
        }

    def query_user_group_member(self, group_id: str, keyword: str | None) -> list[dict[str, Any]]:
        group = self.groups.get(group_id)
        if group is None:
            raise ApiError("Invalid.Parameter.Error", f"The parameter is invalid:UserGroupId {group_id}.")
        members: list[dict[str, Any]] = []
        for child in self.groups.values():
            if child.parent == group_id:
                members.append(_member(child.id, child.name, True, group.id, group.name))
        for user_id in group.members:
            user = self.users.get(user_id)
            if user is not None:
                members.append(_member(user.id, user.nick or user.account, False, group.id, group.name))
        return [m for m in members if not keyword or keyword.lower() in m["Name"].lower()]

    def query_user_group_list_by_parent_id(self, parent_id: str) -> list[dict[str, Any]]:
        parent = None if parent_id == "-1" else parent_id
        if parent is not None and parent not in self.groups:
            raise invalid(f"ParentUserGroupId {parent_id}")
        return [
            {
                "UserGroupId": g.id,
                "UserGroupName": g.name,
                "UserGroupDescription": "",
                "ParentUserGroupId": g.parent or "-1",
                "IdentifiedPath": self._group_path(g.id),
                "CreateUser": "u-admin",
                "CreateTime": "2024-01-01 00:00:00",
                "ModifyUser": "u-admin",
                "ModifiedTime": "2024-01-01 00:00:00",
            }
            for g in self.groups.values()
            if g.parent == parent
        ]

    def _group_path(self, group_id: str) -> str:
        path: list[str] = []
        current: str | None = group_id
        while current is not None and current not in path:
            path.append(current)
            current = self.groups[current].parent if current in self.groups else None
        return "/".join(reversed(path))

    # ---- embedding ---------------------------------------------------------------------------------

    def create_ticket_for_copilot(
        self,
        copilot_id: str,
        ticket_num: int,
        expire_minutes: int,
        user_id: str | None,
        account_name: str | None,
        account_type: int | None,
    ) -> str:
        if copilot_id not in self.copilots:
            raise invalid(f"CopilotId {copilot_id}")
        if not 1 <= ticket_num <= 99999:
            raise invalid("TicketNum must be between 1 and 99999")
        if not 1 <= expire_minutes <= 240:
            raise invalid("ExpireTime must be between 1 and 240 minutes")
        if user_id:
            user = self._user(user_id)
        elif account_name:
            if account_type is None:
                raise ApiError("System.Param.Empty", "You must specify the AccountType parameter.")
            user = self.users[self.query_user_info_by_account(account_name.split(":")[-1], None)["UserId"]]
        else:
            raise ApiError("System.Param.Empty", "You must specify the UserId or AccountName parameter.")
        ticket = str(uuid.uuid4())
        expires_at = self.clock.now() + dt.timedelta(minutes=expire_minutes)
        with self.lock:
            self.tickets[ticket] = OrgTicket(
                ticket=ticket, copilot=copilot_id, user=user.id, uses_left=ticket_num, expires_at=expires_at
            )
        return ticket

    def query_copilot_embed_config(self, keyword: str | None) -> list[dict[str, Any]]:
        return [
            {
                "CopilotId": c.id,
                "ShowName": c.name,
                "ModuleName": c.name,
                "AgentName": c.name,
                "CreateUser": "u-admin",
                "CreateUserName": "admin",
                "ModifyUser": "u-admin",
                "DataRange": {
                    "AllTheme": c.all_themes,
                    "AllCube": c.all_cubes,
                    "Themes": c.themes,
                    "LlmCubes": c.llm_cubes,
                },
            }
            for c in self.copilots.values()
            if not keyword or keyword.lower() in c.name.lower()
        ]

    def modify_copilot_embed_config(
        self, copilot_id: str, data_range: str | None, module_name: str | None, agent_name: str | None
    ) -> bool:
        """Set a module's data range: JSON with one lower-camel-case key, an "all" switch or a list of one kind."""
        if copilot_id not in self.copilots:
            raise invalid(f"CopilotId {copilot_id}")
        if module_name is not None and len(module_name) > 20:
            raise ApiError("Copilot.Modulename.Error", "ModuleName max length limit 20.")
        if agent_name is not None and len(agent_name) > 50:
            raise ApiError("Copilot.AgentName.Error", "AgentName max length limit 50.")
        update: dict[str, Any] = {}
        if data_range is not None:
            update = _data_range(data_range, set(self.llm_cubes), set(self.themes))
        if module_name is not None:
            update["name"] = module_name
        with self.lock:
            self.copilots[copilot_id] = self.copilots[copilot_id].model_copy(update=update)
        return True


def _data_range(text: str, cubes: set[str], themes: set[str]) -> dict[str, Any]:
    try:
        value = pydantic_core.from_json(text)  # bounded: depth, number sizes (limits.py)
    except ValueError as exc:
        raise invalid(f"DataRange is not JSON within the limits ({exc})") from None
    if not isinstance(value, dict) or len(value) != 1:
        raise invalid("DataRange takes exactly one of allTheme, allCube, llmCubes, themes")
    ((key, item),) = value.items()
    cleared = {"all_cubes": False, "all_themes": False, "llm_cubes": [], "themes": []}
    if key in ("allCube", "allTheme") and item is True:
        return {**cleared, "all_cubes" if key == "allCube" else "all_themes": True}
    if key in ("llmCubes", "themes") and isinstance(item, list) and all(isinstance(i, str) for i in item):
        known = cubes if key == "llmCubes" else themes
        unknown = sorted(set(item) - known)
        if unknown:
            raise invalid(f"DataRange {key} {unknown[0]}")
        return {**cleared, "llm_cubes" if key == "llmCubes" else "themes": list(item)}
    raise invalid(f"DataRange key {key!r}")


def _failure(user: str, kind: ResourceKind, target: str, reason: str) -> dict[str, str]:
    return {
        "UserId": user,
        "LlmCube": target if kind == "llm_cube" else "",
        "LlmCubeTheme": target if kind == "theme" else "",
        "DetailMessage": reason,
    }


def _member(member_id: str, name: str, is_group: bool, parent_id: str, parent_name: str) -> dict[str, Any]:
    return {
        "Id": member_id,
        "Name": name,
        "IsUserGroup": is_group,
        "ParentUserGroupId": parent_id,
        "ParentUserGroupName": parent_name,
    }
