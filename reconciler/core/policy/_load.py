"""Load policy files or folders, validate them, and merge them into one `Policy`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.core.policy._model import (
    CopilotEmbed,
    CubeRef,
    DataArtsEmbed,
    Expiry,
    GrantRule,
    PolicyFile,
    ThemeRef,
    UserRef,
)
from reconciler.vocabulary import limits
from reconciler.vocabulary.base import bulk_data
from reconciler.vocabulary.cells import ResourceKind
from reconciler.vocabulary.errors import Location, Problem, ReconcilerError
from reconciler.vocabulary.yamlfile import LocatedDocument, read_yaml


@dataclass(frozen=True)
class UserDef:
    alias: str
    ref: UserRef
    location: Location


@dataclass(frozen=True)
class GroupDef:
    name: str
    members: tuple[str, ...]
    quickbi_group: str | None
    location: Location
    member_locations: tuple[Location, ...] = ()


@dataclass(frozen=True)
class ResourceDef:
    alias: str
    kind: ResourceKind
    ref: CubeRef | ThemeRef
    location: Location


@dataclass(frozen=True)
class TargetName:
    """A target as a grant names it: an alias under `resources`, or an inline `id:<ID>`."""

    kind: ResourceKind
    name: str
    location: Location


@dataclass(frozen=True)
class Rule:
    principals: tuple[tuple[str, Location], ...]
    targets: tuple[TargetName, ...]
    expires: Expiry
    location: Location

    def lapsed(self, today: dt.date) -> bool:
        """A fixed expiry already past: the grant no longer gives anything (validate warns about it)."""
        return isinstance(self.expires, dt.date) and self.expires < today


@dataclass(frozen=True)
class PolicyTest:
    """One `tests:` entry: a user, and target references it must or must not reach, each with its line."""

    user: str
    can: tuple[tuple[str, Location], ...]
    cannot: tuple[tuple[str, Location], ...]
    location: Location


@dataclass(frozen=True)
class EmbedDef:
    """A `copilot_embeds` entry: the module, who may get tickets, its data range and limits.

    The data range is every target of `range_kind` when `data_range` is None, else the targets it lists."""

    name: str
    copilot_id: str
    principals: tuple[tuple[str, Location], ...]
    data_range: tuple[TargetName, ...] | None
    range_kind: ResourceKind
    max_uses: int
    max_minutes: int
    widens_access: bool
    location: Location


@dataclass(frozen=True)
class DataArtsEmbedDef:
    """A `dataarts_embeds` entry: the embedded analysis, the IAM user IDs that may hold tickets, the limit.

    Resolved from the policy alone: DataArts Insight users are Huawei Cloud IAM users, named in the policy by
    each user's `dataarts:` ID (or inline `dataarts:<ID>`), never through the Quick BI directory."""

    name: str
    embed_id: str
    holders: frozenset[str]
    max_uses: int
    location: Location


@dataclass(frozen=True)
class Policy:
    users: dict[str, UserDef] = field(default_factory=dict)
    groups: dict[str, GroupDef] = field(default_factory=dict)
    resources: dict[tuple[ResourceKind, str], ResourceDef] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    protected: tuple[tuple[str, Location], ...] = ()
    manage_all_targets: bool = False
    digest: str = ""
    files: tuple[str, ...] = ()
    released: tuple[TargetName, ...] = ()
    warnings: tuple[Problem, ...] = ()
    # warnings about dataarts_embeds, worth saying only where a DataArts Insight target is configured
    dataarts_warnings: tuple[Problem, ...] = ()
    tests: tuple[PolicyTest, ...] = ()
    embeds: dict[str, EmbedDef] = field(default_factory=dict)
    dataarts_embeds: dict[str, DataArtsEmbedDef] = field(default_factory=dict)


POLICY_SUFFIXES = (".yaml", ".yml")


