"""The batch planner: cover a set of cells with as few `SmartqAuthorize` calls as it can.

One call grants or deletes every cell of users U x targets T with |U| x |T| <= 100, so planning is covering a
0/1 matrix (users x targets) with capped rectangles: the capped biclique cover problem of RBAC role mining
(Ene et al., SACMAT 2008). It is NP-hard in general; the planner combines strategies that are exact or
near-exact on the structures real organisations have, and keeps the cheapest result:

Users are first numbered from the fewest needed cells to the most and targets from the fewest users needing
them to the most, so the steps below (which cut rows into strips and walk them in order) give the same cover
whatever the names: americas_large 1,979 calls, where the order its names gave cost 2,050.

0. **Essential rectangles** first. Every rectangle through a cell (u, t) lies within the users permitted t
   times the targets permitted u; where the users there still needing one of those targets, times the
   targets they need, fit one call, that call dominates every rectangle through (u, t), so some fewest-call
   cover contains it. Taking one can make others essential; the strategies below then cover only the rest
   (whenever that beats the naive plans of the whole). Exact, and on sparse role structures most of a
   cover: apj 448 of its 461 calls.
1. **Rows.** Users with identical rows form a role: an n x w rectangle. `tile` splits its w targets into
   strips whose widths pack 100 well (51 = 50 + 1: pairs of users on 50 targets, hundreds on the last one)
   by dynamic programming over strip widths, and also tries the transpose (strips of users), so a role costs
   ceil(n*w/100) calls plus at most one partial batch per strip.
2. **Columns.** The same, grouping targets with identical user sets: wins when targets, not users, repeat.
   Then with shared remainders: a target whose last partial call has k <= 50 users shares one k x w call
   with targets that can give up k users and still need one call less (see `_shared_remainders`); a group
   of w targets saves w - 1 calls (customer: 648 -> 626), and pairs are chosen as a largest matching of the
   targets that could share (customer, after step 0: 550 -> 547 calls; 622 in all). The same for users,
   on the transpose: users whose rows end in partial calls share one w x k call (firewall1 366 -> 359,
   americas_large 1,978 -> 1,964); `cover_exact` keeps whichever of the two makes fewer calls.
3. **Don't-cares** (revokes, and grants when re-granting unchanged cells is allowed). A revoke may delete
   cells that are neither granted nor desired. Targets with revokes, most frequent first, are cut into
   blocks of b targets; in each block every user with a revoke there who may be revoked on the whole block
   joins one b-wide strip, packed floor(100/b) users to a call, and the rest is covered exactly; a block
   keeps whichever of that and plain exact cover is cheaper. The best b is kept if it beats exact cover.
4. **Set cover** (small inputs: up to 10,000 cells, 600 distinct rows and columns). Rectangles may overlap:
   a cell granted twice costs nothing. Starting from the essential rectangles, candidates are the concepts
   (a set of targets with every user that has them all) from the distinct rows, the distinct columns and
   their pairwise intersections. Greedily take the capped cut of a concept that covers the most uncovered
   cells, drop rectangles the others cover, then replace any two rectangles by one where the cells only they
   cover fit one permitted rectangle. It competes with the best of 1-3 after both are through step 5.

5. **Elimination** (covers of up to 5,000 rectangles). Smallest first, drop a rectangle wherever up to three
   widenings of others by users or targets (six on inputs small enough for set cover; within the cap, over
   permitted cells; one neighbour may widen twice) cover the cells only it covered (apj 478 -> 475, fire1
   375 -> 369, americas_small 1,184 -> 1,171, before step 0 existed; healthcare 22 -> 21 at six).

Every strategy is at least as good as the naive "one user at a time" (rows) or "one target at a time"
(columns), so the result never costs more than the better naive plan. Ties go to the earlier strategy, and all
iteration is over sorted data, so the same input always gives the same plan.
"""

from __future__ import annotations

import heapq
import math
import threading
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from functools import cached_property, lru_cache, reduce
from itertools import accumulate, chain, combinations, count, filterfalse
from operator import and_, or_
from typing import TYPE_CHECKING, TypeVar

from reconciler.vocabulary import bitsets
from reconciler.vocabulary.cells import shared_rows

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

CAP = 100
DONT_CARE_CELL_LIMIT = 1_000_000
SET_COVER_CELL_LIMIT = 10_000
SET_COVER_PATTERN_LIMIT = 600  # distinct rows, and distinct columns: the candidates grow with their square
SHARED_REMAINDER_SCAN = 200  # targets tried per shared call: bounds the work on 10^4-target inputs
SHARED_REMAINDER_CELL_LIMIT = 1_000_000
SHARED_REMAINDER_MATCH_LIMIT = 20_000  # pairs of targets the matching weighs (~10 us each)
SHARED_REMAINDER_MATCH_CELL_LIMIT = 250_000
MERGE_LIMIT = 20000
ELIMINATE_STEPS = 3  # other rectangles widened to drop one
ELIMINATE_STEPS_SMALL = 6  # the same, on inputs small enough for set cover: their whole plan takes milliseconds
ELIMINATE_RECT_LIMIT = 5000  # rectangles in a cover worth searching
MERGE_WINDOW = 64
REMAINDER_BLOCK_LIMIT = 64  # patterns ending in a partial call that blocks are grown from: the search is cubic in them
BLOCK_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 25, 33, 50, 100)

Rect = tuple[tuple[int, ...], tuple[int, ...]]
Rows = Mapping[int, frozenset[int]]
# `cover` takes users and targets by any names that sort (a plan's user IDs and targets); the rest by number
User = TypeVar("User", bound="SupportsRichComparison")
Target = TypeVar("Target", bound="SupportsRichComparison")
# what `_rows_mapped` and `_by_holders` take targets by: their names, or numbers given as they are read
Key = TypeVar("Key", bound="SupportsRichComparison")
Pattern = tuple[tuple[int, ...], tuple[int, ...]]  # sorted users (or targets) sharing one sorted row
Concept = tuple[tuple[int, ...], tuple[int, ...], int, int]  # users, targets, and both as bit masks


def lower_bound(cells: int, cap: int = CAP) -> int:
    return math.ceil(cells / cap)


