"""Planner rules, property-tested: coverage, no stray cells, the cap, determinism, never worse than naive."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import operator
import random
import sys
import threading
from unittest import mock

import networkx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.core import planner
from reconciler.core.diff import Changes
from reconciler.core.plan import make_batches
from reconciler.vocabulary import bitsets
from reconciler.vocabulary.cells import Cell, Target

rows_strategy = st.dictionaries(
    st.integers(0, 40), st.frozensets(st.integers(0, 160), min_size=1, max_size=130), max_size=25
)
# rows of one popular target and a few rarer ones, or of rare targets alone: most users' rows their own
scattered_rows = st.dictionaries(
    st.integers(0, 60),
    st.frozensets(st.integers(0, 12), max_size=2).map(lambda popular: popular | {0})
    | st.frozensets(st.integers(13, 90), min_size=1, max_size=3),
    max_size=40,
)


def naive(rows: dict[int, frozenset[int]]) -> int:
    by_user = sum(math.ceil(len(r) / 100) for r in rows.values())
    columns: dict[int, int] = {}
    for row in rows.values():
        for t in row:
            columns[t] = columns.get(t, 0) + 1
    by_target = sum(math.ceil(n / 100) for n in columns.values())
    return min(by_user, by_target)


def cells_of(rects: list[planner.Rect]) -> list[tuple[int, int]]:
    return [(u, t) for users, targets in rects for u in users for t in targets]


def strips_of(rows: dict[int, frozenset[int]], users_per_target: int) -> tuple[list[planner.Rect], ...]:
    """The rows cut into one-user strips of 7 targets, and the columns into one-target strips of that many users."""
    by_user = [((u,), tuple(sorted(r))[i : i + 7]) for u, r in sorted(rows.items()) for i in range(0, len(r), 7)]
    holders = sorted({t: tuple(sorted(u for u, r in rows.items() if t in r)) for r in rows.values() for t in r}.items())
    step = users_per_target
    by_target = [(users[i : i + step], (t,)) for t, users in holders for i in range(0, len(users), step)]
    return by_user, by_target


def assert_valid_cover_of_no_more_calls(
    rects: list[planner.Rect], strips: list[planner.Rect], rows: dict[int, frozenset[int]], permitted: planner.Rows
) -> None:
    touched = set(cells_of(rects))
    assert {(u, t) for u, r in rows.items() for t in r} <= touched
    assert all(t in permitted.get(u, frozenset()) for u, t in touched)
    assert all(0 < len(u) * len(t) <= 100 for u, t in rects)
    assert len(rects) <= len(strips)
    assert all(list(u) == sorted(u) and list(t) == sorted(t) for u, t in rects)


@given(rows_strategy)
@settings(max_examples=150, deadline=None)
def test_exact_cover_covers_exactly_within_the_cap(rows: dict[int, frozenset[int]]) -> None:
    rects = planner.cover(rows)
    wanted = {(u, t) for u, r in rows.items() for t in r}
    touched = cells_of(rects)
    assert set(touched) == wanted  # every cell, and nothing else (merged edge batches may share a cell)
    assert all(0 < len(u) * len(t) <= 100 for u, t in rects)
    assert len(rects) <= naive(rows)
    assert len(rects) >= planner.lower_bound(len(wanted))
    assert planner.cover(rows) == rects


@given(rows_strategy, st.dictionaries(st.integers(0, 40), st.frozensets(st.integers(0, 160), max_size=80)))
@settings(max_examples=150, deadline=None)
def test_dont_cares_are_used_only_where_allowed(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]]
) -> None:
    # users and targets only the allowance names are numbered too, though no cell needs them
    allowed = {u: rows.get(u, frozenset()) | extra.get(u, frozenset()) for u in rows.keys() | extra.keys()}
    rects = planner.cover(rows, allowed)
    touched = set(cells_of(rects))
    wanted = {(u, t) for u, r in rows.items() for t in r}
    assert wanted <= touched
    assert all(t in allowed.get(u, frozenset()) for u, t in touched)
    assert all(0 < len(u) * len(t) <= 100 for u, t in rects)
    assert len(rects) <= len(planner.cover(rows))


def test_role_widths_reach_the_lower_bound() -> None:
    for users in (100, 200, 1000):
        for width in (1, 3, 7, 51, 100, 101, 150):
            rects = planner.tile(range(users), range(width))
            assert len(rects) == planner.lower_bound(users * width), (users, width)


@given(st.integers(1, 300), st.lists(st.integers(1, 250), min_size=1, max_size=6))
@settings(max_examples=100, deadline=None)
def test_strips_cut_every_length_into_the_fewest_calls_whatever_was_asked_before(
    across: int, lengths: list[int]
) -> None:
    """One table of strips per height grows as longer lengths are asked for; each length's strips must be the
    fewest calls over every strip width from 1 to 100, whichever lengths came first."""
    fewest = [0]
    for x in range(1, max(lengths) + 1):
        fewest.append(min(math.ceil(across / (100 // d)) + fewest[x - d] for d in range(1, min(x, 100) + 1)))
    planner._strip_table.cache_clear()
    for length in lengths:
        calls, widths = planner._strips(across, length, 100)
        assert calls == fewest[length]
        assert sum(widths) == length
        assert sum(math.ceil(across / (100 // width)) for width in widths) == calls


def test_strips_asked_from_several_threads_at_once_stay_right() -> None:
    """Plans made in two threads share the strip tables: growing one must not interleave with growing it again."""
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for across in (7, 23, 61):
            planner._strip_table.cache_clear()
            found: dict[int, int] = {}

            def ask(first: int, across: int = across, found: dict[int, int] = found) -> None:
                for length in range(first, 400, 8):
                    found[length] = planner._strips(across, length, 100)[0]

            threads = [threading.Thread(target=ask, args=(first,)) for first in range(1, 9)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            fewest = [0]
            for x in range(1, 400):
                fewest.append(min(math.ceil(across / (100 // d)) + fewest[x - d] for d in range(1, min(x, 100) + 1)))
            assert all(calls == fewest[length] for length, calls in found.items()), across
    finally:
        sys.setswitchinterval(switching)


def test_scattered_revokes_pack_with_dont_cares() -> None:
    rows = {u: frozenset({u % 50}) for u in range(1000)}
    allowed = {u: frozenset(range(50)) for u in range(1000)}
    exact = planner.cover(rows)
    packed = planner.cover(rows, allowed)
    assert len(exact) == 50
    assert len(packed) <= 25


def test_edge_shapes() -> None:
    assert planner.cover({}) == []
    assert len(planner.cover({0: frozenset(range(100))})) == 1
    assert len(planner.cover({0: frozenset(range(101))})) == 2
    assert len(planner.cover({u: frozenset({0}) for u in range(101)})) == 2


def _changes(grants: dict[dt.date, set[Cell]], revokes: set[Cell], revocable: dict[str, frozenset[Target]]) -> Changes:
    return Changes(grants={d: frozenset(c) for d, c in grants.items()}, revokes=frozenset(revokes), revocable=revocable)


target_ids = st.sampled_from(
    [Target("llm_cube", f"c{i}") for i in range(12)] + [Target("theme", f"t{i}") for i in range(6)]
)
cells = st.sets(st.tuples(st.sampled_from([f"u{i}" for i in range(30)]), target_ids), max_size=200)
days = st.sampled_from([dt.date(2027, 1, 1) + dt.timedelta(days=30 * i) for i in range(12)] + [dt.date(2099, 12, 31)])


WIDE = [Target("llm_cube", f"w{i:03d}") for i in range(101)]


@given(st.dictionaries(days, cells, max_size=8), cells)
@example({}, set())  # empty diff
@example({dt.date(2099, 12, 31): {("u0", t) for t in WIDE[:100]}}, set())  # one user, exactly 100 targets
@example({dt.date(2099, 12, 31): {("u0", t) for t in WIDE}}, {("u1", WIDE[0])})  # 101 targets
@example({dt.date(2099, 12, 31): {(f"u{i}", WIDE[0]) for i in range(101)}}, set())  # one target, 101 users
@settings(max_examples=100, deadline=None)
def test_batches_keep_every_rule(grants: dict[dt.date, set[Cell]], revoke_candidates: set[Cell]) -> None:
    desired = {c for cs in grants.values() for c in cs}
    revokes = revoke_candidates - desired
    all_targets = {t for _, t in desired | revokes}
    revocable = {u: frozenset(t for t in all_targets if (u, t) not in desired) for u in {u for u, _ in revokes}}
    changes = _changes({d: c for d, c in grants.items() if c}, revokes, revocable)
    batches = make_batches(changes)
    for batch in batches:
        assert batch.user_ids and batch.targets and batch.size <= 100
        batch_cells = {(u, t) for u in batch.user_ids for t in batch.targets}
        if batch.operation == "grant":
            assert batch.expire_day is not None
            assert batch_cells <= changes.grants[batch.expire_day]
        else:
            assert batch.expire_day is None
            assert not batch_cells & desired
            assert all(t in revocable[u] for u, t in batch_cells)
    for day, day_cells in changes.grants.items():
        covered = {(u, t) for b in batches if b.expire_day == day for u in b.user_ids for t in b.targets}
        assert day_cells <= covered
    revoked = {(u, t) for b in batches if b.operation == "revoke" for u in b.user_ids for t in b.targets}
    assert revokes <= revoked
    assert make_batches(changes) == batches


def test_regrant_option_may_include_unchanged_cells_with_the_same_expiry() -> None:
    day = dt.date(2099, 12, 31)
    users = [f"u{i}" for i in range(50)]
    a, b = Target("llm_cube", "a"), Target("llm_cube", "b")
    grants = {(u, a) for u in users} | {(u, b) for u in users[:25]}
    unchanged = {(u, b) for u in users[25:]}
    changes = Changes(
        grants={day: frozenset(grants)}, revokes=frozenset(), revocable={}, regrantable={day: frozenset(unchanged)}
    )
    strict = make_batches(changes)
    relaxed = make_batches(changes, allow_regrant=True)
    assert len(relaxed) < len(strict)
    for batch in strict:
        assert not {(u, t) for u in batch.user_ids for t in batch.targets} & unchanged


@given(rows_strategy)
def test_distinct_columns_come_from_the_distinct_rows(rows: dict[int, frozenset[int]]) -> None:
    """The column strategy groups targets by their users without transposing every cell."""
    rows = {u: r for u, r in rows.items() if r}
    columns: dict[int, set[int]] = {}
    for user, row in rows.items():
        for target in row:
            columns.setdefault(target, set()).add(user)
    by_users: dict[frozenset[int], list[int]] = {}
    for target in sorted(columns):
        by_users.setdefault(frozenset(columns[target]), []).append(target)
    transposed = sorted((tuple(targets), tuple(sorted(users))) for users, targets in by_users.items())
    assert planner._column_patterns(planner._patterns(rows)) == transposed


@given(rows_strategy)
@settings(max_examples=150, deadline=None)
def test_set_cover_covers_exactly_within_the_cap(rows: dict[int, frozenset[int]]) -> None:
    rects = planner.set_cover(rows)
    assert rects is not None
    assert set(cells_of(rects)) == {(u, t) for u, r in rows.items() for t in r}  # overlap, but nothing stray
    assert all(0 < len(u) * len(t) <= 100 for u, t in rects)
    assert planner.set_cover(rows) == rects


def overlapping_roles(seed: int, users: int = 40) -> dict[int, frozenset[int]]:
    """Each user holds one or two of six roles; the roles share targets."""
    rng = random.Random(seed)
    roles = [frozenset(rng.sample(range(40), rng.randint(3, 15))) for _ in range(6)]
    return {u: frozenset().union(*rng.sample(roles, rng.choice((1, 2)))) for u in range(users)}


def test_overlapping_roles_cost_fewer_calls_when_batches_may_overlap() -> None:
    for seed in range(10):
        rows = overlapping_roles(seed)
        disjoint = planner.cover_exact(rows)
        chosen = planner.cover(rows)
        assert len(chosen) < len(disjoint), seed
        assert set(cells_of(chosen)) == set(cells_of(disjoint))
    assert (len(planner.cover_exact(overlapping_roles(1))), len(planner.cover(overlapping_roles(1)))) == (18, 7)


def role_matrix(seed: int) -> dict[int, frozenset[int]]:
    """Sixty users holding one or two of six roles over sixty targets, with about one exception in a hundred."""
    rng = random.Random(seed)
    roles = [set(rng.sample(range(60), rng.randint(5, 30))) for _ in range(6)]
    rows = {}
    for user in range(60):
        row = set().union(*(roles[k] for k in rng.sample(range(6), rng.randint(1, 2))))
        row ^= {t for t in range(60) if rng.random() < 0.01}
        rows[user] = frozenset(row)
    return rows


def renamed(rows: dict[int, frozenset[int]], seed: int) -> dict[int, frozenset[int]]:
    rng = random.Random(seed)
    users, targets = list(rows), sorted(set().union(*rows.values()))
    user_name = dict(zip(users, rng.sample(users, len(users)), strict=True))
    target_name = dict(zip(targets, rng.sample(targets, len(targets)), strict=True))
    return {user_name[u]: frozenset(map(target_name.__getitem__, r)) for u, r in rows.items()}


def test_calls_do_not_depend_on_how_users_and_targets_happen_to_be_numbered() -> None:
    # numbered as given, these cost 33 to 35 calls depending on the names
    rows = role_matrix(17)
    calls = set()
    for seed in range(6):
        renamed_rows = renamed(rows, seed)
        rects = planner.cover(renamed_rows)
        assert set(cells_of(rects)) == {(u, t) for u, r in renamed_rows.items() for t in r}
        calls.add(len(rects))
    assert calls == {33}


@given(
    st.integers(1, 250),
    st.integers(1, 130),
    st.lists(st.frozensets(st.integers(0, 140), max_size=25), max_size=10),
    st.randoms(use_true_random=False),
)
@example(1, 100, [], random.Random(0))  # one user: the widest strip, the whole row
@example(2, 45, [frozenset({0, 1})], random.Random(0))  # a width that is no strip width of its own: 2 x 45
@settings(max_examples=150, deadline=None)
def test_set_covers_first_scores_are_its_best_cuts(
    height: int, width: int, others: list[frozenset[int]], rng: random.Random
) -> None:
    # a full block (tall, wide or past the cap either way) among a few other rows: concepts of every shape
    rows = {u: frozenset(range(width)) for u in range(height)} | {height + i: r for i, r in enumerate(others) if r}
    masks = {u: bitsets.mask(r) for u, r in rows.items()}
    columns = bitsets.transposed(masks)
    concepts = planner._concepts(masks, sorted(set(masks.values())), sorted(set(columns.values())))
    left = dict(masks)
    for _ in range(2):  # nothing taken yet, then a batch of the block taken, as an essential one would be
        left_of_target = {t: 0 for t in columns} | bitsets.transposed(left)
        for concept in concepts:
            score = planner._first_score(concept, left, left_of_target, 100)
            assert score == planner._best_cut(concept, left, left_of_target, 100)[0], concept[:2]
        taken_users = rng.sample(range(height), rng.randint(1, min(height, 10)))
        taken = bitsets.mask(rng.sample(range(width), rng.randint(1, min(width, 10))))
        for u in taken_users:
            left[u] &= ~taken


def test_set_cover_declines_rows_with_too_many_patterns() -> None:
    many = {u: frozenset({u, u + 1}) for u in range(planner.SET_COVER_PATTERN_LIMIT + 1)}
    assert planner.set_cover(many) is None
    assert set(cells_of(planner.cover(many))) == {(u, t) for u, r in many.items() for t in r}


def rows_of(columns: dict[int, frozenset[int]]) -> dict[int, frozenset[int]]:
    rows: dict[int, set[int]] = {}
    for target, users in columns.items():
        for user in users:
            rows.setdefault(user, set()).add(target)
    return {u: frozenset(r) for u, r in rows.items()}


def test_targets_share_their_partial_last_calls() -> None:
    """130, 120 and 110 holders: one call per 100 leaves three partial calls. 30 users who hold all three
    share one 30 x 3 call, and what remains of each target is a whole call: 4 calls, the lower bound."""
    rows = rows_of({0: frozenset(range(130)), 1: frozenset(range(120)), 2: frozenset(range(110))})
    patterns = planner._patterns(rows)
    columns = planner._column_patterns(patterns)
    assert len(planner._by_rows(columns, 100)) == 6
    shared = planner._shared_remainders(columns, 6, 6, 100)
    assert shared is not None and len(shared) == 4 == planner.lower_bound(360)
    assert sorted(cells_of(shared)) == sorted((u, t) for u, r in rows.items() for t in r)
    assert len(planner.cover(rows)) == 4
    assert planner._shared_remainders(columns, 6, 3, 100) is None  # cannot beat a plan of 3: not tried


@given(st.dictionaries(st.integers(0, 12), st.frozensets(st.integers(0, 400), min_size=1, max_size=260), max_size=8))
@settings(max_examples=150, deadline=None)
def test_shared_remainders_cover_exactly_within_the_cap(columns: dict[int, frozenset[int]]) -> None:
    rows = rows_of(columns)
    column_patterns = planner._column_patterns(planner._patterns(rows))
    plain = len(planner._by_rows(column_patterns, 100))
    shared = planner._shared_remainders(column_patterns, plain, plain + 1, 100)
    wanted = sorted((u, t) for u, r in rows.items() for t in r)
    if shared is not None:
        assert sorted(cells_of(shared)) == wanted  # a partition: every cell once, nothing stray
        assert all(0 < len(u) * len(t) <= 100 for u, t in shared)
    assert len(planner.cover(rows)) <= min(plain, naive(rows))


def test_targets_pair_up_as_a_largest_matching_not_greedily() -> None:
    """Greedy grouping leads with the largest remainder: 40 users left over on target 0 share a call with the
    30 left on target 1, the first it could take. But target 3 (35 left) could share only with target 1, and
    target 0 could as well have shared with target 2 (25 left): two shared calls, not one."""
    left_a, left_e, rest = range(0, 40), range(40, 75), range(100, 400)
    columns = {
        0: frozenset(left_a),  # 40 users: one partial call, r = 40
        1: frozenset([*left_a, *left_e, *rest[:55]]),  # 130: r = 30, holds both leads' users
        2: frozenset([*left_a, *rest[100:185]]),  # 125: r = 25, holds only target 0's users
        3: frozenset(left_e),  # 35: r = 35
    }
    rows = rows_of(columns)
    column_patterns = planner._column_patterns(planner._patterns(rows))
    holders = {t: users for targets, users in column_patterns for t in targets}
    assert planner._greedy_groups(holders, 100) == [[0, 1]]
    assert planner._rematched(holders, [[0, 1]], 100) == [[0, 2], [1, 3]]
    shared = planner._shared_remainders(column_patterns, 6, 6, 100)
    assert shared is not None and len(shared) == 4 == planner.lower_bound(330)
    assert sorted(cells_of(shared)) == sorted((u, t) for t, users in columns.items() for u in users)
    assert len(planner.cover(rows)) == 4


# per target: hundreds of users, the remainder, and where its run of users starts
overlapping_columns = st.dictionaries(
    st.integers(0, 15), st.tuples(st.integers(0, 3), st.integers(1, 99), st.integers(0, 60)), min_size=2, max_size=12
)


@given(overlapping_columns)
@settings(max_examples=150, deadline=None)
def test_matched_pairs_never_cost_more_calls_than_greedy_groups(shapes: dict[int, tuple[int, int, int]]) -> None:
    """Overlapping runs of users, so that many targets could share their last call with several others. More
    pairs need not mean fewer calls (targets of one column pattern share their partial call anyway), so the
    planner keeps whichever grouping makes fewer calls."""
    columns = {t: frozenset(range(offset, offset + 100 * q + r)) for t, (q, r, offset) in shapes.items()}
    column_patterns = planner._column_patterns(planner._patterns(rows_of(columns)))
    holders = {t: users for targets, users in column_patterns for t in targets}
    greedy = planner._greedy_groups(holders, 100)
    matched = planner._rematched(holders, greedy, 100)
    assert sorted(itertools.chain(*matched)) == sorted(set(itertools.chain(*matched)))  # one group each
    assert sum(len(g) - 1 for g in matched) >= sum(len(g) - 1 for g in greedy)
    wanted = sorted((u, t) for t, users in columns.items() for u in users)
    for groups in (greedy, matched):
        calls = planner._shared_calls(dict(holders), groups, 100)
        assert sorted(cells_of(calls)) == wanted
        assert all(0 < len(u) * len(t) <= 100 for u, t in calls)
    shared = planner._shared_remainders(column_patterns, 10**6, 10**6, 100)
    if greedy:
        assert shared is not None and len(shared) <= len(planner._shared_calls(dict(holders), greedy, 100))


@given(
    st.sets(st.tuples(st.integers(0, 11), st.integers(0, 11)).filter(lambda e: e[0] < e[1]), max_size=40),
    st.randoms(use_true_random=False),
)
@settings(max_examples=200, deadline=None)
def test_the_largest_matching_keeps_most_greedy_pairs(edges: set[tuple[int, int]], rng: random.Random) -> None:
    """Checked against networkx's matching of greatest weight (greedy pairs weigh 2, others 1), including when
    the greedy pairs already pair half the vertices and networkx is not asked."""
    greedy: list[tuple[int, int]] = []
    for edge in rng.sample(sorted(edges), len(edges)):  # a maximal matching, in a random order, as greedy is
        if not any(set(edge) & set(pair) for pair in greedy):
            greedy.append(edge)
    graph = networkx.Graph()
    graph.add_weighted_edges_from((*edge, 2 if edge in greedy else 1) for edge in sorted(edges))
    best = networkx.max_weight_matching(graph, maxcardinality=True)
    matched = planner._largest_matching(sorted(edges), greedy)
    assert len(matched) == len(best)
    assert sum(pair in greedy for pair in matched) == sum((min(e), max(e)) in greedy for e in best)
    assert len({end for pair in matched for end in pair}) == 2 * len(matched)
    assert set(matched) <= edges


@given(overlapping_columns)
@settings(max_examples=150, deadline=None)
def test_skipping_the_matching_never_changes_the_pairs(shapes: dict[int, tuple[int, int, int]]) -> None:
    """Where `_rematched` does not build the graph of targets that could share (the greedy pairs already pair
    half of those that could pair with anyone), building it and matching would have kept the same pairs (in
    greedy order, where matching would list them sorted)."""
    columns = {t: frozenset(range(offset, offset + 100 * q + r)) for t, (q, r, offset) in shapes.items()}
    column_patterns = planner._column_patterns(planner._patterns(rows_of(columns)))
    holders = {t: users for targets, users in column_patterns for t in targets}
    greedy = planner._greedy_groups(holders, 100)
    with mock.patch.object(planner, "_matched_pairs", wraps=planner._matched_pairs) as matching:
        planner._rematched(holders, greedy, 100)
    if matching.called:
        return
    pairs = [(min(group), max(group)) for group in greedy if len(group) == 2]
    in_larger = {t for group in greedy if len(group) > 2 for t in group}
    left_over = {t: len(users) % 100 for t, users in holders.items()}
    free = sorted((t for t in holders if left_over[t] and t not in in_larger), key=lambda t: (-left_over[t], t))
    absorbers = [t for t in free if len(holders[t]) > 100]
    held = planner._HeldSets(holders)
    assert sorted(planner._matched_pairs(holders, pairs, free, absorbers, held, 100)) == sorted(pairs)


def test_greedy_pairs_of_all_the_targets_that_could_pair_need_no_graph() -> None:
    """Two targets with 45 users and eight with 140 (40 left over), all holding the same 45: greedy grouping
    pairs all ten (a 45 x 2 call each for the first two, 40 x 2 for the rest; three would pass the cap), so no
    matching pairs more, and no two targets are tested again for sharing (4,851 tests on a dense 173 x 117
    matrix)."""
    shared_users = range(45)
    columns = {t: frozenset([*shared_users, *range(100 * t + 100, 100 * t + 195)]) for t in range(8)}
    columns |= {8: frozenset(shared_users), 9: frozenset(shared_users)}
    column_patterns = planner._column_patterns(planner._patterns(rows_of(columns)))
    holders = {t: users for targets, users in column_patterns for t in targets}
    greedy = planner._greedy_groups(holders, 100)
    assert sorted(map(sorted, greedy)) == [[0, 8], [1, 9], [2, 3], [4, 5], [6, 7]]
    with mock.patch.object(planner._HeldSets, "share", side_effect=AssertionError("not needed")):
        assert sorted(map(sorted, planner._rematched(holders, greedy, 100))) == sorted(map(sorted, greedy))


def test_greedy_pairs_of_half_the_targets_need_no_matching() -> None:
    """Five targets that could all share a call, two greedy pairs: no matching is larger, so networkx is not
    imported for it (it costs more than planning inputs like this)."""
    edges = [(a, b) for a, b in itertools.combinations(range(5), 2)]
    with mock.patch.object(networkx, "max_weight_matching", side_effect=AssertionError("not needed")):
        assert planner._largest_matching(edges, [(2, 4), (0, 1)]) == [(0, 1), (2, 4)]


def test_users_share_their_partial_last_calls_too() -> None:
    """The transpose of `test_targets_share_their_partial_last_calls`: users with 130, 120 and 110 targets, 30
    of them held by all three. Naively 6 calls (and 6 by targets); 4 with one 3 x 30 call shared."""
    rows = {0: frozenset(range(130)), 1: frozenset(range(120)), 2: frozenset(range(110))}
    exact = planner.cover_exact(rows)
    assert len(exact) == 4 == planner.lower_bound(360)
    assert sorted(cells_of(exact)) == sorted((u, t) for u, r in rows.items() for t in r)
    assert ((0, 1, 2), tuple(range(30))) in exact  # the shared call: users x targets, not the other way round
    assert len(planner.cover(rows)) == 4


def ten_users_ending_in_one_common_set() -> dict[int, frozenset[int]]:
    """Ten users with 150 to 159 targets, 59 of them common to all: rows end in partial calls of 50-59."""
    common = frozenset(range(59))
    return {u: common | frozenset(range(1000 * (u + 1), 1000 * (u + 1) + 91 + u)) for u in range(10)}


def test_users_tile_their_partial_last_calls_as_one_block() -> None:
    """Naively two calls each (20). No shared remainder helps: a partial call of 50 or more targets cannot be
    shared in one call. But the 59 common targets x 10 users tile in 6 calls, and what each user has left
    (91-100 targets) is one call: 16."""
    rows = ten_users_ending_in_one_common_set()
    patterns = planner._patterns(rows)
    assert planner._naive_count(patterns, 100) == 20
    shared = planner._shared_remainders(patterns, 20, 20, 100)
    assert shared is None or len(shared) >= 19
    blocks = planner._remainder_blocks(patterns, 20, 20, 100)
    assert blocks is not None and len(blocks) == 16
    wanted = sorted((u, t) for u, r in rows.items() for t in r)
    assert sorted(cells_of([(u, t) for t, u in blocks])) == wanted  # (targets, users) as the transpose: a partition
    assert all(0 < len(u) * len(t) <= 100 for u, t in blocks)
    assert sum(len(users) == 10 for _, users in blocks) == 6  # the block: 10 users per call
    assert planner._remainder_blocks(patterns, 20, 16, 100) is None  # cannot beat a plan of 16
    assert len(planner.cover(rows)) <= 16


def test_remainder_blocks_search_only_a_bounded_number_of_patterns() -> None:
    rows = ten_users_ending_in_one_common_set()
    many = rows | {
        u: frozenset(range(5000 + 3 * u, 5000 + 3 * u + 7)) for u in range(10, planner.REMAINDER_BLOCK_LIMIT)
    }
    patterns = planner._patterns(many)
    calls = planner._naive_count(patterns, 100)
    assert planner._remainder_blocks(patterns, calls, calls, 100) is not None  # exactly at the limit
    more = many | {planner.REMAINDER_BLOCK_LIMIT: frozenset({9999})}
    patterns = planner._patterns(more)
    calls = planner._naive_count(patterns, 100)
    assert planner._remainder_blocks(patterns, calls, calls, 100) is None


tails_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 150), st.integers(1, 60)),  # a shared set, its size, own targets
    min_size=2,
    max_size=14,
)


def rows_from_tails(tails: list[tuple[int, int, int]]) -> dict[int, frozenset[int]]:
    """Users holding a prefix of one of three shared sets and some targets of their own."""
    return {
        u: frozenset(range(1000 * kind, 1000 * kind + size)) | frozenset(range(10**5 + 200 * u, 10**5 + 200 * u + own))
        for u, (kind, size, own) in enumerate(tails)
    }


@given(tails_strategy)
@settings(max_examples=150, deadline=None)
def test_remainder_blocks_partition_the_cells_within_the_cap(tails: list[tuple[int, int, int]]) -> None:
    rows = rows_from_tails(tails)
    for transpose in (False, True):
        patterns = planner._patterns(rows)
        keyed = planner._column_patterns(patterns) if not transpose else patterns
        calls = planner._naive_count(keyed, 100)
        blocks = planner._remainder_blocks(keyed, calls, calls, 100)
        if blocks is None:
            continue
        rects = [(u, t) for t, u in blocks] if transpose else blocks
        assert sorted(cells_of(rects)) == sorted((u, t) for u, r in rows.items() for t in r)
        assert all(0 < len(u) * len(t) <= 100 for u, t in rects)
        assert len(rects) < calls


@given(st.one_of(tails_strategy.map(rows_from_tails), rows_strategy))
@settings(max_examples=150, deadline=None)
def test_remainder_blocks_never_leave_a_plan_with_more_calls(rows: dict[int, frozenset[int]]) -> None:
    """Blocks that make fewer calls before merging and elimination may make more after (healthcare): the
    planner finishes both covers and keeps the blocks only where they end with fewer calls."""
    with_blocks = planner.cover(rows)
    with mock.patch.object(planner, "_remainder_blocks", return_value=None):
        without = planner.cover(rows)
    assert len(with_blocks) <= len(without)
    assert set(cells_of(with_blocks)) == {(u, t) for u, r in rows.items() for t in r}


def test_blocks_fewer_before_merging_but_more_after_are_not_kept() -> None:
    """One user holds 101 targets; two pairs hold 54 of them each, 41 in common. Blocks cut the cells into 5
    calls where the plain cover needs 6, but merging and elimination bring the plain cover to 4 and the blocks
    only to 5: the planner finishes both and keeps the 4."""
    common, first_pair, second_pair, first_only = range(41), range(41, 54), range(54, 67), range(67, 101)
    rows = {
        0: frozenset([*common, *first_pair, *second_pair, *first_only]),
        1: frozenset([*common, *first_pair]),
        2: frozenset([*common, *first_pair]),
        3: frozenset([*common, *second_pair]),
        4: frozenset([*common, *second_pair]),
    }
    plain, blocked = planner._exact_covers(rows, 100, blocks=True)
    assert blocked is not None and len(blocked) < len(plain)
    plan = planner.cover(rows)
    assert len(plan) == 4
    assert set(cells_of(plan)) == {(u, t) for u, r in rows.items() for t in r}


def greedy_groups_by_definition(holders: dict[int, tuple[int, ...]], cap: int) -> list[list[int]]:
    """`_greedy_groups` as its docstring says, with none of its shortcuts (sets made once, pair tests and
    failures remembered per pattern)."""
    remainder = {t: len(h) % cap for t, h in holders.items()}
    order = sorted((t for t in holders if remainder[t]), key=lambda t: (-remainder[t], t))
    grouped: set[int] = set()
    groups = []
    for lead in order:
        k = remainder[lead]
        if lead in grouped or k > cap // 2:
            continue
        absorbers = [t for t in order if len(holders[t]) > cap and t not in grouped and remainder[t] <= k]
        group, common = [lead], set(holders[lead])
        for target in absorbers[: planner.SHARED_REMAINDER_SCAN]:
            if len(group) < cap // k and target != lead and len(common & set(holders[target])) >= k:
                group.append(target)
                common &= set(holders[target])
        if len(group) > 1:
            groups.append(group)
            grouped.update(group)
    return groups


@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 99), st.integers(0, 40), st.integers(1, 3)),  # a pattern, repeated
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([1, 2, 3, planner.SHARED_REMAINDER_SCAN]),
    st.data(),
)
@settings(max_examples=300, deadline=None)
def test_greedy_groups_are_what_their_definition_says(
    patterns: list[tuple[int, int, int, int]], scan: int, data: st.DataObject
) -> None:
    """Several targets of one pattern (the same users) share one tuple, as `_column_patterns` gives them; a
    short scan makes which absorbers a lead sees depend on the groups formed before it."""
    columns: list[tuple[int, ...]] = []
    for q, r, offset, copies in patterns:
        columns += [tuple(range(offset, offset + 100 * q + r))] * copies  # one tuple, several targets
    holders = dict(zip(data.draw(st.permutations(range(len(columns)))), columns, strict=True))
    with mock.patch.object(planner, "SHARED_REMAINDER_SCAN", scan):
        assert planner._greedy_groups(holders, 100) == greedy_groups_by_definition(holders, 100)


def test_a_pattern_that_found_no_partner_looks_again_once_a_group_forms() -> None:
    """Targets 0 and 2 have the same 10 users (one tuple); scanning one absorber at a time, target 0 sees only
    target 3, which shares none of them. Target 1 then takes target 3, and target 2 sees target 4."""
    pattern = tuple(range(10))
    holders = {0: pattern, 1: tuple(range(300, 310)), 2: pattern, 3: tuple(range(250, 355)), 4: tuple(range(105))}
    with mock.patch.object(planner, "SHARED_REMAINDER_SCAN", 1):
        assert planner._greedy_groups(holders, 100) == [[1, 3], [2, 4]] == greedy_groups_by_definition(holders, 100)


@given(st.sets(st.tuples(st.integers(0, 11), st.integers(0, 11)).filter(lambda e: e[0] < e[1]), max_size=30))
@settings(max_examples=300, deadline=None)
def test_pairs_are_left_alone_only_where_no_larger_matching_exists(edges: set[tuple[int, int]]) -> None:
    """`_augmentable` may name too many targets, never too few: outside what it names, the pairs are a
    largest matching of the graph (checked against networkx)."""
    pairs: list[tuple[int, int]] = []
    for a, b in sorted(edges):  # a maximal matching, first come first paired
        if all(a not in p and b not in p for p in pairs):
            pairs.append((a, b))
    unsure = planner._augmentable(pairs, edges)
    settled = networkx.Graph(sorted(e for e in edges if e[0] not in unsure))
    assert len(networkx.max_weight_matching(settled, maxcardinality=True)) == sum(p[0] not in unsure for p in pairs)


def test_small_rectangles_merge_where_every_cell_of_their_union_is_permitted() -> None:
    """Two one-cell batches become one where each user may have the other's target; a batch over half the cap
    is left as it is, and so is a pair where one cross cell is not permitted."""
    rows = {0: frozenset({0}), 1: frozenset({1})}
    both = {0: frozenset({0, 1}), 1: frozenset({0, 1})}
    assert planner.merge_small([((0,), (0,)), ((1,), (1,))], both) == [((0, 1), (0, 1))]
    assert planner.merge_small([((0,), (0,)), ((1,), (1,))], rows) == [((0,), (0,)), ((1,), (1,))]
    one_way = {0: frozenset({0, 1}), 1: frozenset({1})}
    assert planner.merge_small([((0,), (0,)), ((1,), (1,))], one_way) == [((0,), (0,)), ((1,), (1,))]
    big = (tuple(range(2, 53)), (0,))
    permitted = both | {u: frozenset({0, 1}) for u in range(2, 53)}
    assert planner.merge_small([big, ((0,), (0,)), ((1,), (1,))], permitted) == [big, ((0, 1), (0, 1))]
    # a group takes in others only while their union fits the cap (cap 4: two users on two targets is full)
    users = {u: frozenset({0, 1, 2}) for u in range(3)}
    three = [((0,), (0,)), ((1,), (1,)), ((2,), (2,))]
    assert planner.merge_small(three, users, cap=4) == [((0, 1), (0, 1)), ((2,), (2,))]


@given(
    rows_strategy | scattered_rows, st.dictionaries(st.integers(0, 60), st.frozensets(st.integers(0, 160), max_size=80))
)
@settings(max_examples=80, deadline=None)
def test_merging_keeps_a_valid_cover_of_no_more_calls(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]]
) -> None:
    """From one-user strips and from one-target strips, with and without don't-cares: every cell stays covered,
    only permitted cells are touched, and a rectangle nothing joined comes back as it was."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    for strips, permitted in itertools.product(strips_of(rows, users_per_target=3), (rows, allowed)):
        rects = planner.merge_small(strips, permitted)
        assert_valid_cover_of_no_more_calls(rects, strips, rows, permitted)
        # each rectangle is one of the strips, or the union of several
        for users, targets in rects:
            parts = [s for s in strips if set(s[0]) <= set(users) and set(s[1]) <= set(targets)]
            assert parts and set(cells_of(parts)) <= set(cells_of([(users, targets)]))
            assert {(u, t) for u in users for t in targets} == {
                (u, t) for u in set().union(*(p[0] for p in parts)) for t in set().union(*(p[1] for p in parts))
            }


