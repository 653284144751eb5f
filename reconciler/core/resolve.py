"""Resolve a policy's names to Quick BI IDs and expand it into the desired cells, each with its expiry."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, product

from reconciler.core.policy import (
    CubeRef,
    EmbedDef,
    Expiry,
    Policy,
    ResourceDef,
    Rule,
    TargetName,
    latest_day,
    undeclared_grant_problem,
)
from reconciler.core.ports import AccessService, DirectoryGroup, DirectoryUser
from reconciler.vocabulary.base import bulk_data
from reconciler.vocabulary.cells import Cell, CellRows, ResourceKind, Target
from reconciler.vocabulary.errors import Location, Problem, ReconcilerError

_NO_STATEMENTS: dict[Target, int] = {}  # the row of a user the policy gives nothing (never written to)


class DesiredCells(Mapping[Cell, Expiry]):
    """Each desired cell's expiry, held per user: {user: {target: the statement that wins the cell}}, the expiry
    looked up through the statement.

    Users given the same statements share one row object: 100,000 users of a few hundred roles hold a few
    hundred rows, not millions of cells (a dict keyed by 3 M cells cost 380 MB), and the diff decides once per
    distinct row. Rows are shared, so they are never changed once made.
    """

    def __init__(self, rows: dict[str, dict[Target, int]], expiries: Sequence[Expiry]) -> None:
        self.rows = rows
        self.expiries = expiries
        self._size = sum(map(len, rows.values()))

    @classmethod
    def of(cls, cells: Mapping[Cell, Expiry]) -> DesiredCells:
        """Plain cells and their expiries, each distinct expiry standing for a statement."""
        indices: dict[int, int] = {}
        expiries: list[Expiry] = []
        rows: dict[str, dict[Target, int]] = defaultdict(dict)
        for (user, target), expiry in cells.items():
            if id(expiry) not in indices:
                indices[id(expiry)] = len(expiries)
                expiries.append(expiry)
            rows[user][target] = indices[id(expiry)]
        return cls(dict(rows), expiries)

    def __getitem__(self, cell: Cell) -> Expiry:
        return self.expiries[self.rows[cell[0]][cell[1]]]

    def __iter__(self) -> Iterator[Cell]:
        return chain.from_iterable(product((user,), row) for user, row in self.rows.items())

    def __len__(self) -> int:
        return self._size

    def __contains__(self, cell: object) -> bool:
        return isinstance(cell, tuple) and len(cell) == 2 and cell[1] in self.rows.get(cell[0], _NO_STATEMENTS)

    def row(self, user: str) -> Mapping[Target, int]:
        """The user's targets, each with the statement that wins it (empty for a user given nothing)."""
        return self.rows.get(user, _NO_STATEMENTS)

    def source(self, cell: Cell) -> int | None:
        """The statement that wins `cell` (the one with the latest expiry, the first on ties), if desired."""
        return self.rows.get(cell[0], _NO_STATEMENTS).get(cell[1])

    def sources_of(self, cells: Iterable[Cell]) -> Counter[int | None]:
        """How many of `cells` each statement wins (None: not desired). Rows of cells are counted once per
        distinct (cells' row, desired row), times the users sharing both."""
        counts: Counter[int | None] = Counter()
        if not isinstance(cells, CellRows):
            counts.update(map(self.source, cells))
            return counts
        users: Counter[tuple[int, int]] = Counter()
        pairs: dict[tuple[int, int], tuple[frozenset[Target], Mapping[Target, int]]] = {}
        for user, targets in cells.rows.items():
            row = self.row(user)
            key = (id(targets), id(row))
            users[key] += 1
            pairs.setdefault(key, (targets, row))
        for key, sharing in users.items():
            targets, row = pairs[key]
            for target in targets:
                counts[row.get(target)] += sharing
        return counts

    def distinct_rows(self) -> list[dict[Target, int]]:
        return list({id(row): row for row in self.rows.values()}.values())

    def targets(self) -> frozenset[Target]:
        """Every target some user is given."""
        return frozenset(chain.from_iterable(self.distinct_rows()))


