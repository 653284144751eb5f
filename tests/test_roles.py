"""Role mining: every cover is exact (no user gets a permission they lack, none loses one), deterministic, and
never worse than the trivial covers; the reductions find the optimum where they are known to."""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.roles import Role, mine_roles


def _check_exact(rows: dict[str, frozenset[str]], roles: list[Role[str, str]]) -> None:
    given_to: dict[str, set[str]] = defaultdict(set)
    for role in roles:
        for user in role.users:
            assert role.permissions <= rows[user], (user, role)
            given_to[user] |= role.permissions
    assert {u: frozenset(p) for u, p in given_to.items()} == {u: r for u, r in rows.items() if r}


def _minimum(rows: dict[str, frozenset[str]]) -> int:
    """Brute force, for tiny matrices: the fewest concepts covering every cell."""
    users = sorted(rows)
    intents = set()
    for size in range(1, len(users) + 1):
        for group in combinations(users, size):
            common = frozenset.intersection(*(rows[u] for u in group))
            if common:
                intents.add(common)
    cells = {(u, p) for u in users for p in rows[u]}
    for count in range(1, len(intents) + 1):
        for chosen in combinations(sorted(intents, key=sorted), count):
            covered = {(u, p) for i in chosen for u in users if i <= rows[u] for p in i}
            if covered == cells:
                return count
    return 0


matrices = st.dictionaries(
    st.sampled_from([f"u{i}" for i in range(7)]),
    st.frozensets(st.sampled_from("abcdef"), max_size=5),
    min_size=1,
)


@settings(max_examples=150, deadline=None)
@given(matrices)
def test_every_cover_is_exact_and_no_worse_than_one_role_per_row_or_column(rows: dict[str, frozenset[str]]) -> None:
    roles = mine_roles(rows)
    _check_exact(rows, roles)
    distinct_rows = {r for r in rows.values() if r}
    columns: dict[str, set[str]] = defaultdict(set)
    for user, row in rows.items():
        for permission in row:
            columns[permission].add(user)
    distinct_columns = {frozenset(c) for c in columns.values()}
    assert len(roles) <= min(len(distinct_rows), len(distinct_columns))
    assert mine_roles(dict(reversed(rows.items()))) == roles  # the order rows come in does not matter


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.frozensets(st.sampled_from("wxyz")), min_size=1))
def test_small_matrices_get_a_minimum_cover(rows: dict[str, frozenset[str]]) -> None:
    assert len(mine_roles(rows)) == _minimum(rows)


def test_a_user_holding_the_union_of_others_needs_no_role_of_their_own() -> None:
    rows = {"ann": frozenset("ab"), "ben": frozenset("cd"), "cat": frozenset("abcd"), "dan": frozenset("ab")}
    roles = mine_roles(rows)
    assert roles == [
        Role(frozenset({"ann", "cat", "dan"}), frozenset("ab")),
        Role(frozenset({"ben", "cat"}), frozenset("cd")),
    ]


def test_when_columns_explain_users_better_the_columns_side_is_taken() -> None:
    # every pair of users shares exactly one permission: 4 users, 6 permissions, rows are not unions of others;
    # one role per column needs 6, per row 4 (the minimum)
    pairs = list(combinations("abcd", 2))
    rows = {u: frozenset(f"{x}{y}" for x, y in pairs if u in (x, y)) for u in "abcd"}
    assert len(mine_roles(rows)) == _minimum(rows) == 4
    transposed: dict[str, frozenset[str]] = {}
    for user, row in rows.items():
        for permission in row:
            transposed[permission] = transposed.get(permission, frozenset()) | {user}
    assert len(mine_roles(transposed)) == _minimum(transposed)


def test_users_without_permissions_get_no_role() -> None:
    assert mine_roles({"ann": frozenset()}) == []
    assert mine_roles({}) == []