def test_a_rectangle_whose_cells_a_neighbour_can_take_is_dropped() -> None:
    rows = {u: frozenset(range(10)) for u in range(3)}
    split = [((0, 1), tuple(range(10))), ((2,), tuple(range(10)))]
    assert planner.eliminate(split, rows, rows) == [((0, 1, 2), tuple(range(10)))]
    # widening by targets too: user 0 alone on 0-4 and 5-9
    halves = [((0,), (0, 1, 2, 3, 4)), ((0,), (5, 6, 7, 8, 9))]
    assert planner.eliminate(halves, {0: frozenset(range(10))}, {0: frozenset(range(10))}) == [((0,), tuple(range(10)))]
    # and where the user may be given far more than the cap's worth of targets (revokes among don't-cares)
    wide = {0: frozenset(range(150))}
    assert planner.eliminate(halves, {0: frozenset(range(10))}, wide) == [((0,), tuple(range(10)))]
    # not where the widened rectangle would pass the cap or touch a cell that is not permitted
    assert planner.eliminate(split, rows, rows, cap=25) == split
    narrower = {**rows, 2: frozenset(range(9))}
    kept = [((0, 1), tuple(range(10))), ((2,), tuple(range(9)))]
    assert planner.eliminate(kept, narrower, narrower) == kept
    # three rectangles to two: user 2 joins the first on what it may have, user 3 takes the column left over
    three = [*kept, ((3,), (9,))]
    assert planner.eliminate(three, narrower | {3: frozenset({9})}, narrower | {3: frozenset({9})}) == [
        ((0, 1, 2), tuple(range(9))),
        ((0, 1, 3), (9,)),
    ]