@dataclass(frozen=True)
class Desired:
    """What the policy wants, in Quick BI IDs, and the scope within which it may revoke."""

    cells: DesiredCells
    managed: frozenset[Target] | None  # None: every target is managed (manage_all_targets)
    protected: frozenset[str]
    directory: dict[str, str]  # every user of the organisation: UserId -> account name
    target_names: dict[Target, str]
    policy_digest: str
    # managed at the last apply but no longer declared nor released: every grant on them is revoked
    removed: frozenset[Target] = frozenset()
    released: frozenset[Target] = frozenset()
    # the grant statements, in the order `cells` numbers them
    rules: tuple[Rule, ...] = ()
    # principal name, user -> the membership chain that brings the user in; computed only when asked
    trace: Callable[[str, str], tuple[str, ...]] = field(default=lambda name, user: (name,), repr=False)
    # policy names as resolved: user aliases and groups -> UserIds, resource aliases -> targets
    principals: dict[str, frozenset[str]] = field(default_factory=dict)
    resources: dict[str, frozenset[Target]] = field(default_factory=dict)
    embeds: dict[str, Embed] = field(default_factory=dict)

    def users_named(self, ref: str) -> frozenset[str]:
        """UserIds for a user alias, a group, `id:<UserId>`, `account:<name>` or a bare account name."""
        if ref in self.principals:
            return self.principals[ref]
        if ref.startswith("id:") and ref[3:] in self.directory:
            return frozenset({ref[3:]})
        account = ref.removeprefix("account:")
        return frozenset(uid for uid, name in self.directory.items() if name == account)

    def targets_named(self, ref: str) -> frozenset[Target]:
        """Targets for a resource alias, `id:<ID>`, or a display name."""
        if ref in self.resources:
            return self.resources[ref]
        if ref.startswith("id:"):
            return frozenset(t for t in self.target_names if t.id == ref[3:])
        return frozenset(t for t, name in self.target_names.items() if name == ref)

    def provenance(self, cell: Cell) -> Provenance | None:
        """Why policy wants `cell`: the grant statement, and the chain of groups that brings the user in."""
        index = self.cells.source(cell) if self.rules else None
        if index is None:
            return None
        rule = self.rules[index]
        user = cell[0]
        for name, _ in rule.principals:
            path = self.trace(name, user)
            if path:
                return Provenance(rule.location, path, rule.expires)
        return Provenance(rule.location, (), rule.expires)

    def is_managed(self, target: Target) -> bool:
        return self.managed is None or target in self.managed or target in self.removed

    def managed_record(self) -> frozenset[Target]:
        """What to remember as managed after an apply: declared targets, or with manage_all_targets the ones
        the policy grants (so that turning manage_all_targets off later revokes only what it had granted)."""
        if self.managed is not None:
            return self.managed
        return self.cells.targets()


@dataclass(frozen=True)
class Embed(EmbedDef):
    """A copilot embed resolved: its definition, with who may get tickets as UserIds and its data range as
    targets (every target of `range_kind` when `targets` is None)."""

    users: frozenset[str] = frozenset()
    targets: frozenset[Target] | None = None


@dataclass(frozen=True)
class Provenance:
    """A desired cell's source: the grant statement's location, the membership path, the expiry it sets."""

    rule: Location
    path: tuple[str, ...]  # e.g. ("analysts", "sales-leads", "alice"): from the grant's `to` down to the user
    expiry: Expiry

    def __str__(self) -> str:
        return f"{' ← '.join(reversed(self.path))} (grant at {self.rule})"


class _Directory:
    def __init__(self, users: list[DirectoryUser], groups: list[DirectoryGroup], catalogue: dict[Target, str]):
        self.users = {u.user_id: u for u in users}
        self.by_account: dict[str, list[str]] = {}
        for user in users:
            self.by_account.setdefault(user.account, []).append(user.user_id)
        self.groups = groups
        self.catalogue = catalogue
        self.cubes = {t.id: name for t, name in catalogue.items() if t.kind == "llm_cube"}
        self.themes = {t.id: name for t, name in catalogue.items() if t.kind == "theme"}


async def resolve(
    policy: Policy,
    service: AccessService,
    today: dt.date,
    previously_managed: frozenset[Target] = frozenset(),
) -> Desired:
    """Look every name up once, then expand groups and grants. Raises ReconcilerError with policy locations.

    Cubes are identified the way the service reads grants back (`service.cube_readback`), so that policy and
    live state compare: by LlmCube ID, or by dataset ID (granted through CubeIds).
    `previously_managed` is the state's record of the targets managed at the last apply: those the policy no
    longer declares or releases are *removed*, and their grants revoked.
    """
    needs_groups = any(g.quickbi_group for g in policy.groups.values())
    with bulk_data():  # a directory of 10^5 users, kept for the whole run
        users, groups, catalogue = await asyncio.gather(
            service.users(), service.groups() if needs_groups else _no_groups(), service.catalogue()
        )
        directory = _Directory(users, groups, catalogue)
    resolver = _Resolver(policy, directory, service)
    await resolver.load_groups()
    await resolver.check_datasets()
    with bulk_data():
        desired = resolver.desired(today)
    if desired.managed is None:
        return desired
    released = frozenset(resolver.released_target(name) for name in policy.released)
    removed = previously_managed - desired.managed - released
    return replace(desired, removed=removed, released=released)


