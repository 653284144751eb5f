"""Building blocks every part shares: the strict model base and the one way to write a UTC timestamp."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A model of user-written or saved input: an unknown key is an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid")


class FrozenStrictModel(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def utc_timestamp(precise: bool = False) -> str:
    """Now in UTC as ISO 8601 with a Z, to the second (or microsecond), the form Alibaba Cloud also signs."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if precise else "%Y-%m-%dT%H:%M:%SZ")