def test_small_inputs_may_widen_more_neighbours_to_drop_a_rectangle() -> None:
    """User 0's four cells are each held by another user alone in a batch: four widenings take them, one more
    than the default search tries, and no more than small inputs are given."""
    rows = {0: frozenset(range(4))} | {user: frozenset({user - 1}) for user in range(1, 5)}
    cover = [((0,), (0, 1, 2, 3))] + [((user,), (user - 1,)) for user in range(1, 5)]
    assert planner.eliminate(cover, rows, rows) == cover
    assert planner.eliminate(cover, rows, rows, steps=planner.ELIMINATE_STEPS_SMALL) == [
        ((0, user), (user - 1,)) for user in range(1, 5)
    ]


def test_the_deeper_elimination_is_kept_for_inputs_small_enough_for_set_cover() -> None:
    small = {user: frozenset({user % 7, user % 11 + 7}) for user in range(40)}
    large = {user: frozenset(range(user % 30, user % 30 + 40)) for user in range(300)}
    assert sum(map(len, large.values())) > planner.SET_COVER_CELL_LIMIT
    for rows, steps in ((small, planner.ELIMINATE_STEPS_SMALL), (large, planner.ELIMINATE_STEPS)):
        with mock.patch.object(planner, "eliminate", wraps=planner.eliminate) as eliminate:
            planner.cover(rows)
        assert {call.args[4] for call in eliminate.call_args_list} == {steps}


