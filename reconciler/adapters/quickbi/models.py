"""Requests and responses of the Quick BI operations the product uses, with the wire names of the reference."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

ApiGroup = Literal["write", "smartq", "directory"]


class ApiRequest(BaseModel):
    """One operation's parameters. Lists travel comma-joined and booleans as True/False, as the SDK sends them."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)
    action: ClassVar[str]
    group: ClassVar[ApiGroup] = "smartq"
    # a retry after an ambiguous failure (the request may have arrived) must not repeat the effect
    idempotent: ClassVar[bool] = True

    def to_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        for name, value in self.model_dump(by_alias=True, exclude_none=True).items():
            if isinstance(value, list):
                params[name] = ",".join(value)
            elif isinstance(value, bool):
                params[name] = str(value)
            else:
                params[name] = str(value)
        return params


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# ---- Smart Q ------------------------------------------------------------------------------------------


class SmartqAuthorize(ApiRequest):
    action = "SmartqAuthorize"
    group = "write"
    operation_type: Literal[0, 1] = Field(alias="OperationType")
    user_ids: list[str] = Field(alias="UserIds")
    llm_cubes: list[str] | None = Field(default=None, alias="LlmCubes")
    llm_cube_themes: list[str] | None = Field(default=None, alias="LlmCubeThemes")
    cube_ids: list[str] | None = Field(default=None, alias="CubeIds")
    expire_day: str | None = Field(default=None, alias="ExpireDay")


class AuthorizeFailure(_Wire):
    user_id: str = Field(alias="UserId")
    llm_cube: str | None = Field(default=None, alias="LlmCube")
    llm_cube_theme: str | None = Field(default=None, alias="LlmCubeTheme")
    detail_message: str = Field(default="", alias="DetailMessage")


class QueryLlmCubeWithThemeListByUserId(ApiRequest):
    action = "QueryLlmCubeWithThemeListByUserId"
    user_id: str = Field(alias="UserId")


class UserSmartqGrants(_Wire):
    cube_ids: dict[str, str] = Field(default_factory=dict, alias="CubeIds")
    theme_ids: dict[str, str] = Field(default_factory=dict, alias="ThemeIds")


class QuerySmartqPermissionByCubeId(ApiRequest):
    action = "QuerySmartqPermissionByCubeId"
    cube_id: str = Field(alias="CubeId")
    user_id: str = Field(alias="UserId")


class SmartqPermission(_Wire):
    cube_id: str = Field(alias="CubeId")
    cube_name: str = Field(default="", alias="CubeName")
    has_permission: bool = Field(alias="HasPerssion")  # sic: the wire name is misspelt


class QueryDatasetSmartqStatus(ApiRequest):
    action = "QueryDatasetSmartqStatus"
    cube_id: str = Field(alias="CubeId")


class QueryDataRange(ApiRequest):
    action = "QueryDataRange"
    type: Literal["llmCube", "llmCubeTheme"] = Field(alias="Type")
    keyword: str | None = Field(default=None, alias="Keyword")


class LlmCubeModel(_Wire):
    llm_cube_id: str = Field(alias="LlmCubeId")
    alias: str = Field(default="", alias="Alias")
    create_user: str = Field(default="", alias="CreateUser")


class ThemeModel(_Wire):
    theme_id: str = Field(alias="ThemeId")
    theme_name: str = Field(default="", alias="ThemeName")
    llm_cubes: list[LlmCubeModel] = Field(default_factory=list, alias="ApiCopilotLlmCubeModels")


class DataRange(_Wire):
    llm_cubes: list[LlmCubeModel] = Field(default_factory=list, alias="ApiCopilotLlmCubeModels")
    themes: list[ThemeModel] = Field(default_factory=list, alias="ApiCopilotThemeModels")


# ---- directory ----------------------------------------------------------------------------------------