def policy_files(paths: Iterable[Path], recursive: bool = False) -> tuple[list[Path], list[Problem]]:
    """The policy files named by `paths`, and warnings about files left out.

    Files are taken as given. A folder gives its *.yaml / *.yml files, sorted: only at its top level unless
    `recursive` (so that an `archive/` folder grants nothing by accident), and never hidden files or folders.
    Anything that is not a regular file (a FIFO, a device, a dangling or looping link) is an error, not skipped.
    """
    paths = list(paths)
    found: list[Path] = []
    skipped: list[Problem] = []
    for path in paths:
        if path.is_dir():
            entries = sorted(path.rglob("*") if recursive else path.iterdir())
            for entry in entries:
                relative = entry.relative_to(path)
                if entry.suffix not in POLICY_SUFFIXES or any(p.startswith(".") for p in relative.parts):
                    continue
                if not entry.is_file():
                    raise ReconcilerError(
                        Problem(f"{entry}: not a regular file", hint="a policy must be a plain YAML file")
                    )
                found.append(entry)
            if not recursive:
                nested = sorted(
                    entry
                    for folder in path.iterdir()
                    if folder.is_dir() and not folder.name.startswith(".")
                    for entry in folder.iterdir()
                    if entry.suffix in POLICY_SUFFIXES and not entry.name.startswith(".")
                )
                if nested:
                    skipped.append(
                        Problem(
                            f"{len(nested)} policy files in subfolders of {path} are not read (first: {nested[0]})",
                            hint="set policies_recursive: true in the config to read them",
                        )
                    )
        elif path.exists() or path.is_symlink():
            found.append(path)  # checked when read: a regular file of bounded size
        else:
            raise ReconcilerError(Problem(f"{path}: no such file or folder", hint="check the policies path"))
    if not found:
        raise ReconcilerError(Problem(f"no policy files (*.yaml) found in {', '.join(map(str, paths))}"))
    return found, skipped


def load_policy(paths: Iterable[Path], today: dt.date | None = None, recursive: bool = False) -> Policy:
    """Read, validate and merge policy files. Raises ReconcilerError listing every problem found in every file:
    a file that does not validate leaves the others checked, across files too."""
    today = today or dt.date.today()
    with bulk_data():  # a tenant's policy lists its 10^5 users: the collector would walk them again and again
        return _load_files(paths, today, recursive)


def _load_files(paths: Iterable[Path], today: dt.date, recursive: bool) -> Policy:
    problems: list[Problem] = []
    parsed: list[tuple[LocatedDocument, PolicyFile]] = []
    broken: list[LocatedDocument | None] = []
    files, warnings = policy_files(paths, recursive)
    for path in files:
        document, yaml_problems = read_yaml(path)
        problems.extend(yaml_problems)
        if document is None or yaml_problems:
            broken.append(document)  # None: not even YAML, so the names it defines cannot be known
            continue
        model = _validate_file(document, problems)
        if model is not None:
            parsed.append((document, model))
        else:
            broken.append(document)
    policy = _merge(parsed, today, problems, warnings, _names_defined_in(broken))
    if problems:
        raise ReconcilerError(problems)
    return replace(policy, warnings=tuple(sorted(warnings, key=_problem_order)))


def _names_defined_in(broken: list[LocatedDocument | None]) -> frozenset[str] | None:
    """The user, group and resource names files that did not validate seem to define, so that the other files
    are not told those names are unknown; None when a file is not even YAML (its names cannot be known)."""
    names: set[str] = set()
    for document in broken:
        if document is None:
            return None
        data = document.data if isinstance(document.data, dict) else {}
        for section in ("users", "groups"):
            if isinstance(data.get(section), dict):
                names.update(map(str, data[section]))
        resources = data.get("resources")
        if isinstance(resources, dict):
            for table in resources.values():
                if isinstance(table, dict):
                    names.update(map(str, table))
    return frozenset(names)


def _problem_order(problem: Problem) -> tuple[Location, str]:
    return (problem.location or Location("", 0), problem.message)


MAX_PROBLEMS_PER_FILE = 50