def test_a_full_rectangle_gives_way_to_neighbours_with_room_enough() -> None:
    """User 0 on targets 0-99 is a full batch, all its own cells; users 1 and 2 hold one half each, alone in a
    batch of 50 with room for one more user: each takes user 0 on its half."""
    rows = {0: frozenset(range(100)), 1: frozenset(range(50)), 2: frozenset(range(50, 100))}
    cover = [((0,), tuple(range(100))), ((1,), tuple(range(50))), ((2,), tuple(range(50, 100)))]
    assert planner.eliminate(cover, rows, rows) == [((0, 1), tuple(range(50))), ((0, 2), tuple(range(50, 100)))]
    # with no room anywhere (full neighbours), nothing is searched and nothing moves
    full = {u: frozenset(range(50)) for u in range(6)}
    tiling = [((0, 1), tuple(range(50))), ((2, 3), tuple(range(50))), ((4, 5), tuple(range(50)))]
    assert planner.eliminate(tiling, full, full) == tiling
    # but a rectangle whose every cell others cover goes, room or not
    assert planner.eliminate([*tiling, ((1, 2), tuple(range(50)))], full, full) == tiling


def test_one_neighbour_may_widen_twice_to_take_a_rectangle() -> None:
    """Cap 6: user 2 joins user 0's batch on targets 2-3 (it may have 3, a don't-care), then the batch takes
    target 0 for both, and user 0 on 2-3 is covered without any other batch growing."""
    rows = {0: frozenset({2, 3}), 1: frozenset({1, 2}), 2: frozenset({0, 2})}
    allowed = {0: frozenset({0, 2, 3}), 1: frozenset({1, 2}), 2: frozenset({0, 1, 2, 3})}
    strips = [((0,), (2, 3)), ((1,), (1, 2)), ((2,), (0, 2))]
    assert sorted(planner.eliminate(strips, rows, allowed, cap=6)) == [((0, 2), (0, 2, 3)), ((1,), (1, 2))]