async def _no_groups() -> list[DirectoryGroup]:
    return []


def _rows_by_statements(
    statements_of: dict[str, list[int]], granted: Sequence[frozenset[Target]], days: Sequence[dt.date]
) -> dict[str, dict[Target, int]]:
    """Each user's row: every target their statements grant, won by the statement with the latest expiry (the
    first on ties). Users given the same statements share one row, made once."""
    made: dict[tuple[int, ...], dict[Target, int]] = {}
    rows: dict[str, dict[Target, int]] = {}
    for user, indices in statements_of.items():
        key = tuple(indices)
        row = made.get(key)
        if row is None:
            row = made[key] = {}
            for index in indices:
                for target in granted[index]:
                    held = row.get(target)
                    if held is None or days[index] > days[held]:
                        row[target] = index
        rows[user] = row
    return rows


class _Resolver:
    def __init__(self, policy: Policy, directory: _Directory, service: AccessService) -> None:
        self.policy = policy
        self.cube_readback = service.cube_readback
        self.datasets_with_smartq: set[str] = set()
        self.directory = directory
        self.service = service
        self.problems: list[Problem] = []
        self.quickbi_members: dict[str, set[str]] = {}
        self._principals: dict[str, frozenset[str]] = {}

    async def load_groups(self) -> None:
        wanted = {g.quickbi_group: g for g in self.policy.groups.values() if g.quickbi_group}
        ids: dict[str, str] = {}
        for name, group in sorted(wanted.items()):
            matches = [g.group_id for g in self.directory.groups if name in (g.group_id, g.name)]
            if len(set(matches)) != 1:
                what = "no Quick BI user group" if not matches else "several Quick BI user groups"
                self.problems.append(
                    Problem(f"{what} named '{name}'", group.location, "use the group's ID or a unique name")
                )
                continue
            ids[name] = matches[0]
        members = await asyncio.gather(*(self.service.group_users(gid) for gid in ids.values()))
        self.quickbi_members = dict(zip(ids, members, strict=True))

    async def check_datasets(self) -> None:
        """Dataset references are checked with QueryDatasetSmartqStatus: the dataset must have a Q&A resource."""
        datasets = sorted(
            {
                r.ref.dataset
                for r in self.policy.resources.values()
                if isinstance(r.ref, CubeRef) and r.ref.dataset is not None
            }
        )
        if self.cube_readback != "dataset" or not datasets:
            return
        enabled = await asyncio.gather(*(self.service.dataset_has_smart_q(d) for d in datasets))
        self.datasets_with_smartq = {d for d, on in zip(datasets, enabled, strict=True) if on}

    def desired(self, today: dt.date) -> Desired:
        targets = {key: self._target(resource) for key, resource in sorted(self.policy.resources.items())}
        declared = None if self.policy.manage_all_targets else frozenset(t for t in targets.values() if t)
        rules = self.policy.rules
        statements_of: dict[str, list[int]] = defaultdict(list)  # user -> the statements giving them cells
        granted: list[frozenset[Target]] = []  # each statement's targets, by index
        for index, rule in enumerate(rules):
            if rule.lapsed(today):
                self._check_lapsed_targets(rule, declared)
                granted.append(frozenset())
                continue
            users: set[str] = set()
            for name, location in rule.principals:
                users |= self._principal(name, location)
            named = (self._granted_target(name, targets, declared) for name in rule.targets)
            granted.append(frozenset(t for t in named if t is not None))
            if granted[index]:
                for user in users:
                    statements_of[user].append(index)
        days = [latest_day(rule.expires, today) for rule in rules]
        cells = DesiredCells(_rows_by_statements(statements_of, granted, days), [rule.expires for rule in rules])
        protected: set[str] = set()
        for name, location in self.policy.protected:
            protected |= self._principal(name, location)
        embeds = self._embeds(targets)
        if self.problems:
            raise ReconcilerError(self.problems)
        managed = declared
        accounts = {uid: u.account for uid, u in self.directory.users.items()}
        return Desired(
            cells,
            managed,
            frozenset(protected),
            accounts,
            dict(self.directory.catalogue),
            self.policy.digest,
            rules=self.policy.rules,
            trace=self.trace,
            principals=self._all_principals(),
            resources=self._resource_targets(targets),
            embeds=embeds,
        )

    def _named_target(self, name: TargetName, targets: dict[tuple[ResourceKind, str], Target | None]) -> Target | None:
        """The target a grant or an embed names: an alias under resources, or an inline id:<ID>."""
        if name.kind == "llm_cube" and self.cube_readback == "dataset" and name.name.startswith("id:"):
            self.problems.append(
                Problem(
                    f"llm_cube '{name.name}' is an LlmCube ID, but this target reads grants back by dataset ID",
                    name.location,
                    "declare the cube under resources.llm_cubes as {dataset: <cube id>} and use its alias",
                )
            )
            return None
        if name.name.startswith("id:"):
            return self._inline_target(name.kind, name.name[3:], name.location)
        return targets[(name.kind, name.name)]

    def _granted_target(
        self,
        name: TargetName,
        targets: dict[tuple[ResourceKind, str], Target | None],
        declared: frozenset[Target] | None,
    ) -> Target | None:
        """A grant's target, which must be managed: an inline `id:` of an undeclared target is refused, since
        nothing could ever revoke what it grants."""
        target = self._named_target(name, targets)
        if target is not None and declared is not None and target not in declared:
            self.problems.append(undeclared_grant_problem(name))
            return None
        return target

    def _check_lapsed_targets(self, rule: Rule, declared: frozenset[Target] | None) -> None:
        """A lapsed grant gives nothing, but its live grants are revoked only on a managed target."""
        if declared is None:
            return
        for name in rule.targets:
            if name.name.startswith("id:") and Target(name.kind, name.name[3:]) not in declared:
                self.problems.append(undeclared_grant_problem(name))

    def _embeds(self, targets: dict[tuple[ResourceKind, str], Target | None]) -> dict[str, Embed]:
        embeds = {}
        for name, embed in self.policy.embeds.items():
            users: set[str] = set()
            for who, location in embed.principals:
                users |= self._principal(who, location)
            reach = None
            if embed.data_range is not None:
                named = [self._named_target(t, targets) for t in embed.data_range]
                reach = frozenset(t for t in named if t is not None)
            embeds[name] = Embed(**vars(embed), users=frozenset(users), targets=reach)
        return embeds

    def _all_principals(self) -> dict[str, frozenset[str]]:
        for name in [*self.policy.users, *self.policy.groups]:
            self._principal(name, Location("", 0))
        return dict(self._principals)

    @staticmethod
    def _resource_targets(targets: dict[tuple[ResourceKind, str], Target | None]) -> dict[str, frozenset[Target]]:
        found: dict[str, set[Target]] = {}
        for (_, alias), target in targets.items():
            if target is not None:
                found.setdefault(alias, set()).add(target)
        return {alias: frozenset(t) for alias, t in found.items()}

    def trace(self, name: str, user: str) -> tuple[str, ...]:
        """The chain from principal `name` down to `user` (empty if `name` does not bring the user in)."""
        if user not in self._principals.get(name, frozenset()):
            return ()
        group = self.policy.groups.get(name)
        if group is None:
            return (name,)
        for member in group.members:
            below = self.trace(member, user)
            if below:
                return (name, *below)
        if group.quickbi_group and user in self.quickbi_members.get(group.quickbi_group, set()):
            return (name, f"Quick BI group {group.quickbi_group}")
        return (name,)

    def released_target(self, name: TargetName) -> Target:
        """A released target need not exist any more in Quick BI: it is only compared with the state's record."""
        kind = "dataset" if name.kind == "llm_cube" and self.cube_readback == "dataset" else name.kind
        return Target(kind, name.name[3:])

    def _target(self, resource: ResourceDef) -> Target | None:
        ref = resource.ref
        if resource.kind == "llm_cube":
            assert isinstance(ref, CubeRef)
            if self.cube_readback == "dataset":
                return self._dataset(resource, ref)
            if ref.dataset is not None:
                self.problems.append(
                    Problem(
                        f"llm_cube '{resource.alias}' is named by dataset, but this target reads grants back by "
                        "LlmCube ID",
                        resource.location,
                        "name it by id or alias, or set cube_readback: dataset on the target",
                    )
                )
                return None
            if ref.id is not None:
                return self._inline_target("llm_cube", ref.id, resource.location)
            return self._by_name("llm_cube", ref.alias or "", self.directory.cubes, resource.location)
        theme_id = getattr(ref, "id", None)
        if theme_id is not None:
            return self._inline_target("theme", theme_id, resource.location)
        return self._by_name("theme", getattr(ref, "name", "") or "", self.directory.themes, resource.location)

    def _dataset(self, resource: ResourceDef, ref: CubeRef) -> Target | None:
        if ref.dataset is None:
            self.problems.append(
                Problem(
                    f"llm_cube '{resource.alias}' must be named by dataset on this target",
                    resource.location,
                    "it reads grants back by dataset ID (cube_readback: dataset): write {dataset: <cube id>}",
                )
            )
            return None
        if ref.dataset not in self.datasets_with_smartq:
            self.problems.append(
                Problem(
                    f"dataset '{ref.dataset}' has no Smart Q (Q&A) resource in Quick BI",
                    resource.location,
                    "check the dataset ID, or enable Smart Q on it",
                )
            )
            return None
        return Target("dataset", ref.dataset)

    def _inline_target(self, kind: str, target_id: str, location: Location) -> Target | None:
        known = self.directory.cubes if kind == "llm_cube" else self.directory.themes
        if target_id not in known:
            listing = "llmCube" if kind == "llm_cube" else "llmCubeTheme"
            self.problems.append(
                Problem(
                    f"{kind} '{target_id}' does not exist in Quick BI",
                    location,
                    f"check the ID against QueryDataRange Type={listing}",
                )
            )
            return None
        return Target(kind, target_id)  # type: ignore[arg-type]

    def _by_name(self, kind: str, name: str, known: dict[str, str], location: Location) -> Target | None:
        matches = sorted(k for k, v in known.items() if v == name)
        if len(matches) != 1:
            what = "no" if not matches else f"{len(matches)}"
            self.problems.append(
                Problem(f"{what} {kind}s named '{name}' in Quick BI", location, "name it by id to be unambiguous")
            )
            return None
        return Target(kind, matches[0])  # type: ignore[arg-type]

    def _principal(self, name: str, location: Location) -> frozenset[str]:
        cached = self._principals.get(name)
        if cached is not None:
            return cached
        result: frozenset[str]
        if name.startswith("id:"):
            result = self._user_id(name[3:], location)
        elif name.startswith("account:"):
            result = self._account(name[8:], location)
        elif name in self.policy.users:
            ref = self.policy.users[name].ref
            where = self.policy.users[name].location
            result = self._user_id(ref.id, where) if ref.id else self._account(ref.account or "", where)
        else:
            group = self.policy.groups[name]
            members: set[str] = set()
            for member, member_location in zip(group.members, group.member_locations, strict=True):
                members |= self._principal(member, member_location)
            if group.quickbi_group:
                from_quickbi = self.quickbi_members.get(group.quickbi_group)
                if from_quickbi is not None and not from_quickbi:
                    self.problems.append(
                        Problem(
                            f"group '{name}' resolved to nobody: Quick BI group '{group.quickbi_group}' is empty",
                            group.location,
                            "refusing to revoke a whole group's access on an empty directory answer",
                        )
                    )
                # a deactivated member of a Quick BI group cannot be granted; its live grants still get revoked
                members |= {u for u in from_quickbi or set() if not self.directory.users[u].deactivated}
            result = frozenset(members)
        self._principals[name] = result
        return result

    def _user_id(self, user_id: str, location: Location) -> frozenset[str]:
        if user_id not in self.directory.users:
            self.problems.append(Problem(f"user id '{user_id}' is not in the Quick BI organisation", location))
            return frozenset()
        if self.directory.users[user_id].deactivated:
            # Quick BI refuses grants to a deactivated user cell by cell; say so once, here
            self.problems.append(
                Problem(f"user '{user_id}' is deactivated in Quick BI", location, "remove them from the policy")
            )
            return frozenset()
        return frozenset({user_id})

    def _account(self, account: str, location: Location) -> frozenset[str]:
        matches = self.directory.by_account.get(account, [])
        if len(matches) != 1:
            what = "no Quick BI user" if not matches else "several Quick BI users"
            self.problems.append(
                Problem(f"{what} with account '{account}'", location, "check the account name or use id:<UserId>")
            )
            return frozenset()
        return self._user_id(matches[0], location)