def _validate_file(document: LocatedDocument, problems: list[Problem]) -> PolicyFile | None:
    if not isinstance(document.data, dict):
        problems.append(Problem("a policy file must be a mapping with 'version: 1'", document.locate(())))
        return None
    # a file of unknown top-level keys is refused before validation builds an error for each of them
    unknown = [key for key in document.data if key not in PolicyFile.model_fields]
    if unknown:
        for key in unknown[:MAX_PROBLEMS_PER_FILE]:
            problems.append(Problem(f"unknown key '{key}'", document.locate((key,)), "remove it or check its spelling"))
        _note_cut(document, len(unknown), problems)
        return None
    try:
        return PolicyFile.model_validate(document.data)
    except ValidationError as exc:
        errors = exc.errors()
        for error in errors[:MAX_PROBLEMS_PER_FILE]:
            problems.append(_problem_from_pydantic(document, error))
        _note_cut(document, len(errors), problems)
        return None


def _note_cut(document: LocatedDocument, found: int, problems: list[Problem]) -> None:
    if found > MAX_PROBLEMS_PER_FILE:
        more = found - MAX_PROBLEMS_PER_FILE
        # at the last reported line, so that it sorts right after the problems it follows
        problems.append(Problem(f"… and {more:,} more problems in this file", problems[-1].location))


def _problem_from_pydantic(document: LocatedDocument, error: Any) -> Problem:
    path = _data_path(document.data, tuple(error["loc"]))
    field_name = ".".join(str(part) for part in path) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return Problem(f"unknown key '{path[-1]}'", document.locate(path), "remove it or check its spelling")
    if kind == "missing":
        return Problem(f"missing required key '{field_name}'", document.locate(path[:-1]))
    if kind == "literal_error" and path == ("version",):
        return Problem("unsupported policy version", document.locate(path), "this reconciler reads 'version: 1'")
    message = str(error["msg"]).removeprefix("Value error, ")
    return Problem(f"{field_name}: {message}", document.locate(path))


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """The part of pydantic's error location that exists in the data (it adds union and validator names).

    A last part naming a key absent from a mapping is kept: that is the key a "missing" error is about.
    """
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        in_mapping = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_mapping or in_list:
            node = node[part]
        else:
            if index == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
                path.append(part)
            break
        path.append(part)
    return tuple(path)


def _merge(
    parsed: list[tuple[LocatedDocument, PolicyFile]],
    today: dt.date,
    problems: list[Problem],
    warnings: list[Problem],
    elsewhere: frozenset[str] | None = frozenset(),
) -> Policy:
    """One policy from its files: the definitions first (names), then the statements that use them, then the
    checks that need both. `elsewhere`: names defined in files that did not validate (None: not knowable, so
    names are not checked)."""
    users, groups, resources, manage_all = _definitions(parsed, problems)
    found = _statements(parsed, resources, today, problems, warnings)
    policy = Policy(users, groups, resources, tuple(found.rules), tuple(found.protected), manage_all)
    known = _Known(policy, elsewhere)
    _check_names(policy, known, problems)
    _check_scripts(policy, warnings)
    _check_groups(policy, problems)
    _check_embed_principals(found.embeds, known, problems)
    dataarts_warnings: list[Problem] = []
    dataarts_embeds = {
        name: _dataarts_embed(document, name, embed, known, problems, dataarts_warnings)
        for name, (document, embed) in found.dataarts.items()
    }
    _check_embed_names(found, problems)
    _check_target_names(policy.rules, found.embeds, known, problems)
    if not manage_all and elsewhere == frozenset():  # every file read: the declared targets are all known
        _check_inline_grants(policy.rules, resources, problems)
    return replace(
        policy,
        digest=_digest(parsed),
        files=tuple(document.file for document, _ in parsed),
        released=tuple(found.released),
        tests=tuple(found.tests),
        embeds=found.embeds,
        dataarts_embeds=dataarts_embeds,
        dataarts_warnings=tuple(sorted(dataarts_warnings, key=_problem_order)),
    )