@given(rows_strategy, st.dictionaries(st.integers(0, 40), st.frozensets(st.integers(0, 160), max_size=80)))
@settings(max_examples=80, deadline=None)
def test_elimination_keeps_a_valid_cover_of_no_more_calls(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]]
) -> None:
    """From one-user strips and from one-target strips (where most rectangles can give way; the coverage is
    then kept per user and per target), with and without don't-cares."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    for strips, permitted in itertools.product(strips_of(rows, users_per_target=7), (rows, allowed)):
        assert_valid_cover_of_no_more_calls(planner.eliminate(strips, rows, permitted), strips, rows, permitted)


@given(rows_strategy, st.randoms(use_true_random=False))
@settings(max_examples=60, deadline=None)
def test_cells_only_one_rectangle_covers_are_the_same_counted_per_user_or_per_target(
    rows: dict[int, frozenset[int]], rng: random.Random
) -> None:
    """Random rectangles over the rows (overlapping, some removed again): per user and per target, the
    coverage finds exactly the wanted cells that one rectangle alone covers."""
    if not rows:
        return
    users, targets = sorted(rows), sorted(set().union(*rows.values()))

    def some(items: list[int], most: int) -> tuple[int, ...]:
        return tuple(sorted(rng.sample(items, rng.randint(1, min(most, len(items))))))

    rects = [(some(users, 25), some(targets, 4)) for _ in range(8)]
    kept = rects[::2]
    counts: dict[tuple[int, int], int] = {}
    for rect in kept:
        for cell in cells_of([rect]):
            counts[cell] = counts.get(cell, 0) + 1
    for by_target in (False, True):
        coverage = planner._Coverage(rows, by_target)
        for u, t in rects:
            coverage.add(u, bitsets.mask(u), t, bitsets.mask(t))
        for u, t in rects[1::2]:
            coverage.remove(u, bitsets.mask(u), t, bitsets.mask(t))
        for u, t in kept:
            own = coverage.own(u, bitsets.mask(u), t, bitsets.mask(t), most=10_000)
            assert own is not None
            found = {(user, target) for user, bits in coverage.by_user(own).items() for target in bitsets.members(bits)}
            assert found == {(x, y) for x, y in cells_of([(u, t)]) if counts[(x, y)] == 1 and y in rows[x]}


def test_essential_rectangles_are_taken_and_make_others_essential() -> None:
    """Users 1 and 2 hold targets 0-1, which user 0 holds with target 2; user 3 holds 2-3. The only rectangles
    through (1, 0) lie in users 0-2 x targets 0-1, and through (3, 3) in user 3 x targets 2-3: both are taken,
    and then user 0's target 2 is needed by no one else around it, so it goes alone (three calls: the fewest)."""
    rows = {0: frozenset({0, 1, 2}), 1: frozenset({0, 1}), 2: frozenset({0, 1}), 3: frozenset({2, 3})}
    essential, rest = planner.essentials(rows, rows)
    assert essential == [((0, 1, 2), (0, 1)), ((3,), (2, 3)), ((0,), (2,))] and rest == {}
    # past the cap the 3 x 2 rectangle is not one call: user 0 then takes its own row, and users 1-2 theirs
    assert planner.essentials(rows, rows, cap=5) == ([((3,), (2, 3)), ((0,), (0, 1, 2)), ((1, 2), (0, 1))], {})
    # and at 3 users 1-2 on targets 0-1 are not one call either: they are left for the cover
    assert planner.essentials(rows, rows, cap=3) == ([((3,), (2, 3)), ((0,), (0, 1, 2))], {1: rows[1], 2: rows[2]})
    # don't-cares count as permitted: users 0 and 1 each need one of two targets both may have
    wanted = {0: frozenset({0}), 1: frozenset({1})}
    both = {0: frozenset({0, 1}), 1: frozenset({0, 1})}
    assert planner.essentials(wanted, both) == ([((0, 1), (0, 1))], {})
    assert len(planner.cover(wanted, both)) == 1


