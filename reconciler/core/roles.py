"""Role mining for `import`: few roles (groups of users sharing a set of grants) that give every user exactly
the grants they hold, no more: a minimum biclique cover of the user x permission matrix, found heuristically.

The method (after Ene et al., "Fast exact and heuristic methods for role minimization problems", 2008):

1. Reduce. Users with the same permissions are one row. A row that is the union of the rows strictly inside
   it needs no role of its own: the roles of those rows give it everything. The same holds for permissions
   (columns), the problem being symmetric. Both reductions repeat until nothing changes; what is left (the
   core) usually falls apart into independent components.
2. Cover each component with the smallest of: one role per row, one role per column, and a greedy cover by
   candidate roles (the closed sets of rows and of pairwise row intersections, from the side with fewer
   pairs), picking each time the role that covers most cells not yet covered, then dropping roles made
   redundant by later ones.
3. Expand. Each role is given to every user who holds all its permissions, and given every permission all of
   those users hold; a user left short (which the reductions rule out) would get a role of their own row.
4. Pare. Each role keeps only the permissions no other role already gives all its users (the roles of fewest
   users first), so that a one-person role holds only what is that person's alone.

Everything is deterministic: the same matrix gives the same roles in the same order.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Generic, TypeVar

from reconciler.vocabulary import bitsets

User = TypeVar("User", bound=Hashable)
Permission = TypeVar("Permission", bound=Hashable)

# above this many row pairs in a component, candidate generation would cost more than seconds: the component is
# covered by its rows or columns alone
MAX_CANDIDATE_PAIRS = 200_000


@dataclass(frozen=True)
class Role(Generic[User, Permission]):
    users: frozenset[User]
    permissions: frozenset[Permission]


def mine_roles(rows: Mapping[User, frozenset[Permission]]) -> list[Role[User, Permission]]:
    """Roles covering `rows` exactly: every user's permissions are the union of their roles' permissions, and
    no role gives a user a permission they lack. Users without permissions get no role."""
    users = sorted((u for u in rows if rows[u]), key=repr)
    if not users:
        return []
    permissions = sorted({p for u in users for p in rows[u]}, key=repr)
    column = {p: i for i, p in enumerate(permissions)}
    masks = {u: bitsets.mask(column[p] for p in rows[u]) for u in users}
    distinct = sorted(set(masks.values()))
    core = _reduce(distinct)
    intents: list[int] = []
    for component in _components(core):
        intents.extend(_cover(component))
    roles = _pared(_expand(intents, masks), masks)
    return [
        Role(frozenset(members), frozenset(permissions[i] for i in bitsets.members(intent)))
        for intent, members in sorted(roles.items(), key=lambda item: (-len(item[1]), -_count(item[0]), item[0]))
    ]


def _count(mask: int) -> int:
    return mask.bit_count()


def _unions_removed(rows: list[int]) -> list[int]:
    """The distinct rows that are not the union of the rows strictly inside them."""
    rows = sorted(set(rows), key=lambda r: (_count(r), r))
    holding: dict[int, list[int]] = defaultdict(list)  # column -> indices of the rows (so far) holding it
    kept = []
    for index, row in enumerate(rows):
        inside = 0
        for other in {j for column in bitsets.members(row) for j in holding[column]}:
            smaller = rows[other]
            if smaller & row == smaller and smaller != row:
                inside |= smaller
        if inside != row:
            kept.append(row)
        for column in bitsets.members(row):
            holding[column].append(index)
    return kept


def _reduce(rows: list[int]) -> list[int]:
    """The core: rows (over the original columns) after removing, until nothing changes, rows and columns that
    are unions of others (and all but one of identical columns). Removed columns are cleared from the rows, so
    the core's columns are original ones."""
    while True:
        reduced = _unions_removed(rows)
        columns_of = bitsets.transposed(dict(enumerate(reduced)))
        kept_columns = set(_unions_removed(list(columns_of.values())))
        first_of: dict[int, int] = {}
        for column in sorted(columns_of):
            first_of.setdefault(columns_of[column], column)
        keep = bitsets.mask(column for users, column in first_of.items() if users in kept_columns)
        reduced = sorted({row & keep for row in reduced} - {0})
        if reduced == rows:
            return rows
        rows = reduced


