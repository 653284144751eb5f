"""Pydantic models of one policy file (format version 1). Unknown keys are errors."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, GetCoreSchemaHandler, WithJsonSchema, model_validator
from pydantic_core import CoreSchema, core_schema

from reconciler.vocabulary.base import FrozenStrictModel as _Strict

NEVER = dt.date(2099, 12, 31)
_DURATION = re.compile(r"^(\d+)d$")


def _parse_days(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError("a duration is written as a whole number of days, like 30d")
        return int(match.group(1))
    return value


DAYS_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 36500},
        {"type": "string", "pattern": "^[0-9]+d$", "description": "a whole number of days, like 30d"},
    ]
}
Days = Annotated[int, BeforeValidator(_parse_days), Field(gt=0, le=36500), WithJsonSchema(DAYS_SCHEMA)]


class Rolling(_Strict):
    """A rolling expiry: each grant lasts `ttl` and is renewed once fewer than `renew_within` days remain."""

    ttl: Days
    renew_within: Days

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> Rolling:
        if self.renew_within >= self.ttl:
            raise ValueError("renew_within must be shorter than ttl")
        return self

    def latest(self, today: dt.date) -> dt.date:
        """The day a grant made today expires: also the latest day the policy allows one to have."""
        return today + dt.timedelta(days=self.ttl)

    def keeps(self, recorded: dt.date, today: dt.date) -> bool:
        """Whether a grant recorded to expire on `recorded` serves the policy today: not due for renewal, and no
        later than a grant made today could be (a later day was never set by reconciler)."""
        return self.renew_within < (recorded - today).days <= self.ttl

    def describe(self) -> str:
        return f"rolling {self.ttl}d, renewed within {self.renew_within}d"


class UnknownExpiry:
    """`expires: unknown`: live grants whose expiry was never recorded (as `import` writes them). They are kept
    while they are live and never granted, renewed or shortened: only Quick BI knows when they end."""

    def describe(self) -> str:
        return "unknown (kept while live, never granted or renewed)"

    def __repr__(self) -> str:
        return "UNKNOWN"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        text = core_schema.plain_serializer_function_ser_schema(lambda _: "unknown")
        return core_schema.is_instance_schema(cls, serialization=text)


UNKNOWN = UnknownExpiry()


def _parse_expiry(value: Any) -> Any:
    if value == "never":
        return NEVER
    if value == "unknown":
        return UNKNOWN
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(
                "expected 'never', a date written yyyy-mm-dd, {ttl: 30d, renew_within: 7d} or 'unknown'"
            ) from None
    if isinstance(value, dt.datetime):
        raise ValueError("expected a date (yyyy-mm-dd), not a timestamp")
    return value


Expiry = dt.date | Rolling | UnknownExpiry
"""An expiry in force: a day, a rolling window renewed from the ledger, or unknown (kept while live)."""


def latest_day(expiry: Expiry, today: dt.date) -> dt.date:
    """The expiry day of a grant made today under `expiry`; for a rolling expiry, the latest day it allows. An
    unknown expiry is never granted: it ranks below every day, so that any dated statement giving the same cell
    decides its expiry."""
    if isinstance(expiry, UnknownExpiry):
        return dt.date.min
    return expiry.latest(today) if isinstance(expiry, Rolling) else expiry


# what an editor should accept: the YAML forms, not the parsed ones
EXPIRY_SCHEMA = {
    "anyOf": [
        {"const": "never", "description": "2099-12-31"},
        {"const": "unknown", "description": "kept while live, never granted or renewed (written by import)"},
        {"type": "string", "format": "date", "description": "yyyy-mm-dd"},
        {
            "type": "object",
            "properties": {"ttl": DAYS_SCHEMA, "renew_within": DAYS_SCHEMA},
            "required": ["ttl", "renew_within"],
            "additionalProperties": False,
            "description": "a rolling expiry, renewed once fewer than renew_within days remain",
        },
    ]
}
ExpiryField = Annotated[Expiry, BeforeValidator(_parse_expiry), WithJsonSchema(EXPIRY_SCHEMA)]


class UserRef(_Strict):
    account: str | None = Field(default=None, min_length=1)
    id: str | None = Field(default=None, min_length=1)
    # the same person's Huawei Cloud IAM user ID, for DataArts Insight embeds (`dataarts_embeds`)
    dataarts: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> UserRef:
        if (self.account is None) == (self.id is None):
            raise ValueError("give exactly one of 'account' or 'id'")
        return self


class Group(_Strict):
    members: list[str] = Field(default_factory=list)
    quickbi_group: str | None = Field(default=None, min_length=1)


class CubeRef(_Strict):
    id: str | None = Field(default=None, min_length=1)
    alias: str | None = Field(default=None, min_length=1)
    dataset: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> CubeRef:
        if sum(v is not None for v in (self.id, self.alias, self.dataset)) != 1:
            raise ValueError("give exactly one of 'id', 'alias' or 'dataset'")
        return self


class ThemeRef(_Strict):
    id: str | None = Field(default=None, min_length=1)
    name: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> ThemeRef:
        if (self.id is None) == (self.name is None):
            raise ValueError("give exactly one of 'id' or 'name'")
        return self


class Resources(_Strict):
    llm_cubes: dict[str, CubeRef] = Field(default_factory=dict)
    themes: dict[str, ThemeRef] = Field(default_factory=dict)


class Defaults(_Strict):
    expires: ExpiryField = NEVER


class GrantRule(_Strict):
    to: list[str] = Field(min_length=1)
    llm_cubes: list[str] = Field(default_factory=list)
    themes: list[str] = Field(default_factory=list)
    expires: ExpiryField | None = None


class Released(_Strict):
    """Targets once managed that the policy now leaves alone, grants kept (Terraform's `removed`, no destroy)."""

    llm_cubes: list[str] = Field(default_factory=list)
    themes: list[str] = Field(default_factory=list)


class AccessTest(_Strict):
    """An assertion about the policy's end state: `user` can query each of `can`, none of `cannot`."""

    user: str = Field(min_length=1)
    can: list[str] = Field(default_factory=list)
    cannot: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _asserts_something(self) -> AccessTest:
        if not self.can and not self.cannot:
            raise ValueError("a test needs 'can' or 'cannot'")
        return self


class EmbedRange(_Strict):
    """An embedded Smart Q module's data range: LlmCubes or themes (Quick BI takes one kind per module)."""

    llm_cubes: list[str] = Field(default_factory=list)
    themes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> EmbedRange:
        if bool(self.llm_cubes) == bool(self.themes):
            raise ValueError("give llm_cubes or themes (an embedded module's data range is one kind), or write all")
        return self


class CopilotEmbed(_Strict):
    """An embedded Smart Q module (CreateTicket4Copilot's CopilotId) and who may be issued tickets for it."""

    copilot_id: str = Field(min_length=1)
    # all: every LlmCube (Quick BI's allCube); all_themes: every theme (allTheme); or a list of one kind
    data_range: Literal["all", "all_themes"] | EmbedRange = "all"
    to: list[str] = Field(min_length=1)
    max_uses: int = Field(default=1, ge=1, le=99999)
    max_minutes: int = Field(default=240, ge=1, le=240)
    widens_access: bool = False  # ticket holders may reach targets their grants do not give them


class DataArtsEmbed(_Strict):
    """A Huawei DataArts Insight embedded analysis (CreateTickets' embed_id) and who may be issued tickets."""

    embed_id: str = Field(min_length=1)
    to: list[str] = Field(min_length=1)
    max_uses: int = Field(default=1, ge=1, le=99999)


class PolicyFile(_Strict):
    version: Literal[1]
    defaults: Defaults = Field(default_factory=Defaults)
    users: dict[str, UserRef] = Field(default_factory=dict)
    groups: dict[str, Group] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    grants: list[GrantRule] = Field(default_factory=list)
    protected_users: list[str] = Field(default_factory=list)
    manage_all_targets: bool = False
    released: Released = Field(default_factory=Released)
    tests: list[AccessTest] = Field(default_factory=list)
    copilot_embeds: dict[str, CopilotEmbed] = Field(default_factory=dict)
    dataarts_embeds: dict[str, DataArtsEmbed] = Field(default_factory=dict)