def fewest_calls(needed: set[tuple[int, int]], permitted: dict[int, frozenset[int]], cap: int) -> int:
    """The true minimum, by search: the first needed cell not yet covered must be in one of the rectangles."""
    users = sorted(permitted)
    targets = sorted(set().union(*permitted.values()))
    rects = []
    for user_count in range(1, len(users) + 1):
        for user_set in itertools.combinations(users, user_count):
            for target_count in range(1, cap // user_count + 1):
                for target_set in itertools.combinations(targets, target_count):
                    if all(t in permitted[u] for u in user_set for t in target_set):
                        rects.append({(u, t) for u in user_set for t in target_set})

    @functools.cache
    def search(covered: frozenset[tuple[int, int]]) -> int:
        left = sorted(needed - covered)
        if not left:
            return 0
        return 1 + min(search(covered | {c for c in rect if c in needed}) for rect in rects if left[0] in rect)

    return search(frozenset())


small_rows = st.dictionaries(st.integers(0, 3), st.frozensets(st.integers(0, 3), min_size=1), min_size=1, max_size=4)


@given(small_rows, st.dictionaries(st.integers(0, 3), st.frozensets(st.integers(0, 3))), st.sampled_from([2, 3, 4, 6]))
@settings(max_examples=120, deadline=None)
def test_essential_rectangles_keep_the_fewest_calls_reachable(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]], cap: int
) -> None:
    """Against an exhaustive search on small matrices: the essential rectangles plus the fewest calls for what they
    leave are exactly the fewest calls for the whole, with and without don't-cares."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    needed = {(u, t) for u, r in rows.items() for t in r}
    for permitted in (rows, allowed):
        essential, rest = planner.essentials(rows, permitted, cap)
        touched = set(cells_of(essential))
        assert all(t in permitted[u] for u, t in touched) and all(len(u) * len(t) <= cap for u, t in essential)
        assert {(u, t) for u, r in rest.items() for t in r} == needed - touched
        left = {(u, t) for u, r in rest.items() for t in r}
        assert len(essential) + fewest_calls(left, permitted, cap) == fewest_calls(needed, permitted, cap)


essential_rows = st.dictionaries(
    st.integers(0, 30), st.frozensets(st.integers(0, 12), min_size=1, max_size=8), min_size=1, max_size=24
)


@given(
    essential_rows, st.dictionaries(st.integers(0, 30), st.frozensets(st.integers(0, 12))), st.sampled_from([4, 6, 12])
)
@settings(max_examples=200, deadline=None)
def test_essentials_skip_only_users_no_rectangle_can_start_from(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]], cap: int
) -> None:
    """A user none of whose columns fits the cap across its row is not searched again until cells are taken
    from it or from one of its columns: the same rectangles as searching every user around each change."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    for permitted in (rows, allowed):
        found = planner.essentials(rows, permitted, cap)
        with mock.patch.object(planner._Essentials, "_search", search_everyone):
            assert found == planner.essentials(rows, permitted, cap)