def _definitions(
    parsed: list[tuple[LocatedDocument, PolicyFile]], problems: list[Problem]
) -> tuple[dict[str, UserDef], dict[str, GroupDef], dict[tuple[ResourceKind, str], ResourceDef], bool]:
    """Users, groups and resources of every file (a name defined twice must be defined alike)."""
    users: dict[str, UserDef] = {}
    groups: dict[str, GroupDef] = {}
    resources: dict[tuple[ResourceKind, str], ResourceDef] = {}
    manage_all = False
    for document, model in parsed:
        manage_all = manage_all or model.manage_all_targets
        for alias, ref in model.users.items():
            _define(users, alias, UserDef(alias, ref, document.locate(("users", alias))), problems, "user")
        for name, group in model.groups.items():
            members = tuple(group.members)
            member_locs = tuple(document.locate(("groups", name, "members", i)) for i in range(len(members)))
            definition = GroupDef(name, members, group.quickbi_group, document.locate(("groups", name)), member_locs)
            _define(groups, name, definition, problems, "group")
        tables: list[tuple[ResourceKind, str, dict[str, CubeRef] | dict[str, ThemeRef]]] = [
            ("llm_cube", "llm_cubes", model.resources.llm_cubes),
            ("theme", "themes", model.resources.themes),
        ]
        for kind, section, table in tables:
            for alias, target_ref in table.items():
                location = document.locate(("resources", section, alias))
                resource = ResourceDef(alias, kind, target_ref, location)
                _define(resources, (kind, alias), resource, problems, f"{section[:-1]} alias")
    for name, group_def in groups.items():
        if name in users:
            problems.append(
                Problem(
                    f"'{name}' is both a user alias ({users[name].location}) and a group",
                    group_def.location,
                    "rename one of them",
                )
            )
    return users, groups, resources, manage_all


@dataclass
class _Statements:
    """What the files say about the defined names, in file order."""

    rules: list[Rule] = field(default_factory=list)
    protected: list[tuple[str, Location]] = field(default_factory=list)
    released: list[TargetName] = field(default_factory=list)
    tests: list[PolicyTest] = field(default_factory=list)
    embeds: dict[str, EmbedDef] = field(default_factory=dict)
    dataarts: dict[str, tuple[LocatedDocument, DataArtsEmbed]] = field(default_factory=dict)


def _statements(
    parsed: list[tuple[LocatedDocument, PolicyFile]],
    resources: dict[tuple[ResourceKind, str], ResourceDef],
    today: dt.date,
    problems: list[Problem],
    warnings: list[Problem],
) -> _Statements:
    found = _Statements()
    for document, model in parsed:
        _check_expiry(model.defaults.expires, document.locate(("defaults", "expires")), today, warnings)
        for index, grant in enumerate(model.grants):
            found.rules.append(_rule(document, index, grant, model.defaults.expires, today, problems, warnings))
        for index, name in enumerate(model.protected_users):
            found.protected.append((name, document.locate(("protected_users", index))))
        found.released.extend(_released(document, model, resources, problems))
        for name, embed in model.copilot_embeds.items():
            _define(found.embeds, name, _embed(document, name, embed), problems, "copilot embed")
        for name, dataarts_embed in model.dataarts_embeds.items():
            if name in found.dataarts:
                problems.append(
                    Problem(
                        f"embed '{name}' is defined twice",
                        document.locate(("dataarts_embeds", name)),
                        "embed names are one namespace (ticket issue EMBED); rename one",
                    )
                )
            found.dataarts[name] = (document, dataarts_embed)
        for index, test in enumerate(model.tests):
            base = ("tests", index)
            found.tests.append(
                PolicyTest(
                    test.user,
                    tuple((ref, document.locate((*base, "can", i))) for i, ref in enumerate(test.can)),
                    tuple((ref, document.locate((*base, "cannot", i))) for i, ref in enumerate(test.cannot)),
                    document.locate(base),
                )
            )
    return found