def _components(rows: list[int]) -> list[list[int]]:
    """Rows grouped into the connected parts of the row-column graph."""
    parent = list(range(len(rows)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    owner: dict[int, int] = {}
    for index, row in enumerate(rows):
        for column in bitsets.members(row):
            if column in owner:
                parent[find(index)] = find(owner[column])
            else:
                owner[column] = index
    groups: dict[int, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[find(index)].append(row)
    return [groups[k] for k in sorted(groups)]


def _cover(rows: list[int]) -> list[int]:
    """Role intents (over the original columns) covering one component exactly, as few as found."""
    by_row = list(rows)
    columns = bitsets.transposed(dict(enumerate(rows)))
    by_column = [_closure_of_users(users, rows) for _, users in sorted(columns.items())]
    options = [by_row, sorted(set(by_column))]
    if len(rows) > 2:
        options.append(_greedy(rows, rows))
        column_rows = list(columns.values())
        if len(column_rows) > 2 and len(column_rows) ** 2 // 2 <= MAX_CANDIDATE_PAIRS:
            # the same search from the columns' side: candidates are user sets, turned into intents
            user_sets = _greedy(column_rows, column_rows)
            options.append(sorted({_closure_of_users(users, rows) for users in user_sets}))
    return min(options, key=lambda option: (len(option), option))


def _closure_of_users(users: int, rows: list[int]) -> int:
    """The permissions every one of `users` (indices into `rows`) holds."""
    intent = -1
    for index in bitsets.members(users):
        intent &= rows[index]
    return max(intent, 0)


def _greedy(rows: list[int], seeds: list[int]) -> list[int]:
    """A greedy cover of `rows` by closed intents from `seeds` and their pairwise intersections (when that many
    pairs are affordable), redundant picks dropped."""
    columns = bitsets.transposed(dict(enumerate(rows)))
    candidates = set(seeds)
    if len(seeds) ** 2 // 2 <= MAX_CANDIDATE_PAIRS:
        candidates.update(a & b for a, b in combinations(sorted(set(seeds)), 2))
    candidates.discard(0)
    closed: dict[int, int] = {}  # intent -> extent (row indices)
    for candidate in sorted(candidates):
        extent = -1
        for column in bitsets.members(candidate):
            extent &= columns[column]
        intent = _closure_of_users(extent, rows)
        closed[intent] = extent
    uncovered = list(rows)
    heap = [(-_gain(intent, extent, uncovered), intent) for intent, extent in closed.items()]
    heapq.heapify(heap)
    chosen: list[int] = []
    left = sum(map(_count, rows))
    while left and heap:
        _, intent = heapq.heappop(heap)
        gain = _gain(intent, closed[intent], uncovered)
        if gain == 0:
            continue
        if heap and -gain > heap[0][0]:  # gains only fall: a recomputed one below the next stale one waits
            heapq.heappush(heap, (-gain, intent))
            continue
        chosen.append(intent)
        for index in bitsets.members(closed[intent]):
            uncovered[index] &= ~intent
        left -= gain
    return _without_redundant(chosen, rows)


def _gain(intent: int, extent: int, uncovered: list[int]) -> int:
    return sum(_count(uncovered[index] & intent) for index in bitsets.members(extent))


def _without_redundant(intents: list[int], rows: list[int]) -> list[int]:
    """`intents` less those whose every cell another kept intent covers (latest picks dropped first)."""
    kept = list(intents)
    for intent in reversed(intents):
        others = [i for i in kept if i != intent]
        if all(_union_inside(row, others) == row for row in rows if intent & row == intent):
            kept = others
    return sorted(kept)


def _union_inside(row: int, intents: list[int]) -> int:
    covered = 0
    for intent in intents:
        if intent & row == intent:
            covered |= intent
    return covered


def _expand(intents: list[int], masks: Mapping[User, int]) -> dict[int, set[User]]:
    """Each intent given to every user holding it and closed over them; users left short get their own row."""
    users_of: dict[int, list[User]] = defaultdict(list)  # distinct row -> its users
    for user, row in masks.items():
        users_of[row].append(user)
    rows = sorted(users_of)
    held: dict[int, set[int]] = {}  # intent -> the distinct rows holding it
    for intent in intents:
        holders = {row for row in rows if row & intent == intent}
        closed = -1
        for row in holders:
            closed &= row
        held.setdefault(max(closed, 0), set()).update(holders)
    for row in rows:
        if _union_inside(row, [i for i in held if row in held[i]]) != row:
            held.setdefault(row, set()).update(r for r in rows if r & row == row)
    kept = _drop_unneeded(held)
    return {intent: {u for row in holders for u in users_of[row]} for intent, holders in kept.items()}


def _pared(roles: dict[int, set[User]], masks: Mapping[User, int]) -> dict[int, set[User]]:
    """Each role less the permissions that other roles already give all its users, the roles of fewest users
    pared first: a one-person role then holds only what is that person's alone. Paring only removes, so no user
    gains a permission; a permission is removed from a role only while another role still gives it."""
    given: dict[User, dict[int, int]] = defaultdict(lambda: defaultdict(int))  # user -> column -> roles giving it
    for intent, members in roles.items():
        for user in members:
            for column in bitsets.members(intent):
                given[user][column] += 1
    pared: dict[int, set[User]] = {}
    for intent in sorted(roles, key=lambda i: (len(roles[i]), _count(i), i)):
        members = roles[intent]
        spare = bitsets.mask(c for c in bitsets.members(intent) if all(given[u][c] > 1 for u in members))
        kept = intent & ~spare
        for user in members:
            for column in bitsets.members(spare):
                given[user][column] -= 1
        if kept:
            pared.setdefault(kept, set()).update(members)
    return pared


def _drop_unneeded(held: dict[int, set[int]]) -> dict[int, set[int]]:
    """Roles whose every cell other roles also give, dropped (those reaching fewest cells first)."""
    kept = {intent: set(holders) for intent, holders in held.items()}
    roles_of: dict[int, list[int]] = defaultdict(list)
    for intent, holders in kept.items():
        for row in holders:
            roles_of[row].append(intent)
    for intent in sorted(held, key=lambda i: (len(held[i]) * _count(i), i)):
        holders = kept[intent]
        if all(_union_inside(row, [i for i in roles_of[row] if i != intent]) == row for row in holders):
            del kept[intent]
            for row in holders:
                roles_of[row].remove(intent)
    return kept