@given(
    essential_rows | scattered_rows,
    st.dictionaries(st.integers(0, 60), st.frozensets(st.integers(0, 90), max_size=4)),
    st.sampled_from([4, 6, 12, 100]),
)
@settings(max_examples=200, deadline=None)
def test_each_search_for_an_essential_rectangle_finds_what_its_definition_does(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]], cap: int
) -> None:
    """Whatever the search skips early (users lacking a target the searching user needs, lists of needed targets
    kept between searches), each search finds the rectangle the definition gives, as cells are taken."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    search = planner._Essentials._through

    def checked(self: planner._Essentials, user: int) -> tuple[int, int] | None:
        expected = through_by_definition(self, user)
        assert search(self, user) == expected
        return expected

    for permitted in (rows, allowed):
        with mock.patch.object(planner._Essentials, "_through", checked):
            planner.essentials(rows, permitted, cap)


def through_by_definition(self: planner._Essentials, user: int) -> tuple[int, int] | None:
    """The first of the user's needed cells, by target, with a column that fits the cap across its row and an
    essential rectangle through it: every user permitted the target who needs a target the user may have, times
    every such target one of them needs, within the cap and all permitted."""
    needed = bitsets.members(self.left[user])
    around = sorted(self.permitted[user])
    needing_around = functools.reduce(operator.or_, (self.needing.get(t, 0) for t in around), 0)
    for target in needed:
        if self.height[target] * len(needed) > self.cap:
            continue
        users = self.permitted_users[target] & needing_around
        targets = [t for t in around if self.needing.get(t, 0) & users]
        if users.bit_count() * len(targets) > self.cap:
            continue
        if all(users & ~self.permitted_users[t] == 0 for t in targets):
            return users, bitsets.mask(targets)
    return None


def search_everyone(self: planner._Essentials, users: list[int], changed: set[int]) -> None:
    """`_Essentials._search` with no user skipped as stuck."""
    missed: set[tuple[frozenset[int], int]] = set()
    for user in users:
        while self.left[user] and (self.permitted[user], self.left[user]) not in missed:
            found = self._through(user)
            if found is None:
                missed.add((self.permitted[user], self.left[user]))
                break
            missed.clear()
            self._take(*found, changed)


@given(rows_strategy, st.sampled_from([5, 12, 100]))
@settings(max_examples=150, deadline=None)
def test_naive_covers_are_counted_as_they_would_be_made(rows: dict[int, frozenset[int]], cap: int) -> None:
    patterns = planner._patterns(rows)
    columns = planner._column_patterns(patterns)
    assert planner._naive_count(patterns, cap) == len(planner._by_rows(patterns, cap))
    assert planner._naive_count(columns, cap) == len(planner._by_rows(columns, cap))
    naive_cover = min(len(planner._by_rows(patterns, cap)), len(planner._by_rows(columns, cap)))
    assert planner._naive_calls(rows, cap) == naive_cover


@given(rows_strategy, st.dictionaries(st.integers(0, 40), st.frozensets(st.integers(0, 160), max_size=40)))
@settings(max_examples=60, deadline=None)
def test_cover_takes_users_and_targets_by_name(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]]
) -> None:
    """Named in the same order as numbered, the same rectangles come back, each with its names in order; and
    the same again from the cells one by one, in whatever order they come."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    user_name = {u: f"user-{u:03d}" for u in range(41)}
    target_name = {t: Target("llm_cube", f"t{t:03d}") for t in range(161)}

    def named(table: dict[int, frozenset[int]]) -> dict[str, frozenset[Target]]:
        return {user_name[u]: frozenset(map(target_name.__getitem__, r)) for u, r in table.items()}

    for permitted in (None, allowed):
        numbered = planner.cover(rows, permitted)
        by_name = planner.cover(named(rows), None if permitted is None else named(permitted))
        assert by_name == [
            (tuple(map(user_name.__getitem__, users)), tuple(map(target_name.__getitem__, targets)))
            for users, targets in numbered
        ]
        assert all(list(u) == sorted(u) and list(t) == sorted(t) for u, t in by_name)
        cells = [(user, target) for user, targets in named(rows).items() for target in sorted(targets)]
        named_permitted = None if permitted is None else named(permitted)
        assert planner.cover_cells(cells, named_permitted) == by_name
        assert planner.cover_cells(reversed(cells), named_permitted) == by_name


def test_users_are_numbered_from_the_fewest_needed_cells_ties_by_name() -> None:
    """e needs nothing (it may only be touched): 0; then c (one cell), a and b (two each, by name), d (three). The
    targets go from the fewest users needing them: t3 (two users), then t1 and t2 (three each, by name)."""
    rows = {"d": frozenset({1, 2, 3}), "b": frozenset({2, 3}), "c": frozenset({1}), "a": frozenset({1, 2})}
    allowed = {**rows, "e": frozenset({1})}
    with mock.patch.object(planner, "_cover", wraps=planner._cover) as inner:
        planner.cover(rows, allowed)
    numbered, numbered_allowed, _ = inner.call_args.args
    assert numbered == {1: {1}, 2: {1, 2}, 3: {0, 2}, 4: {0, 1, 2}}
    assert numbered_allowed == numbered | {0: {1}}