@dataclass(frozen=True)
class _Known:
    """Which names are defined: by the policy, or maybe by a file that did not validate (None: cannot tell)."""

    policy: Policy
    elsewhere: frozenset[str] | None

    def principal(self, name: str, allow_groups: bool = True) -> bool:
        return (
            _is_inline(name)
            or name in self.policy.users
            or (allow_groups and name in self.policy.groups)
            or self.elsewhere is None
            or name in self.elsewhere
        )

    def resource(self, kind: ResourceKind, name: str) -> bool:
        return (
            name.startswith("id:")
            or (kind, name) in self.policy.resources
            or self.elsewhere is None
            or name in self.elsewhere
        )


def _check_embed_principals(embeds: dict[str, EmbedDef], known: _Known, problems: list[Problem]) -> None:
    for embed_def in embeds.values():
        for name, location in embed_def.principals:
            if not known.principal(name):
                problems.append(Problem(f"unknown user or group '{name}'", location, "define it under users or groups"))


def _check_embed_names(found: _Statements, problems: list[Problem]) -> None:
    """Copilot and DataArts Insight embeds share one namespace: `ticket issue EMBED` names either."""
    clash = sorted(set(found.dataarts) & set(found.embeds))
    if clash:
        document, _ = found.dataarts[clash[0]]
        problems.append(
            Problem(
                f"embed '{clash[0]}' is both a copilot and a DataArts Insight embed",
                document.locate(("dataarts_embeds", clash[0])),
                "embed names are one namespace (ticket issue EMBED); rename one",
            )
        )


def _check_target_names(
    rules: Iterable[Rule], embeds: dict[str, EmbedDef], known: _Known, problems: list[Problem]
) -> None:
    """Every target a grant or an embed names by alias is declared under resources."""
    embed_targets = [t for embed_def in embeds.values() for t in embed_def.data_range or ()]
    for target in [*(t for rule in rules for t in rule.targets), *embed_targets]:
        if not known.resource(target.kind, target.name):
            section = "llm_cubes" if target.kind == "llm_cube" else "themes"
            problems.append(
                Problem(
                    f"unknown {section[:-1]} '{target.name}'",
                    target.location,
                    f"declare it under resources.{section} or write id:<ID>",
                )
            )


def _dataarts_embed(
    document: LocatedDocument,
    name: str,
    embed: DataArtsEmbed,
    known: _Known,
    problems: list[Problem],
    warnings: list[Problem],
) -> DataArtsEmbedDef:
    """The IAM user IDs `to:` reaches: users' `dataarts:` IDs, through the policy's own group members.

    A member without such an ID (or a Quick BI group's members, who have none) cannot be issued tickets: a
    warning, since the same groups also carry Smart Q grants that must not be held up by it."""
    base = ("dataarts_embeds", name)
    policy = known.policy
    holders: set[str] = set()
    seen: set[str] = set()
    pending = [(who, document.locate((*base, "to", i))) for i, who in enumerate(embed.to)]
    while pending:
        who, location = pending.pop()
        if who in seen:
            continue
        seen.add(who)
        if who.startswith("dataarts:") and len(who) > len("dataarts:"):
            holders.add(who.removeprefix("dataarts:"))
        elif who in policy.users:
            user = policy.users[who]
            if user.ref.dataarts is None:
                warnings.append(
                    Problem(
                        f"user '{who}' is in the 'to' of DataArts Insight embed '{name}' but has no IAM user ID, so "
                        "cannot be issued its tickets",
                        user.location,
                        f"add dataarts: <IAM user ID> to users.{who}",
                    )
                )
            else:
                holders.add(user.ref.dataarts)
        elif who in policy.groups:
            group = policy.groups[who]
            if group.quickbi_group:
                warnings.append(
                    Problem(
                        f"group '{who}' mirrors a Quick BI group, whose members have no DataArts Insight identity "
                        f"and cannot be issued tickets for '{name}'",
                        location,
                        "list the users in the policy (with their dataarts: IDs) instead",
                    )
                )
            members = group.member_locations or (group.location,) * len(group.members)
            pending.extend(zip(group.members, members, strict=True))
        elif not known.principal(who):
            problems.append(
                Problem(
                    f"unknown user or group '{who}' for a DataArts Insight embed",
                    location,
                    "name a user or group of the policy, or write dataarts:<IAM user ID>",
                )
            )
    return DataArtsEmbedDef(name, embed.embed_id, frozenset(holders), embed.max_uses, document.locate(base))