class QueryUserInfoByAccount(ApiRequest):
    action = "QueryUserInfoByAccount"
    group = "directory"
    account: str = Field(alias="Account")
    parent_account_name: str | None = Field(default=None, alias="ParentAccountName")


class QueryUserInfoByUserId(ApiRequest):
    action = "QueryUserInfoByUserId"
    group = "directory"
    user_id: str = Field(alias="UserId")


class UserInfo(_Wire):
    user_id: str = Field(alias="UserId")
    account_name: str = Field(default="", alias="AccountName")
    nick_name: str = Field(default="", alias="NickName")
    account_id: str | None = Field(default=None, alias="AccountId")
    user_type: int | None = Field(default=None, alias="UserType")
    is_deleted: bool = Field(default=False, alias="IsDeleted")


class QueryUserList(ApiRequest):
    action = "QueryUserList"
    group = "directory"
    keyword: str | None = Field(default=None, alias="Keyword")
    page_num: int = Field(default=1, alias="PageNum")
    page_size: int = Field(default=1000, alias="PageSize")


class UserPage(_Wire):
    data: list[UserInfo] = Field(default_factory=list, alias="Data")
    page_num: int = Field(alias="PageNum")
    total_pages: int = Field(alias="TotalPages")
    total_num: int = Field(alias="TotalNum")


class QueryUserGroupMember(ApiRequest):
    action = "QueryUserGroupMember"
    group = "directory"
    user_group_id: str = Field(alias="UserGroupId")
    keyword: str | None = Field(default=None, alias="Keyword")


class GroupMember(_Wire):
    id: str = Field(alias="Id")
    name: str = Field(default="", alias="Name")
    is_user_group: bool = Field(alias="IsUserGroup")


class QueryUserGroupListByParentId(ApiRequest):
    action = "QueryUserGroupListByParentId"
    group = "directory"
    parent_user_group_id: str = Field(alias="ParentUserGroupId")


class UserGroup(_Wire):
    user_group_id: str = Field(alias="UserGroupId")
    user_group_name: str = Field(alias="UserGroupName")
    parent_user_group_id: str = Field(default="-1", alias="ParentUserGroupId")


# ---- embedding ----------------------------------------------------------------------------------------


class CreateTicket4Copilot(ApiRequest):
    action = "CreateTicket4Copilot"
    group = "write"
    idempotent = False
    copilot_id: str = Field(alias="CopilotId")
    ticket_num: int | None = Field(default=None, alias="TicketNum", ge=1, le=99999)
    expire_time: int | None = Field(default=None, alias="ExpireTime", ge=1, le=240)
    user_id: str | None = Field(default=None, alias="UserId")
    account_name: str | None = Field(default=None, alias="AccountName")
    account_type: int | None = Field(default=None, alias="AccountType")


class QueryCopilotEmbedConfig(ApiRequest):
    action = "QueryCopilotEmbedConfig"
    keyword: str | None = Field(default=None, alias="Keyword")


class ModifyCopilotEmbedConfig(ApiRequest):
    action = "ModifyCopilotEmbedConfig"
    group = "write"
    copilot_id: str = Field(alias="CopilotId")
    data_range: str | None = Field(default=None, alias="DataRange")  # JSON, one lower-camel-case key
    module_name: str | None = Field(default=None, alias="ModuleName", max_length=20)
    agent_name: str | None = Field(default=None, alias="AgentName")


class CopilotDataRange(_Wire):
    all_theme: bool = Field(default=False, alias="AllTheme")
    all_cube: bool = Field(default=False, alias="AllCube")
    themes: list[str] = Field(default_factory=list, alias="Themes")
    llm_cubes: list[str] = Field(default_factory=list, alias="LlmCubes")


class CopilotEmbedConfig(_Wire):
    copilot_id: str = Field(alias="CopilotId")
    show_name: str = Field(default="", alias="ShowName")
    module_name: str = Field(default="", alias="ModuleName")
    data_range: CopilotDataRange | None = Field(default=None, alias="DataRange")
