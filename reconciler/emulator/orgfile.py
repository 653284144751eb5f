"""The emulator organisation file (YAML or JSON); the emulator's saved state has the same shape."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import Field, ValidationError, model_validator

from reconciler.vocabulary.base import StrictModel as _Strict
from reconciler.vocabulary.errors import Problem, ReconcilerError
from reconciler.vocabulary.files import read_regular_file, write_text_file
from reconciler.vocabulary.yamlfile import read_yaml

Model = TypeVar("Model", bound=_Strict)


class AccessKey(_Strict):
    id: str
    secret: str
    # whose key it is: an organisation administrator (or API-call user), a member without API-call permission,
    # or an account that is not in this region's Quick BI organisation (the wrong region, or never logged in)
    caller: Literal["admin", "member", "outsider"] = "admin"


class OrgUser(_Strict):
    id: str
    account: str
    nick: str = ""
    account_id: str | None = None
    user_type: int = 3
    deleted: bool = False


class OrgGroup(_Strict):
    id: str
    name: str
    parent: str | None = None
    members: list[str] = Field(default_factory=list)


class OrgLlmCube(_Strict):
    id: str
    alias: str
    dataset: str | None = None
    create_user: str = "admin"


class OrgTheme(_Strict):
    id: str
    name: str
    llm_cubes: list[str] = Field(default_factory=list)
    create_user: str = "admin"


class OrgGrant(_Strict):
    user: str
    llm_cube: str | None = None
    theme: str | None = None
    expire_day: dt.date

    @model_validator(mode="after")
    def _one_target(self) -> OrgGrant:
        if (self.llm_cube is None) == (self.theme is None):
            raise ValueError("a grant names exactly one of llm_cube or theme")
        return self


class OrgCopilot(_Strict):
    """An embedded Smart Q module; its data range is one kind, every target of it or a list."""

    id: str
    name: str
    all_cubes: bool = True
    all_themes: bool = False
    llm_cubes: list[str] = Field(default_factory=list)
    themes: list[str] = Field(default_factory=list)


class OrgTicket(_Strict):
    ticket: str
    copilot: str
    user: str
    uses_left: int
    expires_at: dt.datetime


class OrgFile(_Strict):
    access_keys: list[AccessKey] = Field(default_factory=list)
    users: list[OrgUser] = Field(default_factory=list)
    groups: list[OrgGroup] = Field(default_factory=list)
    llm_cubes: list[OrgLlmCube] = Field(default_factory=list)
    themes: list[OrgTheme] = Field(default_factory=list)
    grants: list[OrgGrant] = Field(default_factory=list)
    copilots: list[OrgCopilot] = Field(default_factory=list)
    tickets: list[OrgTicket] = Field(default_factory=list)


def read_org_file(path: Path) -> OrgFile:
    return read_model_file(path, OrgFile, "organisation file")


def read_model_file(path: Path, model: type[Model], what: str) -> Model:
    """An emulator's YAML or JSON file, read with the same limits as policies: a regular file of bounded size,
    no alias bombs."""
    if path.suffix == ".json":
        try:
            data = json.loads(read_regular_file(path, what))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ReconcilerError(Problem(f"{path}: cannot read {what}: {exc}")) from None
    else:
        document, problems = read_yaml(path)
        if document is None or problems:
            raise ReconcilerError(problems)
        data = document.data
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ReconcilerError(Problem(f"{path}: invalid {what} at {where}: {first['msg']}")) from None


def write_org_file(org: OrgFile, path: Path) -> None:
    """Write atomically: a crash leaves either the old file or the new one, never half of either."""
    payload = org.model_dump(mode="json", exclude_defaults=True)
    text = (
        json.dumps(payload, indent=1, sort_keys=True) + "\n"
        if path.suffix == ".json"
        else yaml.safe_dump(payload, sort_keys=False, allow_unicode=True)
    )
    write_text_file(path, text)