def _embed(document: LocatedDocument, name: str, embed: CopilotEmbed) -> EmbedDef:
    base = ("copilot_embeds", name)
    principals = tuple((who, document.locate((*base, "to", i))) for i, who in enumerate(embed.to))
    data_range = None
    range_kind: ResourceKind = "theme" if embed.data_range == "all_themes" else "llm_cube"
    if not isinstance(embed.data_range, str):
        range_kind = "llm_cube" if embed.data_range.llm_cubes else "theme"
        section = "llm_cubes" if range_kind == "llm_cube" else "themes"
        names = embed.data_range.llm_cubes or embed.data_range.themes
        data_range = tuple(
            TargetName(range_kind, ref, document.locate((*base, "data_range", section, i)))
            for i, ref in enumerate(names)
        )
    return EmbedDef(
        name,
        embed.copilot_id,
        principals,
        data_range,
        range_kind,
        embed.max_uses,
        embed.max_minutes,
        embed.widens_access,
        document.locate(base),
    )


def _released(
    document: LocatedDocument,
    model: PolicyFile,
    resources: dict[tuple[ResourceKind, str], ResourceDef],
    problems: list[Problem],
) -> list[TargetName]:
    found = []
    tables: list[tuple[ResourceKind, str, list[str]]] = [
        ("llm_cube", "llm_cubes", model.released.llm_cubes),
        ("theme", "themes", model.released.themes),
    ]
    for kind, section, names in tables:
        for index, name in enumerate(names):
            location = document.locate(("released", section, index))
            if not _is_inline_target(name):
                problems.append(
                    Problem(
                        f"released {section[:-1]} '{name}' must be written id:<ID>",
                        location,
                        "a released target is no longer declared under resources, so name it by its Quick BI ID",
                    )
                )
                continue
            declared = [
                alias
                for (k, alias), resource in resources.items()
                if k == kind and getattr(resource.ref, "id", None) == name[3:]
            ]
            if declared:
                problems.append(
                    Problem(
                        f"{section[:-1]} '{name}' is both released and declared under resources as '{declared[0]}'",
                        location,
                        "remove it from resources to stop managing it, or from released to keep managing it",
                    )
                )
                continue
            found.append(TargetName(kind, name, location))
    return found


def undeclared_grant_problem(name: TargetName) -> Problem:
    """A grant's inline `id:` target that `resources` does not declare: its grants could never be revoked."""
    section = "llm_cubes" if name.kind == "llm_cube" else "themes"
    return Problem(
        f"{name.kind} '{name.name}' is granted but not declared under resources, so its grants would never be revoked",
        name.location,
        f"declare it under resources.{section}, e.g. {name.name[3:]}: {{id: {name.name[3:]}}}, or set "
        "manage_all_targets: true",
    )


def _check_inline_grants(
    rules: Iterable[Rule], resources: dict[tuple[ResourceKind, str], ResourceDef], problems: list[Problem]
) -> None:
    """Inline `id:` targets of grants that no resource can be: offline, where every resource of the kind is
    declared by ID (an alias or name is looked up in Quick BI, so resolving decides those)."""
    declared = {(kind, getattr(r.ref, "id", None)) for (kind, _), r in resources.items()}
    by_name = {kind for (kind, _), r in resources.items() if getattr(r.ref, "id", None) is None}
    for rule in rules:
        for name in rule.targets:
            if _is_inline_target(name.name) and name.kind not in by_name and (name.kind, name.name[3:]) not in declared:
                problems.append(undeclared_grant_problem(name))


def _is_inline_target(name: str) -> bool:
    return name.startswith("id:") and len(name) > 3