def test_the_order_cells_come_in_changes_no_rectangle() -> None:
    """Targets needed by as many users are taken in name order, not in the order they were read: a role of 150
    targets is cut into the same strips however its cells come (a plan's changes come in hash order)."""
    targets = [Target("theme", f"t{t:03d}") for t in range(150)]
    rows = {f"user-{u}": frozenset(targets) for u in range(3)}
    cells = [(user, target) for user, row in rows.items() for target in sorted(row)]
    expected = planner.cover(rows)
    for seed in range(3):
        random.Random(seed).shuffle(cells)
        assert planner.cover_cells(cells) == expected


@given(
    rows_strategy,
    st.dictionaries(st.integers(0, 40), st.frozensets(st.integers(0, 160), max_size=40)),
    st.integers(1, planner.CAP),
)
@settings(max_examples=80, deadline=None)
def test_a_neighbours_room_bounds_what_widening_it_once_takes(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]], width: int
) -> None:
    """The search skips a rectangle, and stops trying neighbours, on these bounds: each must be at least what
    widening that neighbour once (by users, or by targets) takes of the rectangle's own cells."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    rects = _strips(rows, width)
    search = planner._Elimination(rects, rows, allowed, planner.CAP, planner.ELIMINATE_STEPS)
    for index, (users, targets) in enumerate(rects):
        rooms = search._rooms_over(index)
        own = search.coverage.own(users, search.user_bits[index], targets, search.targets[index], planner.CAP**2)
        assert own is not None
        left = search.coverage.by_user(own)
        for other in range(len(rects)):
            if other == index or not left:
                continue
            step = search._best_widening({other: planner.CAP**2}, dict(left), {})
            if step is None:
                continue
            widened_users, widened_targets, _ = step[1]
            taken = sum((bits & widened_targets).bit_count() for u, bits in left.items() if u in widened_users)
            assert taken <= rooms.get(other, 0)


# rows (some scattered), don't-cares, and a strip width: for `_strips` covers that elimination's bounds meet
strips_over_rows = (
    rows_strategy | scattered_rows,
    st.dictionaries(st.integers(0, 60), st.frozensets(st.integers(0, 100), max_size=6)),
    st.integers(1, planner.CAP),
)


def _rooms_by_brute_force(search: planner._Elimination, index: int) -> dict[int, int]:
    """`_rooms_over` read off every live rectangle in turn, without the neighbour lists and anchors."""
    its_users, its_targets = search.rects[index]
    rooms = {}
    for other, (users, targets) in enumerate(search.rects):
        if other == index or not search.alive[other]:
            continue
        room = 0
        shared_targets = len(set(its_targets) & set(targets))
        if search.more_users[other] > 0 and shared_targets:
            joinable = search.user_bits[index] & search._joinable_users(other) & ~search.user_bits[other]
            room = min(search.more_users[other], joinable.bit_count()) * shared_targets
        shared_users = len(set(its_users) & set(users))
        if search.more_targets[other] > 0 and shared_users:
            takeable = (search.targets[index] & search.takeable[other]).bit_count()
            room = max(room, min(search.more_targets[other], takeable) * shared_users)
        if room > 0:
            rooms[other] = room
    return rooms


@given(*strips_over_rows)
@example({u: frozenset({0, 100 + u}) for u in range(30)}, {}, 2)  # each user's batch meets all at target 0
@example({u: frozenset({0, 100 + u}) for u in range(30)}, {}, 1)  # batches on target 0 join up, and go
@settings(max_examples=80, deadline=None)
def test_the_neighbours_rooms_are_those_of_every_rectangle_read_in_turn(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]], width: int
) -> None:
    """Neighbours are found at shared targets or, where a popular target meets many, at the anchors among the
    targets the users may have; either way the rooms are those of every live rectangle read in turn, also once
    elimination has dropped some rectangles and widened others (which moves their anchors)."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    rects = _strips(rows, width)
    for permitted in (rows, allowed):
        search = planner._Elimination(rects, rows, permitted, planner.CAP, planner.ELIMINATE_STEPS)
        for index in range(len(rects)):
            if search.alive[index]:
                assert search._rooms_over(index) == _rooms_by_brute_force(search, index)
            search.try_dropping(index)
        # listed at one anchor while it has room for more users, and not once it has none or is dropped
        with_room = {i for i, alive in enumerate(search.alive) if alive and search.more_users[i] > 0}
        anchored = list(itertools.chain.from_iterable(search.taking_users_at_anchor.values()))
        assert sorted(anchored) == sorted(with_room)


@given(*strips_over_rows)
@settings(max_examples=80, deadline=None)
def test_what_any_widenings_could_take_bounds_what_a_rectangles_neighbours_could(
    rows: dict[int, frozenset[int]], extra: dict[int, frozenset[int]], width: int
) -> None:
    """A rectangle is first tested against what `steps` widenings of any rectangles could take, then against its
    neighbours' rooms: the first bound must never be below the second, also once rectangles are dropped and
    widened, or the first test would rule out a rectangle the second lets through."""
    allowed = {u: r | extra.get(u, frozenset()) for u, r in rows.items()}
    rects = _strips(rows, width)
    for permitted, steps in itertools.product(
        (rows, allowed), (planner.ELIMINATE_STEPS, planner.ELIMINATE_STEPS_SMALL)
    ):
        search = planner._Elimination(rects, rows, permitted, planner.CAP, steps)
        for index in range(len(rects)):
            if search.alive[index]:
                rooms = search._rooms_over(index)
                assert sum(sorted(rooms.values(), reverse=True)[:steps]) <= search.most_taken
            search.try_dropping(index)


def test_what_any_widenings_could_take_is_no_less_than_three_roomy_neighbours_could() -> None:
    """Six users on 16 targets (full: no room) and three batches of the same users on 11 other targets each, with
    room for 5 more targets: each could take 30 of the first batch's 96 cells, 90 in all. Any three widenings
    could take at most the 34 cells each of those lacks of the cap, 102, and no fewer."""
    rows = {user: frozenset(range(49)) for user in range(6)}
    users = tuple(range(6))
    cover = [(users, tuple(range(16)))] + [(users, tuple(range(16 + 11 * i, 27 + 11 * i))) for i in range(3)]
    search = planner._Elimination(cover, rows, rows, planner.CAP, planner.ELIMINATE_STEPS)
    assert search._rooms_over(0) == {1: 30, 2: 30, 3: 30}
    assert search.most_taken == 102


def test_a_tiling_of_nearly_full_batches_is_left_without_meeting_a_neighbour() -> None:
    """98 users on each of 5 targets, one batch each: a batch has room for 2 more users, so three widenings
    take at most 6 cells, and no batch's 98 go; no rectangle's neighbours are met to find that out."""
    rows = {user: frozenset({user % 5}) for user in range(490)}
    tiling = [(tuple(range(target, 490, 5)), (target,)) for target in range(5)]
    with mock.patch.object(planner._Elimination, "_rooms_over", side_effect=AssertionError("a neighbour was met")):
        assert planner.eliminate(tiling, rows, rows) == tiling
    # with one batch of 2 users, room for 98 more, the bound no longer rules the others out: their neighbours are met
    short = {user: row for user, row in rows.items() if user < 10 or user % 5}
    split = [(tuple(u for u in users if u in short), targets) for users, targets in tiling]
    real = planner._Elimination._rooms_over
    with mock.patch.object(planner._Elimination, "_rooms_over", autospec=True, side_effect=real) as met:
        assert planner.eliminate(split, short, short) == split
    assert met.call_count == len(split)


def _strips(rows: dict[int, frozenset[int]], width: int) -> list[planner.Rect]:
    """A cover of single-user strips `width` targets wide and, where users share a row, batches of them per
    strip of it: rectangles of many shapes, most with room, for the elimination's bounds to meet."""
    rects = []
    for row, users in planner._groups(rows).items():
        targets = sorted(row)
        strip_width = min(width, max(1, planner.CAP // len(users)))
        for start in range(0, len(targets), strip_width):
            strip = tuple(targets[start : start + strip_width])
            height = planner.CAP // len(strip)
            rects.extend((tuple(users[first : first + height]), strip) for first in range(0, len(users), height))
    return rects
