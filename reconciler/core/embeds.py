"""Copilot embed data ranges: what the policy wants each embedded Smart Q module to reach, against what Quick
BI says it reaches (`QueryCopilotEmbedConfig`), and the `ModifyCopilotEmbedConfig` changes that close the gap.

A ticket is access: whoever holds one can ask questions of the module's whole data range, so a console edit
that widens it is drift like an unexpected grant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from reconciler.vocabulary.errors import Problem, ReconcilerError

if TYPE_CHECKING:  # the service adapter uses the ranges too, and resolve reads through the service
    from reconciler.core.resolve import Desired, Embed

_WIRE_KEYS = {"llm_cube": ("allCube", "llmCubes"), "theme": ("allTheme", "themes")}
_WORDS = {"llm_cube": "LlmCubes", "theme": "themes"}


class DataRange(BaseModel):
    """One module's data range: every target of one kind, or a list of them (Quick BI takes one kind)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["llm_cube", "theme"]
    all: bool = False
    ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, embed: Embed) -> DataRange:
        if embed.targets is None:
            return cls(kind=embed.range_kind, all=True)
        return cls(kind=embed.range_kind, ids=tuple(sorted(t.id for t in embed.targets)))

    def wire(self) -> str:
        """`ModifyCopilotEmbedConfig`'s DataRange parameter: JSON with exactly one lower-camel-case key."""
        all_key, list_key = _WIRE_KEYS[self.kind]
        return json.dumps({all_key: True} if self.all else {list_key: list(self.ids)}, separators=(",", ":"))

    def describe(self, names: Mapping[str, str] | None = None) -> str:
        if self.all:
            return f"all {_WORDS[self.kind]}"
        if not self.ids:
            return f"no {_WORDS[self.kind]}"
        named = (names or {}).get
        return f"{_WORDS[self.kind]} " + ", ".join(named(f"{self.kind}:{i}", i) for i in self.ids)

    def covers(self, other: DataRange) -> bool:
        """Whether this range reaches at least everything `other` reaches (as far as the ranges tell)."""
        if self.kind != other.kind:
            return False
        return self.all or (not other.all and set(other.ids) <= set(self.ids))


@dataclass(frozen=True)
class LiveEmbed:
    """A module as Quick BI reports it; `range` is None when its data range cannot be read as one kind."""

    copilot_id: str
    name: str
    range: DataRange | None
    described: str


class EmbedChange(BaseModel):
    """One `ModifyCopilotEmbedConfig` call: set a module's data range to what the policy says."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    embed: str
    copilot_id: str
    before: str
    after: DataRange
    # the module will reach targets it does not reach today
    widens: bool
    # the module reaches targets today that the policy does not give it (e.g. a console edit widened it)
    narrows: bool


@dataclass(frozen=True)
class EmbedDrift:
    changes: list[EmbedChange]
    # policy embeds whose copilot_id Quick BI does not know
    missing: list[tuple[str, str]]


def embed_drift(desired: Desired, live: Mapping[str, LiveEmbed]) -> EmbedDrift:
    """The changes that make every policy embed's data range what the policy says, in embed-name order."""
    wanted = _wanted(desired)
    names = {str(target): name for target, name in desired.target_names.items()}
    changes: list[EmbedChange] = []
    missing: list[tuple[str, str]] = []
    for name, embed in sorted(desired.embeds.items()):
        if embed.copilot_id not in live:
            missing.append((name, embed.copilot_id))
            continue
        after, current = wanted[embed.copilot_id], live[embed.copilot_id]
        if current.range == after or any(c.copilot_id == embed.copilot_id for c in changes):
            continue
        known = current.range
        before = known.describe(names) if known is not None else current.described
        changes.append(
            EmbedChange(
                embed=name,
                copilot_id=embed.copilot_id,
                before=before,
                after=after,
                widens=known is None or not known.covers(after),
                narrows=known is None or not after.covers(known),
            )
        )
    return EmbedDrift(changes, missing)


def _wanted(desired: Desired) -> dict[str, DataRange]:
    """The data range each module must have; two embeds naming one module must agree on it."""
    wanted: dict[str, DataRange] = {}
    first: dict[str, Embed] = {}
    for _, embed in sorted(desired.embeds.items()):
        data_range = DataRange.of(embed)
        if embed.copilot_id in wanted and wanted[embed.copilot_id] != data_range:
            other = first[embed.copilot_id]
            raise ReconcilerError(
                Problem(
                    f"copilot embeds '{other.name}' and '{embed.name}' name module {embed.copilot_id} with different "
                    "data ranges; a module has one",
                    embed.location,
                    "give both the same data_range, or use one embed",
                )
            )
        wanted.setdefault(embed.copilot_id, data_range)
        first.setdefault(embed.copilot_id, embed)
    return wanted