def _define(table: dict[Any, Any], key: Any, definition: Any, problems: list[Problem], what: str) -> None:
    existing = table.get(key)
    if existing is None:
        table[key] = definition
        return
    same = _comparable(existing) == _comparable(definition)
    if not same:
        name = key[1] if isinstance(key, tuple) else key
        problems.append(
            Problem(
                f"{what} '{name}' is defined differently at {existing.location}",
                definition.location,
                "define it once",
            )
        )


def _comparable(definition: Any) -> Any:
    if isinstance(definition, UserDef | ResourceDef):
        return definition.ref
    if isinstance(definition, EmbedDef):
        return (definition.copilot_id, [p for p, _ in definition.principals], definition.max_uses)
    return (definition.members, definition.quickbi_group)


def _rule(
    document: LocatedDocument,
    index: int,
    grant: GrantRule,
    default: Expiry,
    today: dt.date,
    problems: list[Problem],
    warnings: list[Problem],
) -> Rule:
    base = ("grants", index)
    location = document.locate(base)
    principals: list[tuple[str, Location]] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(grant.to):
        loc = document.locate((*base, "to", i))
        if name in seen:
            problems.append(Problem(f"'{name}' is listed twice in this grant's 'to'", loc, "list it once"))
            continue
        seen[name] = i
        principals.append((name, loc))
    targets: list[TargetName] = []
    for kind, section, names in (
        ("llm_cube", "llm_cubes", grant.llm_cubes),
        ("theme", "themes", grant.themes),
    ):
        listed: set[str] = set()
        for i, name in enumerate(names):
            loc = document.locate((*base, section, i))
            if name in listed:
                problems.append(Problem(f"target '{name}' is listed twice in this grant", loc, "list it once"))
                continue
            listed.add(name)
            targets.append(TargetName(kind, name, loc))  # type: ignore[arg-type]
    if not targets:
        problems.append(Problem("grant has no targets", location, "add llm_cubes or themes to it"))
    expires = grant.expires if grant.expires is not None else default
    if grant.expires is not None:
        _check_expiry(grant.expires, document.locate((*base, "expires")), today, warnings)
    return Rule(tuple(principals), tuple(targets), expires, location)


def _check_expiry(expires: Expiry, location: Location, today: dt.date, warnings: list[Problem]) -> None:
    """A past date is no error: the policy says the access has ended, so its cells are revoked if live."""
    if isinstance(expires, dt.date) and expires < today:
        warnings.append(
            Problem(
                f"expiry date {expires.isoformat()} has passed: this grant no longer gives access",
                location,
                "its live grants are revoked; delete the grant or give it a new date",
            )
        )


def _is_inline(name: str) -> bool:
    return name.startswith(("id:", "account:")) and len(name.split(":", 1)[1]) > 0


def _check_names(policy: Policy, known: _Known, problems: list[Problem]) -> None:
    def check(name: str, location: Location, allow_groups: bool) -> None:
        if known.principal(name, allow_groups):
            return
        hint = "define it under users" + (" or groups" if allow_groups else "") + ", or write id:<UserId>"
        what = "user or group" if allow_groups else "user"
        problems.append(Problem(f"unknown {what} '{name}'", location, hint))

    for group in policy.groups.values():
        for member, location in zip(group.members, group.member_locations, strict=True):
            check(member, location, allow_groups=True)
    for rule in policy.rules:
        for name, location in rule.principals:
            check(name, location, allow_groups=True)
    for name, location in policy.protected:
        check(name, location, allow_groups=True)


CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})


def _mixed_scripts(text: str) -> list[str]:
    """The look-alike scripts mixed in `text` (a Cyrillic a next to Latin letters), or an empty list."""
    if text.isascii():  # Latin letters only (a policy names thousands of users)
        return []
    scripts = {unicodedata.name(char, "").split(" ")[0] for char in text if char.isalpha()}
    mixed = sorted(scripts & CONFUSABLE_SCRIPTS)
    return mixed if len(mixed) > 1 else []