# ---- tiling one full rectangle -------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _strip_widths(total: int, cap: int) -> tuple[int, ...]:
    """Strip widths worth trying: the widest for each users-per-call count, plus an exact remainder."""
    widths = sorted({cap // k for k in range(1, cap + 1)})
    return tuple(w for w in widths if w <= total)


_STRIP_TABLE_LOCK = threading.Lock()


@lru_cache(maxsize=256)
def _strip_table(across: int, cap: int) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """For `across` items: the fewest calls, and the width of the last strip, for each length made so far; and
    each strip width worth trying with the calls one strip of it takes.

    `_strips` extends it on demand; a length's cost never depends on the longest asked for, so every length of
    one height shares one table (the remainder blocks ask for hundreds of lengths of a few heights)."""
    return [0], [0], [(width, -(-across // (cap // width))) for width in _strip_widths(cap, cap)]


def _strips(across: int, length: int, cap: int) -> tuple[int, tuple[int, ...]]:
    """Cut `length` into strips; a strip of width d packs floor(100/d) of the `across` items per call.

    Returns the fewest calls and the strip widths achieving it (dynamic programming over the length).
    """
    best, choice, strip_calls = _strip_table(across, cap)
    if len(best) <= length:
        with _STRIP_TABLE_LOCK:  # two plans in two threads must not grow one table at once
            # a process's first plans fill these tables (firewall1's half: 11,000 lengths, most of what its first
            # plan costs more than the next): each strip's calls are made once per table, not once per length
            widths = _strip_widths(cap, cap)
            for x in range(len(best), length + 1):
                best_cost, best_d = math.inf, 0
                for d, calls in strip_calls:
                    if d > x:
                        break
                    cost = calls + best[x - d]
                    if cost < best_cost:
                        best_cost, best_d = cost, d
                if x <= cap and x not in widths:
                    whole = -(-across // (cap // x))  # the exact remainder as one strip
                    if whole < best_cost:
                        best_cost, best_d = whole, x
                best.append(int(best_cost))
                choice.append(best_d)
    strips: list[int] = []
    x = length
    while x:
        strips.append(choice[x])
        x -= choice[x]
    return best[length], tuple(sorted(strips, reverse=True))


@lru_cache(maxsize=4096)
def _tile_calls(height: int, width: int, cap: int) -> int:
    """The calls `tile` makes for a full rectangle of this shape."""
    return min(_strips(height, width, cap)[0], _strips(width, height, cap)[0])


def tile(users: Sequence[int], targets: Sequence[int], cap: int = CAP) -> list[Rect]:
    """Cover the full rectangle users x targets with few capped rectangles."""
    if not users or not targets:
        return []
    by_targets, target_widths = _strips(len(users), len(targets), cap)
    by_users, user_heights = _strips(len(targets), len(users), cap)
    if by_users < by_targets:
        return [(u, t) for t, u in _cut(targets, users, user_heights, cap)]
    return _cut(users, targets, target_widths, cap)


def _cut(users: Sequence[int], targets: Sequence[int], widths: Iterable[int], cap: int) -> list[Rect]:
    rects: list[Rect] = []
    start = 0
    for width in widths:
        strip = tuple(targets[start : start + width])
        start += width
        per_call = cap // width
        for i in range(0, len(users), per_call):
            rects.append((tuple(users[i : i + per_call]), strip))
    return rects


# ---- exact cover (no cell outside the input) ----------------------------------------------------------


def cover(
    rows: Mapping[User, frozenset[Target]], allowed: Mapping[User, frozenset[Target]] | None = None, cap: int = CAP
) -> list[tuple[tuple[User, ...], tuple[Target, ...]]]:
    """Rectangles covering every cell of `rows`, touching only cells of `rows` or of `allowed`, each with its
    users and its targets in increasing order.

    `allowed[u]` (a superset of `rows[u]`) names the don't-care cells a rectangle may also touch. Users and
    targets are numbered here, once, in the order the strategies below want them (`_by_holders`, `_cover_named`).
    """
    rows = {user: row for user, row in rows.items() if row}
    # each distinct row is counted and numbered once, and users of one role keep sharing one row object
    distinct = {id(row): row for row in rows.values()}
    users_of_row = Counter(map(id, rows.values()))
    # counted in C where a row is one user's (most rows of a scattered input), per row where users share it
    holders = Counter(chain.from_iterable(distinct[key] for key, users in users_of_row.items() if users == 1))
    for key, users in users_of_row.items():
        if users > 1:
            for target in distinct[key]:
                holders[target] += users
    targets = _by_holders(sorted(set(holders).union(*(allowed or {}).values())), holders)
    number = {target: place for place, target in enumerate(targets)}.__getitem__
    numbered = {id_: frozenset(map(number, row)) for id_, row in distinct.items()}
    numbered_allowed = None if allowed is None else _rows_mapped(allowed, number)
    return _cover_named({user: numbered[id(row)] for user, row in rows.items()}, numbered_allowed, targets, cap)


def cover_cells(
    cells: Iterable[tuple[User, Target]], allowed: Mapping[User, frozenset[Target]] | None = None, cap: int = CAP
) -> list[tuple[tuple[User, ...], tuple[Target, ...]]]:
    """`cover` of distinct cells given one by one, as a plan's changes come. Each target takes a number as it is
    first read (in C: a missing one takes the next), the users needing each are counted over those numbers,
    and each user's numbers are then mapped once to the target's place in `_by_holders`' order: no set of
    target names is built per user, nor a row built twice (customer, whose users' rows are mostly their own:
    its reading 30 -> 24 ms)."""
    read: defaultdict[Target, int] = defaultdict(count().__next__)
    read_number = read.__getitem__
    by_user: dict[User, list[int]] = defaultdict(list)
    for user, target in cells:
        by_user[user].append(read_number(target))
    read_allowed = None if allowed is None else _rows_mapped(allowed, read_number)  # may read more targets
    names = list(read)
    holders = Counter(chain.from_iterable(by_user.values()))
    order = _by_holders(sorted(range(len(names)), key=names.__getitem__), holders)
    place = [0] * len(order)
    for final, key in enumerate(order):
        place[key] = final
    number = place.__getitem__
    rows = shared_rows((user, frozenset(map(number, row))) for user, row in by_user.items())
    numbered_allowed = None if read_allowed is None else _rows_mapped(read_allowed, number)
    return _cover_named(rows, numbered_allowed, [names[key] for key in order], cap)


def _cover_named(
    rows: Mapping[User, frozenset[int]], allowed: Mapping[User, frozenset[int]] | None, targets: list[Target], cap: int
) -> list[tuple[tuple[User, ...], tuple[Target, ...]]]:
    """`cover` of rows (and `allowed`) whose targets are numbered already, `targets` naming each number: the
    users are numbered here, from the fewest needed cells to the most (ties by name), and the rectangles
    named."""
    if not rows:
        return []
    # by name within each count of needed cells: short sorts, and no key to look up per comparison
    by_needed: dict[int, list[User]] = defaultdict(list)
    for user in rows if allowed is None else set(rows).union(allowed):
        by_needed[len(rows.get(user, ()))].append(user)
    users = [user for needed in sorted(by_needed) for user in sorted(by_needed[needed])]
    user_number = {user: number for number, user in enumerate(users)}
    numbered_rows = {user_number[user]: row for user, row in rows.items()}
    numbered_allowed = None if allowed is None else {user_number[user]: row for user, row in allowed.items()}
    user_of, target_of = users.__getitem__, targets.__getitem__
    return [
        (tuple(sorted(map(user_of, rect_users))), tuple(sorted(map(target_of, rect_targets))))
        for rect_users, rect_targets in _cover(numbered_rows, numbered_allowed, cap)
    ]


def _rows_mapped(rows: Mapping[User, frozenset[Key]], to: Callable[[Key], int]) -> dict[User, frozenset[int]]:
    """Each row with every target mapped, once per distinct row object (users of one role share one)."""
    mapped = {id(row): frozenset(map(to, row)) for row in rows.values()}
    return {user: mapped[id(row)] for user, row in rows.items()}


def _by_holders(by_name: list[Key], holders: Counter[Key]) -> list[Key]:
    """Targets (in name order) from the fewest users needing them to the most, ties by name; `holders` counts
    the users needing each (none: a don't-care target). Rows are cut into strips in this order, and users are
    taken from the fewest needed cells to the most (`_cover_named`), so the targets most users share fall into
    the same strips of different users' rows, where merging and elimination can combine them: americas_large
    1,979-1,981 calls under six random renamings, where the names' order gave 2,036-2,048."""
    return sorted(by_name, key=holders.__getitem__)


def _cover(plain_rows: Rows, plain_allowed: Rows | None, cap: int) -> list[Rect]:
    # every step below reads the same rows: their distinct rows, and both sides as bits, are made once
    rows = _Shaped(plain_rows)
    allowed = None if plain_allowed is None else _Shaped(plain_allowed)
    permitted = allowed or rows
    essential, rest = essentials(rows, permitted, cap)
    # an essential rectangle is in some fewest-call cover, so the rest is covered on its own (only the naive
    # plans, which the result must never exceed, are still made from all the cells)
    best, blocked = _exact_covers(rest if essential else rows, cap, blocks=True)
    if essential:
        best = essential + best
        blocked = None if blocked is None else essential + blocked
        if len(best) > _naive_calls(rows, cap):
            best, blocked = cover_exact(rows, cap), None
    cells = sum(len(r) for r in rows.values())
    if allowed is not None and cells <= DONT_CARE_CELL_LIMIT:
        widened = _cover_blocks(rows, allowed, cap)
        if len(widened) < len(best):
            best = widened
    steps = ELIMINATE_STEPS_SMALL if cells <= SET_COVER_CELL_LIMIT else ELIMINATE_STEPS
    best = eliminate(merge_small(best, permitted, cap), rows, permitted, cap, steps)
    if blocked is not None:
        # fewer calls before merging and elimination is no promise of fewer after (healthcare: 24 calls with
        # blocks, 25 without, 22 and 21 after): both are finished, and the blocks kept only where fewer
        blocked = eliminate(merge_small(blocked, permitted, cap), rows, permitted, cap, steps)
        if len(blocked) < len(best):
            best = blocked
    if len(best) > lower_bound(cells, cap) and cells <= SET_COVER_CELL_LIMIT:
        # overlapping covers are finished the same way before they compete: elimination often differs most here
        overlapping = set_cover(rows, cap, essential)
        if overlapping is not None:
            overlapping = eliminate(merge_small(overlapping, permitted, cap), rows, permitted, cap, steps)
            if len(overlapping) < len(best):
                best = overlapping
    return best


def essentials(rows: Rows, permitted: Rows, cap: int = CAP) -> tuple[list[Rect], dict[int, frozenset[int]]]:
    """Rectangles that some cover with the fewest calls contains, and the cells of `rows` they leave uncovered.

    Every permitted rectangle through a cell (u, t) lies within the users permitted t times the targets
    permitted u. Where the users there who still need one of those targets, times the targets still needed
    there, fit the cap and are all permitted, that one rectangle holds every needed cell any rectangle through
    (u, t) could hold, so a fewest-call cover may as well contain it (the "essential" bicliques of role mining:
    Ene et al., SACMAT 2008). Taking one shrinks what is needed around it, which can make others essential, so
    the search repeats where something changed. On sparse role structures this finds most of a cover outright
    (apj: 448 of its 461 calls), and what it takes never needs undoing.
    """
    search = _Essentials(rows, permitted, cap)
    rest = dict(rows)  # copied in C: most users keep their row
    for user in search.narrowed:
        if search.left[user]:
            rest[user] = frozenset(search.needed(user))
        else:
            del rest[user]
    return search.rects, rest


class _Essentials:
    """Each user's needed targets and each target's needing users as bits, and each target's permitted users.

    Built from the distinct rows, so that a role-structured input of millions of cells costs its patterns, not
    its cells; and only users with a cell whose column is short enough can start an essential rectangle."""

    def __init__(self, rows: Rows, permitted: Rows, cap: int) -> None:
        self.cap = cap
        self.permitted = permitted
        self.rows = rows
        self.left: dict[int, int] = {}
        self.needing: dict[int, int] = defaultdict(int)  # target -> users still needing it
        shaped = _shaped(rows)
        patterns = shaped.groups
        self.left.update(shaped.bits)
        self.needing.update(shaped.holders)
        # target -> users permitted it
        self.permitted_users = shaped.holders if permitted is rows else _shaped(permitted).holders
        self.rects: list[Rect] = []
        self.narrowed: set[int] = set()  # users with cells taken
        self.height = {target: users.bit_count() for target, users in self.needing.items()}
        # each user's needed targets as a list, made when first asked for and kept as some are taken (a user is
        # searched many times, and listing the bits of a 24,000-target tenant costs more than the search)
        self._needed: dict[int, list[int]] = {}
        startable = {row: min(map(self.height.__getitem__, row)) * len(row) <= cap for row in patterns}
        todo = sorted(chain.from_iterable(users for row, users in patterns.items() if startable[row]))
        # users none of whose needed cells can start a rectangle within the cap (they would search in vain); only
        # taking cells from one of them, or from a column it needs (which shortens the column), can change that
        self.stuck = set(chain.from_iterable(users for row, users in patterns.items() if not startable[row]))
        self.stuck_bits = bitsets.mask(self.stuck)  # the same, to find those among a column's users in C
        while todo:
            changed: set[int] = set()
            self._search(todo, changed)
            # taking cells can make a rectangle essential only for users permitted one of their targets
            around = reduce(or_, (self.permitted_users[target] for target in changed), 0)
            todo = [user for user in bitsets.members(around) if self.left.get(user)]

    def _search(self, users: Iterable[int], changed: set[int]) -> None:
        # users with the same permitted row and the same needs find the same rectangle: a miss holds for all
        # of them until something is taken
        missed: set[tuple[frozenset[int], int]] = set()
        stuck = self.stuck
        for user in users:
            while self.left[user] and user not in stuck and (self.permitted[user], self.left[user]) not in missed:
                found = self._through(user)
                if found is None:
                    missed.add((self.permitted[user], self.left[user]))
                    break
                missed.clear()
                self._take(*found, changed)

    def _through(self, user: int) -> tuple[int, int] | None:
        """An essential rectangle through one of the user's needed cells, as (users, targets) bits."""
        own = self.left[user].bit_count()
        candidates = self._candidates(user)
        if not candidates:
            self.stuck.add(user)
            self.stuck_bits |= 1 << user
            return None
        # the targets the user may have that someone still needs, with who needs them
        needed_around = [(t, needing) for t in self.permitted[user] if (needing := self.needing.get(t, 0))]
        needing_around = reduce(or_, (needing for _, needing in needed_around), 0)
        # the rectangle's users include this one, so its targets include every target this user needs, and each
        # of its users must be permitted all of those: a test of one intersection that fails most candidates of
        # a scattered input before their targets are listed (synt_6k_24k: essentials 1.16 -> 0.83 s)
        permitted_all_needed = None
        for target in candidates:
            users = self.permitted_users[target] & needing_around
            height = users.bit_count()
            if height * own > self.cap:
                continue
            if permitted_all_needed is None:
                permitted_all_needed = reduce(
                    and_, map(self.permitted_users.__getitem__, self.needed(user)), needing_around
                )
            if users & permitted_all_needed != users:
                continue
            # a list, not bits: on a tenant of 24,000 targets, bits of a few would each be thousands of bytes
            targets = [t for t, needing in needed_around if needing & users]
            if height * len(targets) > self.cap:
                continue
            # every one of the users is permitted each target (a subset test: `users & ~permitted` would
            # complement ten thousand bits per target on a tenant of ten thousand users)
            if all(users & self.permitted_users[t] == users for t in targets):
                return users, bitsets.mask(targets)
        return None

    def _candidates(self, user: int) -> list[int]:
        """The user's needed targets whose column, times the user's row, fits the cap: a rectangle through that
        cell holds every user needing the target, so no other can start an essential one."""
        if not self.left[user]:
            return []
        listed = self.needed(user)
        widest = self.cap // len(listed)  # at most the cap: a column this short fits it
        return [t for t in listed if self.height[t] <= widest]

    def needed(self, user: int) -> list[int]:
        """The targets the user still needs, in increasing order."""
        listed = self._needed.get(user)
        if listed is None:
            # a row no rectangle has touched is the user's row (sorting it beats listing its bits)
            listed = bitsets.members(self.left[user]) if user in self.narrowed else sorted(self.rows[user])
            self._needed[user] = listed
        return listed

    def _take(self, users: int, targets: int, changed: set[int]) -> None:
        user_list, target_list = bitsets.members(users), bitsets.members(targets)
        self.rects.append((tuple(user_list), tuple(target_list)))
        taken = set(target_list)
        for user in user_list:
            needed = self.needed(user)
            self.left[user] &= ~targets
            self._needed[user] = [t for t in needed if t not in taken]
        for target in target_list:
            self.needing[target] &= ~users
            self.height[target] = self.needing[target].bit_count()
        changed.update(target_list)
        self.narrowed.update(user_list)
        # a shorter row, or a shorter column, may now fit the cap for a stuck user (the others are found stuck, if
        # they are, when next searched)
        for user in user_list:
            if user in self.stuck and self._candidates(user):
                self._unstick(user)
        for target in target_list:
            height = self.height[target]
            if 0 < height <= self.cap:
                widest = self.cap // height
                for user in bitsets.members(self.needing[target] & self.stuck_bits):
                    listed = self._needed.get(user)  # its length, where made, costs less than counting bits
                    if (self.left[user].bit_count() if listed is None else len(listed)) <= widest:
                        self._unstick(user)

    def _unstick(self, user: int) -> None:
        self.stuck.discard(user)
        self.stuck_bits &= ~(1 << user)


def merge_small(rects: list[Rect], allowed: Rows, cap: int = CAP) -> list[Rect]:
    """Fold under-filled rectangles into each other where their union is still a permitted rectangle.

    Two rectangles (U1, T1) and (U2, T2) can become (U1+U2, T1+T2) when every cell of the union may be touched
    and it fits the cap. Each strategy above leaves partial calls at the edges of its rectangles; this pass
    packs them, first-fit over a stable order, and never increases the count.
    """
    small = sorted(r for r in rects if len(r[0]) * len(r[1]) <= cap // 2)
    if len(small) < 2 or len(small) > MERGE_LIMIT:
        return rects
    kept = [r for r in rects if len(r[0]) * len(r[1]) > cap // 2]
    permits = _shaped(allowed).bits
    # each group: its users and its targets as bits, the targets all its users may have, and its height and width;
    # and the rectangle it is while nothing has joined it (its bits need not be listed back)
    group_users: list[int] = []
    group_targets: list[int] = []
    group_target_sets: list[frozenset[int]] = []  # the same as sets: a subset test of a few targets, in C
    group_shared: list[int] = []
    heights: list[int] = []
    widths: list[int] = []
    alone: list[Rect | None] = []
    by_user: dict[int, set[int]] = defaultdict(set)
    by_target: dict[int, set[int]] = defaultdict(set)
    for users, targets in small:
        user_bits, target_bits = bitsets.mask(users), bitsets.mask(targets)
        shared = reduce(and_, (permits.get(u, 0) for u in users))
        shared_set = frozenset.intersection(*(allowed.get(u, frozenset()) for u in users))
        # candidates: groups sharing a user or a target, and the most recent few (bounded work per rectangle)
        nearby = set().union(*(by_user[u] for u in users), *(by_target[t] for t in targets))
        nearby.update(range(max(0, len(heights) - MERGE_WINDOW), len(heights)))
        height, width = len(users), len(targets)
        # each side already fits its own cells, so only the cross cells need to be permitted; this rectangle's
        # users may seldom have a group's targets (one-target batches of different targets), so that is tested
        # first, alone, for every candidate, on sets (bits of a 24,000-target tenant are thousands of bytes each)
        for index in [i for i in sorted(nearby) if group_target_sets[i] <= shared_set]:
            if target_bits & ~group_shared[index]:
                continue
            # the union is at least as tall and as wide as either
            if max(heights[index], height) * max(widths[index], width) > cap:
                continue
            union_width = (group_targets[index] | target_bits).bit_count()
            if union_width * max(heights[index], height) > cap:
                continue
            union_height = (group_users[index] | user_bits).bit_count()
            if union_height * union_width <= cap:
                group_users[index] |= user_bits
                group_targets[index] |= target_bits
                group_target_sets[index] = group_target_sets[index].union(targets)
                group_shared[index] &= shared
                heights[index], widths[index] = union_height, union_width
                alone[index] = None
                break
        else:
            index = len(heights)
            group_users.append(user_bits)
            group_targets.append(target_bits)
            group_target_sets.append(frozenset(targets))
            group_shared.append(shared)
            heights.append(height)
            widths.append(width)
            alone.append((tuple(sorted(users)), tuple(sorted(targets))))
        for u in users:
            by_user[u].add(index)
        for t in targets:
            by_target[t].add(index)
    merged = zip(group_users, group_targets, alone, strict=True)
    return kept + [rect or (tuple(bitsets.members(u)), tuple(bitsets.members(t))) for u, t, rect in merged]


def eliminate(rects: list[Rect], rows: Rows, allowed: Rows, cap: int = CAP, steps: int = ELIMINATE_STEPS) -> list[Rect]:
    """Drop a rectangle wherever widening a few others (within the cap, over permitted cells) covers the cells
    of `rows` only it covered; smallest rectangles first, one pass.

    The strategies above each build their rectangles whole; a cover of overlapping roles often has a batch whose
    own cells neighbours could take by adding a user or two, or a target or two (apj: 478 -> 475 calls, fire1:
    375 -> 369, americas_small: 1,184 -> 1,171). At most `steps` widenings (one neighbour may widen twice: by
    users, then by targets), on covers of at most ELIMINATE_RECT_LIMIT rectangles. `_cover` allows more of them
    on inputs small enough for set cover, where the whole plan takes milliseconds (healthcare: 22 -> 21 calls
    at six; customer's half, at 22,683 cells, would take twice as long). Only rectangles with room for one more
    user or target can widen, so a rectangle is searched only when the rooms of its roomiest neighbours over it
    add up to its own cells, and only those neighbours are searched; the search gives up once the widenings
    left could not take what is left at the rate of the last one: in a tiling of full rectangles (a
    role-structured onboarding) nothing is searched at all."""
    if len(rects) > ELIMINATE_RECT_LIMIT:
        return rects
    search = _Elimination(rects, rows, allowed, cap, steps)
    for index in sorted(range(len(rects)), key=lambda i: (len(rects[i][0]) * len(rects[i][1]), i)):
        search.try_dropping(index)
    return search.result()


# a rectangle's users, its targets, and the targets all its users may have (never empty: its own targets)
_Widened = tuple[frozenset[int], int, int]


class _Coverage:
    """How many rectangles cover each cell, kept per line (each user, or each target) as a binary counter of bit
    planes over the other side (ones, twos, ...), and which cells of a rectangle only it covers. Lines are the
    side the rectangles are short in: a cover of one-target batches of 100 users keeps 1 line per batch, not 100.
    """

    def __init__(self, rows: Rows, by_target: bool) -> None:
        self.by_target = by_target
        self.planes: dict[int, list[int]] = defaultdict(list)
        self.wanted: dict[int, int] = defaultdict(int)  # line -> the other side's wanted cells on it, as bits
        shaped = _shaped(rows)
        self.wanted.update(shaped.holders if by_target else shaped.bits)

    def add(self, users: Iterable[int], user_bits: int, targets: Iterable[int], target_bits: int) -> None:
        self._count(users, user_bits, targets, target_bits, subtract=False)

    def remove(self, users: Iterable[int], user_bits: int, targets: Iterable[int], target_bits: int) -> None:
        self._count(users, user_bits, targets, target_bits, subtract=True)

    def _count(
        self, users: Iterable[int], user_bits: int, targets: Iterable[int], target_bits: int, subtract: bool
    ) -> None:
        """Add one to (or take one from) the count of every cell of `users` x `targets`, with carries (borrows)
        from plane to plane."""
        lines, across = (targets, user_bits) if self.by_target else (users, target_bits)
        for line in lines:
            planes = self.planes[line]
            carry, plane = across, 0
            while carry:
                if plane == len(planes):
                    planes.append(0)
                current = planes[plane]
                planes[plane], carry = current ^ carry, (~current if subtract else current) & carry
                plane += 1

    def own(
        self, users: Sequence[int], user_bits: int, targets: Sequence[int], target_bits: int, most: int
    ) -> dict[int, int] | None:
        """Per line, the wanted cells among `users` x `targets` that one rectangle alone covers, as bits over the
        other side (None: more than `most` such cells)."""
        lines, across = (targets, user_bits) if self.by_target else (users, target_bits)
        own = {}
        counted = 0
        for line in lines:
            planes = self.planes[line]
            # most cells are covered at most twice: one plane past the first, or none
            covered_twice = planes[1] if len(planes) == 2 else reduce(or_, planes[1:], 0)
            left = across & ~covered_twice & self.wanted[line]
            if left:
                own[line] = left
                counted += left.bit_count()
                if counted > most:
                    return None
        return own

    def by_user(self, cells: dict[int, int]) -> dict[int, int]:
        """Cells as `own` gives them, per user: each user's targets as bits."""
        if not self.by_target:
            return cells
        by_user: dict[int, int] = defaultdict(int)
        for target, holders in cells.items():
            for user in bitsets.members(holders):
                by_user[user] |= 1 << target
        return dict(sorted(by_user.items()))


class _Elimination:
    """The rectangles (users as sets, targets as bits), how many of them cover each cell (`_Coverage`), which of
    them with room for one more target touch each user, and which with room for one more user touch each target
    (the only ones that can take cells over: most of a cover is full)."""

    def __init__(self, rects: list[Rect], rows: Rows, allowed: Rows, cap: int, steps: int) -> None:
        self.rects = list(rects)
        self.steps = steps
        self.users = [frozenset(users) for users, _ in rects]
        self.user_bits = [bitsets.mask(users) for users, _ in rects]  # the same as bits, to intersect in C
        self.targets = [bitsets.mask(targets) for _, targets in rects]
        self.alive = [True] * len(rects)
        self.cap = cap
        self.more_users = [0] * len(rects)
        self.more_targets = [0] * len(rects)
        for index in range(len(rects)):
            self._measure_room(index)
        # the most cells `steps` widenings could take from any rectangle: a neighbour's room over one
        # (`_rooms_over`) is never more than the cells the neighbour lacks of the cap, and only one with room for
        # one more user or target has any. Widening and dropping only shrink what rectangles lack, so it holds for
        # the whole pass. In a tiling of nearly full batches (6,297 users on 5 targets: 1 x 98) it rules out every
        # rectangle before any neighbour is met
        lacking = (
            cap - len(self.users[index]) * self.targets[index].bit_count()
            for index in range(len(rects))
            if self.more_users[index] > 0 or self.more_targets[index] > 0
        )
        self.most_taken = sum(heapq.nlargest(steps, lacking))
        self.allowed = allowed
        # user -> the targets of `allowed`, as bits: made per user, unless the rows' are made already and are these
        self._permits: dict[int, int] = dict(rows.bits) if allowed is rows and isinstance(rows, _Shaped) else {}
        self._shared: dict[int, int] = {}  # rectangle -> the targets all its users may be given, as bits
        self._joinable: dict[int, int] = {}  # rectangle -> the users who may be given all its targets, as bits
        by_target = sum(map(len, (targets for _, targets in rects))) < sum(map(len, (users for users, _ in rects)))
        self.coverage = _Coverage(rows, by_target)
        # a neighbour takes cells by more targets for users both have, or by more users on targets both have
        self.taking_targets_at_user: dict[int, set[int]] = defaultdict(set)
        self.taking_users_at_target: dict[int, set[int]] = defaultdict(set)
        # the same rectangles, each listed once more at one of its targets (its anchor): those whose targets all lie
        # in a set of targets are listed at anchors in it (`_joinable_neighbours`). Any target would do; the one
        # with the fewest holders keeps the lists short where a popular target is in many rectangles
        self._holder_counts = {target: users.bit_count() for target, users in _shaped(rows).holders.items()}
        self.taking_users_at_anchor: dict[int, set[int]] = defaultdict(set)
        self._anchor_of: dict[int, int] = {}
        # rectangle -> the targets it may take in (all its users may have them, it has none of them), as bits
        self.takeable = [0] * len(rects)
        for index, (users, targets) in enumerate(rects):
            self.coverage.add(users, self.user_bits[index], targets, self.targets[index])
            self._index(index, users, targets)

    def _index(self, index: int, users: Iterable[int], targets: Iterable[int]) -> None:
        """List rectangle `index` at these of its users if it has room for more targets, and at these of its
        targets if it has room for more users."""
        if self.more_targets[index] > 0:
            self.takeable[index] = self._permitted_to_all(index) & ~self.targets[index]
            for user in users:
                self.taking_targets_at_user[user].add(index)
        if self.more_users[index] > 0:
            for target in targets:
                self.taking_users_at_target[target].add(index)
            anchor = min(self.rects[index][1], key=lambda t: (self._holder_counts.get(t, 0), t))
            if self._anchor_of.get(index) != anchor:
                self._unanchor(index)
                self.taking_users_at_anchor[anchor].add(index)
                self._anchor_of[index] = anchor

    def _unindex(self, index: int, at_users: bool = True, at_targets: bool = True) -> None:
        users, targets = self.rects[index]
        if at_users:
            for user in users:
                self.taking_targets_at_user[user].discard(index)
        if at_targets:
            for target in targets:
                self.taking_users_at_target[target].discard(index)
            self._unanchor(index)

    def _unanchor(self, index: int) -> None:
        anchor = self._anchor_of.pop(index, None)
        if anchor is not None:
            self.taking_users_at_anchor[anchor].discard(index)

    def result(self) -> list[Rect]:
        return [rect for rect, alive in zip(self.rects, self.alive, strict=True) if alive]

    def _permitted(self, user: int) -> int:
        """Every target a rectangle may touch for the user, as bits."""
        found = self._permits.get(user)
        if found is None:
            found = self._permits[user] = bitsets.mask(self.allowed.get(user, ()))
        return found

    def _permitted_to_all(self, index: int) -> int:
        """The targets every user of rectangle `index` may be given: a target joins it only if in here."""
        found = self._shared.get(index)
        if found is None:
            found = reduce(and_, map(self._permitted, self.users[index]), -1)
            self._shared[index] = found
        return found

    @cached_property
    def _permitted_users(self) -> dict[int, int]:
        """Each target's users that `allowed` permits it, as bits."""
        return _shaped(self.allowed).holders

    def _joinable_users(self, index: int) -> int:
        """The users who may be given every target of rectangle `index`: a user joins it only if in here."""
        found = self._joinable.get(index)
        if found is None:
            permitted_users = self._permitted_users
            found = reduce(and_, (permitted_users.get(t, 0) for t in self.rects[index][1]))
            self._joinable[index] = found
        return found

    def _measure_room(self, index: int) -> None:
        """How many more users, and how many more targets, rectangle `index` has room for."""
        height, width = len(self.users[index]), self.targets[index].bit_count()
        self.more_users[index], self.more_targets[index] = self.cap // width - height, self.cap // height - width

    def _rooms_over(self, index: int) -> dict[int, int]:
        """The neighbours that could take cells of rectangle `index` by one widening, each with the most it
        could take: more of its users (of those who may have all its targets) on the targets both have, or more
        of its targets (of those all its users may have) for the users both have. Cheap: if the `steps`
        largest do not add up to its own cells (almost every rectangle of a cover), nothing is searched, and the
        search looks only at these neighbours. This runs for every rectangle: the users each neighbour shares
        are counted in C, and neighbours that could take none of its users are not met (`_joinable_neighbours`).
        Counting only users who may join (customer: a one-user batch on two
        targets has room for 49 more users, but few of a batch's users may have both) skips most searches
        where batches are one target wide."""
        its_users = self.rects[index][0]
        its_targets, its_user_bits = self.targets[index], self.user_bits[index]
        targets = self.targets
        rooms = {}
        for other in self._joinable_neighbours(index):
            shared_targets = (targets[other] & its_targets).bit_count()
            joinable = (its_user_bits & self._joinable_users(other) & ~self.user_bits[other]).bit_count()
            room = min(self.more_users[other], joinable) * shared_targets
            if room > 0:
                rooms[other] = room
        sharing_users = Counter(chain.from_iterable(map(self.taking_targets_at_user.__getitem__, its_users)))
        del sharing_users[index]
        for other, shared_users in sharing_users.items():
            takeable = its_targets & self.takeable[other]
            room = min(self.more_targets[other], takeable.bit_count()) * shared_users
            if room > rooms.get(other, 0):
                rooms[other] = room
        return rooms

    def _joinable_neighbours(self, index: int) -> set[int]:
        """The rectangles with room for more users that share a target with rectangle `index`, less some whose
        targets none of its users may all have (they could take none of its users). Found at the targets it has,
        or where they are many, at the anchors among the targets its users may have if those list fewer
        (amazon1: 500,000 rectangles met at shared targets, 99% of them with a target none of the users may
        have)."""
        its_users, its_target_list = self.rects[index]
        at_target, targets = self.taking_users_at_target, self.targets
        met = [at_target[target] for target in its_target_list if target in at_target]
        meetings = sum(map(len, met))
        if meetings <= len(its_users):  # fewer than the users whose targets would rule some out
            found = set().union(*met)
            found.discard(index)
            return found
        # its users may join a neighbour only if permitted all its targets: none is where the neighbour's targets
        # reach past every target any of them may have
        reach = reduce(or_, map(self._permitted, its_users), 0)
        if meetings > reach.bit_count():
            at_anchor = self.taking_users_at_anchor
            anchored = [at_anchor[a] for a in bitsets.members(reach) if a in at_anchor]
            if sum(map(len, anchored)) < meetings:
                its_targets = self.targets[index]
                found = {o for o in set().union(*anchored) if targets[o] & its_targets}
                found.discard(index)
                return {o for o in found if not targets[o] & ~reach}
        found = set().union(*met)
        found.discard(index)
        return {o for o in found if not targets[o] & ~reach}

    def try_dropping(self, index: int) -> None:
        its_users, its_targets = self.rects[index]
        # first against what any neighbours could take (cheap: no neighbour is met), then against what its own could
        own = self.coverage.own(its_users, self.user_bits[index], its_targets, self.targets[index], self.most_taken)
        if own is None:
            return
        rooms = self._rooms_over(index)
        # with no neighbour that can widen (all of a full tiling) only a rectangle with no cells of its own goes
        if sum(cells.bit_count() for cells in own.values()) > sum(heapq.nlargest(self.steps, rooms.values())):
            return
        left = self.coverage.by_user(own)
        widened: dict[int, _Widened] = {}
        for steps_left in range(self.steps - 1, -1, -1):
            if not left:
                break
            step = self._best_widening(rooms, left, widened)
            if step is None:
                return
            other, (users, targets, permitted) = step
            widened[other] = (users, targets, permitted)
            before = sum(bits.bit_count() for bits in left.values())
            for user in [u for u in left if u in users]:
                left[user] &= ~targets
                if not left[user]:
                    del left[user]
            taken = before - sum(bits.bit_count() for bits in left.values())
            if before - taken > steps_left * taken:  # later widenings seldom take more than the last one
                return
        if left:
            return
        self.alive[index] = False
        self._unindex(index)
        self.coverage.remove(its_users, self.user_bits[index], its_targets, self.targets[index])
        for other, (users, targets, permitted) in widened.items():
            new_users = sorted(users - self.users[other])
            added = targets & ~self.targets[other]
            new_targets = bitsets.members(added)
            if added:
                self.coverage.add(self.rects[other][0], self.user_bits[other], new_targets, added)
            if new_users:
                self.coverage.add(new_users, bitsets.mask(new_users), bitsets.members(targets), targets)
            old_users, old_targets = self.rects[other]
            self.rects[other] = (tuple(sorted((*old_users, *new_users))), tuple(sorted((*old_targets, *new_targets))))
            self.users[other], self.targets[other], self._shared[other] = users, targets, permitted
            self._joinable.pop(other, None)
            self.takeable[other] = 0  # made again below if it still has room for more targets
            self.user_bits[other] |= bitsets.mask(new_users)
            # room only shrinks as a rectangle widens: it stays listed where it still has some
            self._measure_room(other)
            self._index(other, new_users, new_targets)
            self._unindex(other, at_users=not self.more_targets[other] > 0, at_targets=not self.more_users[other] > 0)

    def _best_widening(
        self, rooms: Mapping[int, int], left: dict[int, int], widened: dict[int, _Widened]
    ) -> tuple[int, _Widened] | None:
        """The one widening of a neighbour, by users or by targets, that covers most of `left` (ties: the lowest
        numbered). `rooms` bounds what each could take; neighbours are tried from the largest bound down, and the
        search stops where no bound left can beat the best found (a neighbour widened already has no bound)."""
        columns: dict[int, set[int]] | None = None  # target -> the users of `left` needing it, made if needed
        wanted = reduce(or_, left.values(), 0)
        permits = {user: self._permitted(user) for user in left}
        best: tuple[int, int, _Widened] | None = None  # (cells covered, rectangle, its widened form)
        unbounded = self.cap * self.cap
        for negative_bound, other in sorted((-(unbounded if o in widened else r), o) for o, r in rooms.items()):
            if best is not None and (-negative_bound, -other) < (best[0], -best[1]):
                break
            users, targets, permitted = widened.get(other) or (self.users[other], self.targets[other], 0)
            height, width = len(users), targets.bit_count()
            room = self.cap // width - height
            if room > 0 and targets & wanted:  # more users: each must be permitted every target of the rectangle
                gains = sorted(
                    ((bits & targets).bit_count(), user)
                    for user, bits in left.items()
                    if bits & targets and user not in users and not targets & ~permits[user]
                )[-room:]
                gain = sum(g for g, _ in gains)
                if gain and (best is None or (gain, -other) > (best[0], -best[1])):
                    joining = [u for _, u in gains]
                    joined = reduce(and_, (permits[u] for u in joining), permitted or self._permitted_to_all(other))
                    best = (gain, other, (users.union(joining), targets, joined))
            room = self.cap // height - width
            if room > 0 and not users.isdisjoint(left):  # more targets: every user of it must be permitted each
                permitted = permitted or self._permitted_to_all(other)
                if columns is None:
                    columns = defaultdict(set)
                    for user, bits in left.items():
                        for target in bitsets.members(bits):
                            columns[target].add(user)
                gains = sorted(
                    (len(holders & users), target)
                    for target, holders in columns.items()
                    if permitted >> target & 1 and not targets >> target & 1 and not holders.isdisjoint(users)
                )[-room:]
                gain = sum(g for g, _ in gains)
                if gain and (best is None or (gain, -other) > (best[0], -best[1])):
                    best = (gain, other, (users, targets | bitsets.mask(t for _, t in gains), permitted))
        return None if best is None else best[1:]


def cover_exact(rows: Rows, cap: int = CAP) -> list[Rect]:
    """Rectangles covering exactly the cells of `rows`: the better naive cover (strategies 1 and 2), or one with
    shared remainders, of targets' last partial calls or of users' (the same on the transpose)."""
    return _exact_covers(rows, cap, blocks=False)[0]


def _exact_covers(rows: Rows, cap: int, blocks: bool) -> tuple[list[Rect], list[Rect] | None]:
    """`cover_exact`'s cover; and with `blocks`, one with remainder blocks where that makes fewer calls still
    (`_remainder_blocks`), which `_cover` finishes as well: its calls, like any, may be merged and eliminated
    differently."""
    patterns = _patterns(rows)  # of the non-empty rows; from the distinct rows already made, where they are
    if not patterns:
        return [], None
    floor = lower_bound(sum(len(users) * len(targets) for users, targets in patterns), cap)
    column_patterns = _column_patterns(patterns)
    by_rows, by_columns = _naive_count(patterns, cap), _naive_count(column_patterns, cap)
    fewest = min(by_rows, by_columns)
    best: list[Rect] | None = None  # the naive cover, made only if nothing beats it
    # a shared call is (holders, keys): users x targets for the columns' remainders, the transpose for the rows'
    for keyed, calls, transpose in ((column_patterns, by_columns, False), (patterns, by_rows, True)):
        if fewest > floor:
            shared = _shared_remainders(keyed, calls, fewest, cap)
            if shared is not None and len(shared) < fewest:
                best = [(u, t) for t, u in shared] if transpose else shared
                fewest = len(best)
    blocked: list[Rect] | None = None
    for keyed, calls, transpose in ((column_patterns, by_columns, False), (patterns, by_rows, True)):
        if blocks and fewest > floor:
            found = _remainder_blocks(keyed, calls, fewest, cap)
            if found is not None:
                blocked = [(u, t) for t, u in found] if transpose else found
                fewest = len(blocked)
    if best is None:
        best = [(u, t) for t, u in _by_rows(column_patterns, cap)] if by_columns < by_rows else _by_rows(patterns, cap)
    return best, blocked


def _naive_count(patterns: Iterable[Pattern], cap: int) -> int:
    """The calls `_by_rows` makes, counted without making them."""
    return sum(_tile_calls(len(users), len(targets), cap) for users, targets in patterns)


def _naive_calls(rows: Rows, cap: int = CAP) -> int:
    """The calls of the better naive cover (`cover_exact`'s first), counted without making it: the distinct
    columns are the targets with the same users, counted from each target's users as bits."""
    shaped = _shaped(rows)
    by_rows = sum(_tile_calls(len(users), len(row), cap) for row, users in shaped.groups.items())
    columns = Counter(shaped.holders.values())
    by_columns = sum(_tile_calls(targets, users.bit_count(), cap) for users, targets in columns.items())
    return min(by_rows, by_columns)


class _Shaped(dict[int, frozenset[int]]):
    """Rows, with the forms of them that several steps read, each made the first time it is asked for."""

    @cached_property
    def groups(self) -> dict[frozenset[int], list[int]]:
        return _groups(self)

    @cached_property
    def bits(self) -> dict[int, int]:
        return _row_bits(self.groups)

    @cached_property
    def holders(self) -> dict[int, int]:
        return _holders(self.groups)


def _shaped(rows: Rows) -> _Shaped:
    return rows if isinstance(rows, _Shaped) else _Shaped(rows)


def _groups(rows: Rows) -> dict[frozenset[int], list[int]]:
    """The users of each distinct non-empty row, in increasing order; the rows in the order their first users
    come."""
    groups: dict[frozenset[int], list[int]] = defaultdict(list)
    for user in sorted(rows):
        if rows[user]:
            groups[rows[user]].append(user)
    return groups


def _row_bits(groups: Mapping[frozenset[int], list[int]]) -> dict[int, int]:
    """Each user's targets as bits, from the users of each distinct row (`_groups`): one mask per row."""
    bits: dict[int, int] = {}
    for row, users in groups.items():
        row_bits = bitsets.mask(row)
        for user in users:  # most rows are one user's: a loop costs less than a dict made per row
            bits[user] = row_bits
    return bits


def _holders(groups: Mapping[frozenset[int], list[int]]) -> dict[int, int]:
    """Each target's users as bits, from the users of each distinct row (`_groups`)."""
    holders: dict[int, int] = defaultdict(int)
    for row, users in groups.items():
        users_bits = bitsets.mask(users)
        for target in row:
            holders[target] |= users_bits
    return holders


def _patterns(rows: Rows) -> list[Pattern]:
    """Distinct rows, each with the sorted users that have it, in the order of their first users (`_groups`
    lists each row's users in increasing order, and the rows in the order their first users come)."""
    return [(tuple(users), tuple(sorted(row))) for row, users in _shaped(rows).groups.items()]


def _column_patterns(patterns: Sequence[Pattern]) -> list[Pattern]:
    """Distinct columns, each with the sorted targets that have it: `_patterns` of the transpose.

    Computed from the distinct rows, not the cells: since the rows' patterns partition the users, two targets
    have the same users exactly when they appear in the same patterns (at 3 M cells, a transpose of every cell
    cost 300 MB and a second).
    """
    holders: dict[int, list[int]] = defaultdict(list)
    for index, (_, row) in enumerate(patterns):
        for target in row:
            holders[target].append(index)
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for target in sorted(holders):
        groups[tuple(holders[target])].append(target)
    # in the order of their first targets, as `_patterns` orders rows
    return [
        (tuple(targets), tuple(sorted(chain.from_iterable(patterns[i][0] for i in indices))))
        for indices, targets in groups.items()
    ]


def _by_rows(patterns: Iterable[Pattern], cap: int) -> list[Rect]:
    rects: list[Rect] = []
    for users, targets in patterns:
        rects.extend(tile(users, targets, cap))
    return rects


def _shared_remainders(column_patterns: list[Pattern], columns: int, best: int, cap: int) -> list[Rect] | None:
    """Strategy 2 with the partial last calls of several targets shared; None if it cannot beat `best`. Given
    the row patterns instead (users with the same targets), the same for users, as (targets, users) rectangles.

    A target's users chunked by 100 leave one partial call of r users. A target with r = k <= 50 can share a
    k x w call (w <= 100/k) with targets that have n = 100q + r' users, q >= 1 and 0 < r' <= k: taking k of
    their users leaves n - k, q calls instead of q + 1. So a group of w targets saves w - 1 calls, provided the
    k users hold every target of the group. Groups are formed greedily, largest remainders first
    (`_greedy_groups`), and again with their pairs chosen as a largest matching (`_rematched`); the one making
    fewer calls is kept (ties: the greedy one).
    """
    partial = sum(len(targets) for targets, users in column_patterns if len(users) % cap)
    cells = sum(len(targets) * len(users) for targets, users in column_patterns)
    if columns - partial >= best or cells > SHARED_REMAINDER_CELL_LIMIT:  # a target saves one call at most
        return None
    if not any(len(users) > cap and len(users) % cap for _, users in column_patterns):
        return None  # no target can take in another's partial call
    # each target's users, as the patterns' own sorted tuples (not copied) until some are taken from it
    holders: dict[int, tuple[int, ...]] = {}
    for targets, users in column_patterns:
        holders.update(dict.fromkeys(targets, users))
    held = _HeldSets(holders)  # both groupings test the same pairs: they share the sets and the answers
    greedy = _greedy_groups(holders, cap, held)
    if not greedy:
        return None
    shared = _shared_calls(dict(holders), greedy, cap)
    # matching again saves at most a call per target the greedy groups left out: not worth its time where even
    # that would leave the plan at `best` or above, or on inputs so large that testing every pair that could
    # share costs more than the calls it may save (a 750,000-cell role tiling: 0.5 s for none)
    if len(shared) - (partial - sum(map(len, greedy))) >= best or cells > SHARED_REMAINDER_MATCH_CELL_LIMIT:
        return shared
    matched = _rematched(holders, greedy, cap, held)
    if sorted(map(sorted, matched)) != sorted(map(sorted, greedy)):
        # targets of one column pattern share a partial call already, which the calls saved per group do not
        # count: the matched groups are kept only where they make fewer calls
        rematched = _shared_calls(dict(holders), matched, cap)
        if len(rematched) < len(shared):
            return rematched
    return shared


def _greedy_groups(holders: Mapping[int, tuple[int, ...]], cap: int, held: _HeldSets | None = None) -> list[list[int]]:
    """Targets that can share their partial last call, grouped greedily: each target with r <= 50 left over,
    largest first, leads a group and takes in every target it can, of those with n > 100 users and r' <= r."""
    order = sorted((t for t in holders if len(holders[t]) % cap), key=lambda t: (-(len(holders[t]) % cap), t))
    absorbers = [t for t in order if len(holders[t]) > cap]
    if not absorbers:  # every group has one
        return []
    descending = [-(len(holders[t]) % cap) for t in absorbers]  # for bisect: remainders, largest first
    groups: list[list[int]] = []
    grouped: set[int] = set()
    held = _HeldSets(holders) if held is None else held
    # leads of one pattern (the same users: the same tuple) that is no absorber find the same group: a lead that
    # found none stands for all of them until a group forms
    missed: set[int] = set()
    for lead in order:
        k = len(holders[lead]) % cap
        if lead in grouped or k > cap // 2 or id(holders[lead]) in missed:
            continue
        first = bisect_left(descending, -k)  # the absorbers whose remainder is at most k
        window = absorbers[first : first + SHARED_REMAINDER_SCAN]
        if not window:
            continue
        group = _take_in([lead], window, (lead,), k, held, cap)
        if len(group) > 1:
            groups.append(group)
            grouped.update(group)
            absorbers = [t for t in absorbers if t not in grouped]
            descending = [-(len(holders[t]) % cap) for t in absorbers]
            missed.clear()
        elif len(holders[lead]) <= cap:
            missed.add(id(holders[lead]))
    return groups


def _rematched(
    holders: Mapping[int, tuple[int, ...]], groups: list[list[int]], cap: int, held: _HeldSets | None = None
) -> list[list[int]]:
    """The greedy groups with their pairs chosen again: as many pairs as the targets outside the larger groups
    allow (a maximum matching of the graph of targets that could share a call), each then taking in any target
    left that it can. Greedy pairing, largest remainders first, can take the one partner a later target
    needed (customer: 21 calls saved; matched, 24). Never fewer pairs than the greedy ones, which are edges
    of the graph; the matching is computed only when two targets left unpaired could pair with someone, as
    any better matching needs (Berge's lemma), and on at most SHARED_REMAINDER_MATCH_LIMIT edges."""
    remainder = {target: len(users) % cap for target, users in holders.items()}
    kept = [group for group in groups if len(group) > 2]
    pairs = [(min(group), max(group)) for group in groups if len(group) == 2]
    in_kept = set(chain.from_iterable(kept))
    free = sorted((t for t in holders if remainder[t] and t not in in_kept), key=lambda t: (-remainder[t], t))
    absorbers = [t for t in free if len(holders[t]) > cap]
    descending = [-remainder[t] for t in absorbers]
    held = _HeldSets(holders) if held is None else held
    could_pair = sum(1 for t in free if remainder[t] <= cap // 2 or len(holders[t]) > cap)
    if len(pairs) < could_pair // 2:
        # else no matching pairs more, and the greedy pairs are the one `_largest_matching` would keep: testing
        # every pair that could share (an intersection each) is skipped, 20 ms on a dense 173 x 117 matrix
        pairs = _matched_pairs(holders, pairs, free, absorbers, held, cap)
    paired = set(chain.from_iterable(pairs))
    grown = []
    for pair in pairs:
        k = max(remainder[t] for t in pair)
        first = bisect_left(descending, -k)
        group = _take_in(list(pair), absorbers[first : first + SHARED_REMAINDER_SCAN], paired, k, held, cap)
        paired.update(group)
        grown.append(group)
    return kept + grown


def _matched_pairs(
    holders: Mapping[int, tuple[int, ...]],
    pairs: list[tuple[int, int]],
    free: list[int],
    absorbers: list[int],
    held: _HeldSets,
    cap: int,
) -> list[tuple[int, int]]:
    """`pairs` made a largest matching of the graph of the `free` targets that could share a call (absorbers
    taken from `absorbers`, largest remainders first), keeping as many of them as that allows."""
    remainder = {target: len(users) % cap for target, users in holders.items()}
    descending = [-remainder[t] for t in absorbers]
    edges: set[tuple[int, int]] = set(pairs)
    partners: dict[int, list[int]] = {}  # pattern (its users' tuple) -> the absorbers its leads can share with
    for lead in free:
        k = remainder[lead]
        if k > cap // 2:
            continue
        found = partners.get(id(holders[lead]))
        if found is None:
            first = bisect_left(descending, -k)
            window = absorbers[first : first + SHARED_REMAINDER_SCAN]
            found = [t for t in window if t != lead and held.share(lead, t, k)]
            if len(holders[lead]) <= cap:  # no absorber itself: the same for every lead of its pattern
                partners[id(holders[lead])] = found
        edges.update((min(lead, target), max(lead, target)) for target in found)
    unsure = _augmentable(pairs, edges)
    if not unsure or len(edges) > SHARED_REMAINDER_MATCH_LIMIT:
        return pairs
    unsettled = sorted(edge for edge in edges if edge[0] in unsure)
    matched = _largest_matching(unsettled, [pair for pair in pairs if pair[0] in unsure])
    return sorted([pair for pair in pairs if pair[0] not in unsure] + matched)


def _largest_matching(edges: list[tuple[int, int]], greedy: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Of the largest matchings of the graph of `edges` (each (low, high)), the one keeping most of the `greedy`
    pairs (a matching among them): the least change."""
    ends = {end for edge in edges for end in edge}
    if len(greedy) == len(ends) // 2:
        # no matching pairs more than half the vertices, and no other matching that large is all greedy pairs:
        # these are the answer, without importing networkx (0.1 s, four times the planning of firewall2's
        # halves, whose 17 targets could all share and already make 8 greedy pairs)
        return sorted(greedy)
    import networkx  # only here: most inputs never get this far

    graph: networkx.Graph[int] = networkx.Graph()
    kept = set(greedy)
    graph.add_weighted_edges_from((*edge, 2 if edge in kept else 1) for edge in edges)
    return sorted((min(edge), max(edge)) for edge in networkx.max_weight_matching(graph, maxcardinality=True))


def _take_in(
    group: list[int], window: Iterable[int], skip: Container[int], k: int, held: _HeldSets, cap: int
) -> list[int]:
    """`group` with each target of `window` (but those in `skip`) that holds k of the users every target of the
    group holds, while the group's k x w call fits the cap."""
    common = reduce(and_, map(held.__getitem__, group))
    for target in window:
        if len(group) == cap // k:
            break
        if target in skip:
            continue
        if len(group) == 1:  # the lead's own users: a test the matching makes again, remembered
            if held.share(group[0], target, k):
                group.append(target)
                common &= held[target]
        elif (both := common & held[target]).bit_count() >= k:
            group.append(target)
            common = both
    return group


def _augmentable(pairs: list[tuple[int, int]], edges: Iterable[tuple[int, int]]) -> set[int]:
    """The targets of the connected parts of the graph where a larger matching than `pairs` may exist: those where
    an alternating walk (unpaired edge, paired edge, ..., unpaired edge) joins two unpaired targets, as any
    augmenting path is (Berge's lemma). In the rest, the pairs are a largest matching already."""
    adjacent: dict[int, list[int]] = defaultdict(list)
    for a, b in sorted(edges):
        adjacent[a].append(b)
        adjacent[b].append(a)
    mate = dict(chain(pairs, ((b, a) for a, b in pairs)))
    unsure: set[int] = set()
    seen: set[int] = set()
    for start in adjacent:
        if start in seen:
            continue
        part = [start]
        seen.add(start)
        for node in part:  # grows as it goes: the connected part of `start`
            fresh = [other for other in adjacent[node] if other not in seen]
            seen.update(fresh)
            part.extend(fresh)
        if _has_alternating_walk([node for node in part if node not in mate], adjacent, mate):
            unsure.update(part)
    return unsure


def _has_alternating_walk(loose: list[int], adjacent: Mapping[int, list[int]], mate: Mapping[int, int]) -> bool:
    """Whether an alternating walk leads from one of the unpaired targets `loose` to an unpaired target: a
    search over the targets reached by a paired edge, each left by its unpaired edges."""
    reached = set(loose)
    queue = list(loose)
    for node in queue:
        for other in adjacent[node]:
            if other == mate.get(node):
                continue
            if other not in mate:
                return True
            after = mate[other]
            if after not in reached:
                reached.add(after)
                queue.append(after)
    return False


def _shared_calls(holders: dict[int, tuple[int, ...]], groups: list[list[int]], cap: int) -> list[Rect]:
    """One call per group, its k users (the most any of its targets has left over) from those holding every
    target of it; then the rest of each target in whole calls (`_by_rows` of the columns)."""
    rects: list[Rect] = []
    for group in groups:
        k = max(len(holders[t]) % cap for t in group)
        common = frozenset(holders[group[0]]).intersection(*(holders[t] for t in group[1:]))
        sharing = sorted(common)[:k]
        rects.append((tuple(sharing), tuple(sorted(group))))
        taken = set(sharing).__contains__
        for target in group:
            holders[target] = tuple(filterfalse(taken, holders[target]))
    rest: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for target in sorted(holders):
        if holders[target]:
            rest[holders[target]].append(target)
    left = sorted((tuple(targets), users) for users, targets in rest.items())
    return rects + [(u, t) for t, u in _by_rows(left, cap)]


def _remainder_blocks(patterns: list[Pattern], calls: int, best: int, cap: int) -> list[Rect] | None:
    """Strategy 2 with the partial last calls of several patterns tiled together as one block; None if it cannot
    beat `best` or the patterns ending in a partial call are more than REMAINDER_BLOCK_LIMIT. Given the row
    patterns instead, the same for users (as (targets, users) rectangles, as `_shared_remainders` gives them).

    Patterns whose keys hold w common keys can give those w up to one block: their items x the w keys, tiled
    (`tile`), while each pattern tiles the rest of its keys on its own. A pattern whose last call holds r <= w
    keys then needs one call fewer, so a group of m such patterns saves m calls and spends the block's, which
    is fewer when the w keys pack several patterns' items per call: ten users whose last calls hold at most 59
    targets of one common set share six calls instead of ten (emea: 86 -> 84). A shared remainder
    (`_shared_remainders`) is a block of one call; a tiled block can hold more than 100 cells. Groups grow
    greedily from each pattern in turn (`_BlockSearch`); the group saving most is taken, and the search repeats
    over the patterns left.
    """
    partial = [index for index, (_, keys) in enumerate(patterns) if len(keys) % cap]
    if not 2 <= len(partial) <= REMAINDER_BLOCK_LIMIT:
        return None
    search = _BlockSearch(patterns, partial, cap)
    free = partial
    groups: list[tuple[int, list[int], int, int]] = []  # calls saved, members, block width, their common keys
    # each seed's group, and every pattern its growth took: a group whose growth took none of the patterns
    # taken since grows the same again (the patterns it passed over never won a step)
    grown = {seed: search.grown(seed, free) for seed in free}
    while len(free) >= 2:
        found = max((grown[seed][0] for seed in free), key=lambda group: group[0])
        if found[0] <= 0:
            break
        groups.append(found)
        taken = set(found[1])
        free = [index for index in free if index not in taken]
        for seed in free:
            if not taken.isdisjoint(grown[seed][1]):
                grown[seed] = search.grown(seed, free)
    if not groups or calls - sum(saved for saved, *_ in groups) >= best:
        return None
    rects: list[Rect] = []
    given: dict[int, frozenset[int]] = {}
    for _, members, width, common in groups:
        block = tuple(bitsets.members(common)[:width])
        sharing = sorted(chain.from_iterable(patterns[index][0] for index in members))
        rects.extend((keys, users) for users, keys in tile(sharing, block, cap))
        given.update(dict.fromkeys(members, frozenset(block)))
    rests = [
        (items, keys if index not in given else tuple(key for key in keys if key not in given[index]))
        for index, (items, keys) in enumerate(patterns)
    ]
    rects.extend((keys, items) for items, keys in _by_rows(rests, cap))
    return rects if len(rects) < best else None


class _BlockSearch:
    """Groups of patterns for `_remainder_blocks`, grown from one pattern at a time. A block is as wide as the
    largest last partial call of its members, so that each of them needs a call fewer."""

    def __init__(self, patterns: list[Pattern], partial: list[int], cap: int) -> None:
        self.cap = cap
        self.keys = {index: bitsets.mask(patterns[index][1]) for index in partial}
        self.height = {index: len(patterns[index][0]) for index in partial}
        self.length = {index: len(patterns[index][1]) for index in partial}
        self.remainder = {index: length % cap for index, length in self.length.items()}
        # per pattern, by block width (always below the cap: a block is as wide as some member's remainder)
        self._gains: dict[int, list[int | None]] = {index: [None] * cap for index in partial}
        self._tiles: dict[int, int] = {}  # `_tile_calls` of a block, by height * cap + width

    def gain(self, index: int, width: int) -> int:
        """Calls a pattern saves by giving `width` (< cap) of its keys to a block."""
        found = self._gains[index][width]
        if found is None:
            height, length = self.height[index], self.length[index]
            left = length - width
            found = _tile_calls(height, length, self.cap) - (_tile_calls(height, left, self.cap) if left else 0)
            self._gains[index][width] = found
        return found

    def grown(self, seed: int, free: list[int]) -> tuple[tuple[int, list[int], int, int], list[int]]:
        """The group grown from `seed` among `free` (calls saved, members, block width, common keys), and every
        pattern the growth took. Each step takes the pattern that saves most while saving no fewer than before
        (ties: the one leaving the most common keys), so a group can pass through steps that save nothing on its
        way to a wide block; the best group on the way is kept."""
        cap, keys, height_of, remainder, gain_of = self.cap, self.keys, self.height, self.remainder, self._gains
        tiles = self._tiles
        members, common = [seed], keys[seed]
        width = remainder[seed]
        height = height_of[seed]
        # calls the members save at each block width tried so far, kept up to date as members join
        gains = {width: self.gain(seed, width)}
        saved = gains[width] - _tile_calls(height, width, cap)
        best = (saved, members, width, common)
        candidates = [index for index in free if index != seed]
        while True:
            chosen: tuple[int, int, int, int, int] | None = None  # calls saved, room, pattern, width, keys
            fitting = []  # the common keys only shrink and the width only grows: a misfit stays one
            for index in candidates:
                both = common & keys[index]
                trial_width = width if width >= remainder[index] else remainder[index]
                room = both.bit_count()
                if room < trial_width:
                    continue
                fitting.append(index)
                if trial_width not in gains:
                    gains[trial_width] = sum(self.gain(member, trial_width) for member in members)
                alone = gain_of[index][trial_width]
                block = tiles.get(key := (height + height_of[index]) * cap + trial_width)
                if block is None:
                    block = tiles[key] = _tile_calls(height + height_of[index], trial_width, cap)
                trial_saved = gains[trial_width] + (self.gain(index, trial_width) if alone is None else alone) - block
                if trial_saved >= saved and (
                    chosen is None or trial_saved > chosen[0] or (trial_saved == chosen[0] and room > chosen[1])
                ):
                    chosen = (trial_saved, room, index, trial_width, both)
            if chosen is None:
                return best, members
            saved, room, index, width, common = chosen
            members = [*members, index]
            candidates = [other for other in fitting if other != index]
            height += height_of[index]
            # the common keys only shrink: wider blocks are out of reach from now on
            gains = {tried: gain + self.gain(index, tried) for tried, gain in gains.items() if tried <= room}
            if saved > best[0]:
                best = (saved, members, width, common)


class _HeldSets(dict[int, int]):
    """Each target's users as bits (an intersection is one `&`), made the first time it is asked for; and
    whether a target holds k users of a lead's, remembered per lead's users (the tuple its pattern shares)."""

    def __init__(self, holders: Mapping[int, tuple[int, ...]]) -> None:
        super().__init__()
        self.holders = holders
        self._shared: dict[tuple[int, int], bool] = {}

    def __missing__(self, target: int) -> int:
        found = self[target] = bitsets.mask(self.holders[target])
        return found

    def share(self, lead: int, target: int, k: int) -> bool:
        """Whether `target` holds at least k of `lead`'s users (k: the lead's remainder, so its users decide it)."""
        key = (id(self.holders[lead]), target)
        found = self._shared.get(key)
        if found is None:
            found = self._shared[key] = (self[lead] & self[target]).bit_count() >= k
        return found


# ---- set cover with overlap (small inputs) ------------------------------------------------------------


def set_cover(rows: Rows, cap: int = CAP, taken: Sequence[Rect] = ()) -> list[Rect] | None:
    """Capped rectangles inside `rows` covering all of it, overlapping where that saves a call; None when the
    rows have too many distinct patterns for the candidates to stay few. The cover starts from the rectangles
    `taken` (the essential ones), which may also touch cells outside `rows`."""
    rows = {u: r for u, r in rows.items() if r}
    masks = {u: bitsets.mask(row) for u, row in sorted(rows.items())}
    all_of_target = bitsets.transposed(masks)
    distinct_rows, distinct_columns = set(masks.values()), set(all_of_target.values())
    if max(len(distinct_rows), len(distinct_columns)) > SET_COVER_PATTERN_LIMIT:
        return None
    concepts = _concepts(masks, sorted(distinct_rows), sorted(distinct_columns))
    left = dict(masks)  # the cells each user still needs, as a bit mask over targets
    rects: list[Rect] = list(taken)
    for users, targets in taken:
        for user in users:
            if user in left:
                left[user] &= ~bitsets.mask(targets)
    left_of_target = {target: 0 for target in all_of_target} | bitsets.transposed(left)
    heap = [(-_first_score(concept, left, left_of_target, cap), index) for index, concept in enumerate(concepts)]
    heapq.heapify(heap)
    remaining = sum(bits.bit_count() for bits in left.values())
    while remaining:
        _, index = heapq.heappop(heap)
        gain, users, targets = _best_cut(concepts[index], left, left_of_target, cap)
        if gain == 0:
            continue
        if heap and gain < -heap[0][0]:  # gains only shrink: a stale bound is re-queued, not trusted
            heapq.heappush(heap, (-gain, index))
            continue
        rects.append((users, targets))
        taken_targets, taken_users = bitsets.mask(targets), bitsets.mask(users)
        for user in users:
            left[user] &= ~taken_targets
        for target in targets:
            left_of_target[target] &= ~taken_users
        remaining -= gain
        heapq.heappush(heap, (-gain, index))
    return _join_pairs(_drop_redundant(rects), masks, cap)


def _concepts(masks: Mapping[int, int], rows: list[int], columns: list[int]) -> list[Concept]:
    """Sets of targets with everyone who holds them all, in a stable order: from the distinct rows, the
    distinct columns, and each pair's intersection."""
    intents = set(rows) | {a & b for i, a in enumerate(rows) for b in rows[i + 1 :] if a & b}
    extents = set(columns) | {a & b for i, a in enumerate(columns) for b in columns[i + 1 :] if a & b}
    for extent in extents:
        intent = -1
        for user in bitsets.members(extent):
            intent &= masks[user]
        intents.add(intent)
    holders: dict[int, list[int]] = defaultdict(list)
    for user, mask in masks.items():
        holders[mask].append(user)
    concepts = []
    for intent in sorted(i for i in intents if i > 0):
        users = tuple(sorted(chain.from_iterable(holders[row] for row in rows if row & intent == intent)))
        concepts.append((users, tuple(bitsets.members(intent)), bitsets.mask(users), intent))
    return sorted(concepts)


def _best_cut(
    concept: Concept, left: Mapping[int, int], left_of_target: Mapping[int, int], cap: int
) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """The capped sub-rectangle of a concept covering the most uncovered cells: (cells, users, targets).

    Either the w targets most users still need, with the cap // w users needing most of them, or the same with
    users and targets swapped; w ranges over the strip widths. Ties go to targets first, then the narrower."""
    users, targets, users_mask, targets_mask = concept
    # per way round: whether by targets, the side ranked, the others needing some of it, all others
    sides: list[tuple[bool, list[tuple[int, int]], list[tuple[int, int]], tuple[int, ...]]] = []
    # -(the most cells it could cover), its place in the tie order, way round, width
    options: list[tuple[int, int, int, int]] = []
    for by_targets, side, others, need, need_other, other_mask, side_mask in (
        (True, targets, users, left_of_target, left, users_mask, targets_mask),
        (False, users, targets, left, left_of_target, targets_mask, users_mask),
    ):
        needing = [(bits, o) for o in others if (bits := need_other[o] & side_mask)]
        if not needing:
            continue
        ranked = sorted((-(need[x] & other_mask).bit_count(), x) for x in side)
        reach = list(accumulate(-count for count, _ in ranked))
        reach_across = list(accumulate(sorted((bits.bit_count() for bits, _ in needing), reverse=True)))
        longest = min(len(ranked), cap)
        for width in sorted({*_strip_widths(longest, cap), longest}):
            per_call = cap // width
            most = min(reach[width - 1], width * per_call, reach_across[min(per_call, len(needing)) - 1])
            if most:
                options.append((-most, len(options), len(sides), width))
        sides.append((by_targets, ranked, needing, others))
    # the likeliest first, so that the rest can be skipped on their bounds alone
    options.sort()
    best: tuple[int, int, int, int, list[tuple[int, int]]] = (0, len(options), 0, 0, [])
    for negative_most, order, way, width in options:
        if -negative_most < best[0]:
            break
        if -negative_most == best[0] and order > best[1]:
            continue
        _, ranked, needing, _ = sides[way]
        chosen = bitsets.mask(x for _, x in ranked[:width])
        scored = heapq.nsmallest(cap // width, ((-(bits & chosen).bit_count(), o) for bits, o in needing))
        gain = -sum(score for score, _ in scored)
        if gain > best[0] or (gain == best[0] and order < best[1]):
            best = (gain, order, way, width, scored)
    gain, _, way, width, scored = best
    if not gain:
        return 0, (), ()
    by_targets, ranked, _, others = sides[way]
    picked = tuple(sorted(x for _, x in ranked[:width]))
    across = _fill(scored, others, cap // width)
    return (gain, across, picked) if by_targets else (gain, picked, across)


def _first_score(concept: Concept, left: Mapping[int, int], left_of_target: Mapping[int, int], cap: int) -> int:
    """`_best_cut`'s cells for a concept before set cover takes anything. Where the essential batches took none
    of its cells that is its largest capped area, and its cut is found only if it comes to be taken: dense inputs
    have thousands of concepts, few of them ever taken (a dense half of 5,414 cells and 156 distinct rows:
    13,572 concepts, 57 batches)."""
    users, targets, _, intent = concept
    if all(left[user] & intent == intent for user in users):
        return _whole_cut_cells(len(users), len(targets), cap)
    return _best_cut(concept, left, left_of_target, cap)[0]


@lru_cache(maxsize=4096)
def _whole_cut_cells(height: int, width: int, cap: int) -> int:
    """The largest capped area within `height` x `width`: `_best_cut`'s cells where none is covered yet (its
    strip widths, tried either way round, include the best width)."""
    return max(strip * min(cap // strip, height) for strip in range(1, min(width, cap) + 1))


def _fill(scored: list[tuple[int, int]], others: tuple[int, ...], size: int) -> tuple[int, ...]:
    """The `size` others with the best scores (negated, so smallest first), ties and a shortfall going to the
    lowest-numbered: those that scored, then any others (all score nothing), in increasing order."""
    picked = {o for score, o in scored if score < 0}
    for o in others:
        if len(picked) == size:
            break
        picked.add(o)
    return tuple(sorted(picked))


def _drop_redundant(rects: list[Rect]) -> list[Rect]:
    """Drop rectangles whose every cell another one covers, smallest first."""
    covered = Counter(cell for rect in rects for cell in _cells(rect))
    kept = []
    for rect in sorted(rects, key=lambda r: (len(r[0]) * len(r[1]), r)):
        if all(covered[cell] > 1 for cell in _cells(rect)):
            covered.subtract(_cells(rect))
        else:
            kept.append(rect)
    return sorted(kept)


def _join_pairs(rects: list[Rect], masks: Mapping[int, int], cap: int) -> list[Rect]:
    """Replace two rectangles by one wherever the cells only they cover fit in one permitted rectangle."""
    joined = True
    while joined:
        joined = False
        covered = Counter(cell for rect in rects for cell in _cells(rect))
        cells = [set(_cells(rect)) for rect in rects]
        alone = [{cell for cell in own if covered[cell] == 1} for own in cells]
        # cheap necessary tests first (a pass looks at every pair): each one's own cells fit the cap together,
        # and the users of each one's own cells hold the targets of the other's
        user_sides = [{u for u, _ in own} for own in alone]
        target_sides = [bitsets.mask(t for _, t in own) for own in alone]
        held_by_all = [reduce(and_, (masks[u] for u in side), -1) for side in user_sides]
        for i, j in combinations(range(len(rects)), 2):
            if target_sides[j] & ~held_by_all[i] or target_sides[i] & ~held_by_all[j]:
                continue
            if (
                max(len(user_sides[i]), len(user_sides[j]))
                * max(target_sides[i].bit_count(), target_sides[j].bit_count())
                > cap
            ):
                continue
            only = alone[i] | alone[j]
            # the cells only this pair covers include each one's own: a cheap first test of the one rectangle
            if len({u for u, _ in only}) * len({t for _, t in only}) > cap:
                continue
            only |= {cell for cell in cells[i] & cells[j] if covered[cell] == 2}
            users = sorted({u for u, _ in only})
            targets = sorted({t for _, t in only})
            if len(users) * len(targets) <= cap and all(masks[u] >> t & 1 for u in users for t in targets):
                rest = [r for k, r in enumerate(rects) if k not in (i, j)]
                rects = sorted(rest + ([(tuple(users), tuple(targets))] if only else []))
                joined = True
                break
    return rects


def _cells(rect: Rect) -> list[tuple[int, int]]:
    return [(u, t) for u in rect[0] for t in rect[1]]


# ---- cover with don't-cares ---------------------------------------------------------------------------


def _cover_blocks(rows: Rows, allowed: Rows, cap: int) -> list[Rect]:
    frequency: dict[int, int] = defaultdict(int)
    for row in rows.values():
        for target in row:
            frequency[target] += 1
    active = sorted(frequency, key=lambda t: (-frequency[t], t))
    best: list[Rect] | None = None
    for size in BLOCK_SIZES:
        if size > len(active) or size > cap:
            break
        rects = _blocks_of(rows, allowed, active, size, cap)
        if best is None or len(rects) < len(best):
            best = rects
    return best or []


def _blocks_of(rows: Rows, allowed: Rows, active: list[int], size: int, cap: int) -> list[Rect]:
    """Cut the active targets into blocks of `size`; per block, widen whoever may be, if that is cheaper."""
    block_of = {target: index // size for index, target in enumerate(active)}
    blocks = [tuple(sorted(active[i : i + size])) for i in range(0, len(active), size)]
    in_block: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for user in sorted(rows):
        for target in rows[user]:
            in_block[block_of[target]][user].add(target)
    per_call = cap // size
    rects: list[Rect] = []
    for index in sorted(in_block):
        cells = in_block[index]
        block = blocks[index]
        wide = [u for u in sorted(cells) if allowed.get(u, frozenset()).issuperset(block)]
        widened_users = set(wide)
        narrow = {u: frozenset(c) for u, c in cells.items() if u not in widened_users}
        widened = [(tuple(wide[i : i + per_call]), block) for i in range(0, len(wide), per_call)]
        widened += cover_exact(narrow, cap)
        exact = cover_exact({u: frozenset(c) for u, c in cells.items()}, cap)
        rects.extend(widened if len(widened) < len(exact) else exact)
    return rects