def _check_scripts(policy: Policy, warnings: list[Problem]) -> None:
    """Warn about identifiers that mix look-alike scripts: a homoglyph can make one name pass for another."""
    named: list[tuple[str, Location]] = []
    for alias, user in policy.users.items():
        named.append((alias, user.location))
        if user.ref.account:
            named.append((user.ref.account, user.location))
    for name, group in policy.groups.items():
        named.append((name, group.location))
        if group.quickbi_group:
            named.append((group.quickbi_group, group.location))
        named.extend(zip(group.members, group.member_locations, strict=True))
    for rule in policy.rules:
        named.extend(rule.principals)
    named.extend(policy.protected)
    reported: set[str] = set()
    for name, location in named:
        mixed = _mixed_scripts(name)
        if mixed and name not in reported:
            reported.add(name)
            warnings.append(
                Problem(
                    f"'{name}' mixes {' and '.join(s.title() for s in mixed)} letters",
                    location,
                    "a look-alike of another name? retype it in one script",
                )
            )


def _check_groups(policy: Policy, problems: list[Problem]) -> None:
    """Cycles, then groups that can only ever expand to nobody. Each group is visited once (a diamond of nested
    groups 24 levels deep would otherwise cost 2^24 walks)."""
    cycles = _cycles(policy)
    for cycle in cycles:
        problems.append(
            Problem(
                "group cycle: " + " -> ".join([*cycle, cycle[0]]),
                policy.groups[cycle[0]].location,
                "remove one of the nested memberships",
            )
        )
    if cycles:
        return
    most = limits.current.group_nesting
    too_deep = sorted(name for name, levels in _nesting(policy).items() if levels > most)
    if too_deep:
        problems.append(
            Problem(
                f"group '{too_deep[0]}' nests groups more than {most} levels deep",
                policy.groups[too_deep[0]].location,
                "flatten the group structure",
            )
        )
        return
    populated: dict[str, bool] = {}
    for name in sorted(policy.groups):
        if not _can_have_members(policy, name, populated):
            problems.append(
                Problem(
                    f"group '{name}' expands to nobody",
                    policy.groups[name].location,
                    "add members or a quickbi_group, or delete the group",
                )
            )


def _cycles(policy: Policy) -> list[list[str]]:
    """One cycle per strongly connected knot of nested groups, found by an iterative depth-first search."""
    done: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(policy.groups):
        if start in done:
            continue
        trail: list[str] = [start]
        on_trail = {start}
        pending = [iter(sorted(set(policy.groups[start].members) & policy.groups.keys()))]
        while pending:
            child = next(pending[-1], None)
            if child is None:
                pending.pop()
                finished = trail.pop()
                on_trail.discard(finished)
                done.add(finished)
                continue
            if child in on_trail:
                cycle = trail[trail.index(child) :]
                if not any(set(cycle) & set(known) for known in found):
                    found.append(cycle)
            elif child not in done:
                trail.append(child)
                on_trail.add(child)
                pending.append(iter(sorted(set(policy.groups[child].members) & policy.groups.keys())))
    return found


def _nesting(policy: Policy) -> dict[str, int]:
    """How many levels of groups each group contains (1: users only). The groups have no cycle."""
    depth: dict[str, int] = {}
    for start in sorted(policy.groups):
        stack = [start]
        while stack:
            name = stack[-1]
            if name in depth:
                stack.pop()
                continue
            children = [m for m in policy.groups[name].members if m in policy.groups]
            waiting = [c for c in children if c not in depth]
            if waiting:
                stack.extend(waiting)
                continue
            depth[name] = 1 + max((depth[c] for c in children), default=0)
            stack.pop()
    return depth


def _can_have_members(policy: Policy, name: str, memo: dict[str, bool]) -> bool:
    if name not in memo:
        memo[name] = False  # while deciding: a member loop adds nobody
        group = policy.groups[name]
        memo[name] = bool(group.quickbi_group) or any(
            m not in policy.groups or _can_have_members(policy, m, memo) for m in group.members
        )
    return memo[name]


def _digest(parsed: list[tuple[LocatedDocument, PolicyFile]]) -> str:
    canonical = [model.model_dump(mode="json") for _, model in parsed]
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(payload).hexdigest()
