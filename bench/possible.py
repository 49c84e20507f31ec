"""The most pairs the hard rules allow in a round, found without mailflow: the bench's own
measure of coverage, so that a solver is never judged by a figure of its own making.

The rules are three: another country, a language in common (compared without case), never
partners before. For the first two, people of one country who speak the same languages are
interchangeable, so a round of 100,000 people is a few hundred or thousand classes, and two
figures are found over them:

- a bound no matching exceeds: the largest fractional matching of the classes, a maximum
  flow on the graph's bipartite double cover (each class once as giver, once as taker)
  halved, rounded down in each connected part of the class graph. It ignores former
  partners, which can only take pairs away.
- a matching that exists: pairs of classes from the flow's whole part, a greedy pass and
  alternating paths over what is left; then pairs of real people for them, former partners
  avoided and augmenting paths over people where a former partnership was in the way; each
  pair checked against the three rules.
When the two meet, the figure is exact; when they do not, both are given (in rounds of a
few dozen, many of whom were partners before, the bound can be above the true figure).

It must never import mailflow: the rules are restated here, in `can_pair`.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components, maximum_flow


class Person(Protocol):
    id: int
    country: str
    languages: frozenset[str]


def can_pair(a: Person, b: Person, former: frozenset[frozenset[int]] = frozenset()) -> bool:
    """The hard rules, restated: two people, two countries, a language, never before."""
    return (
        a.id != b.id
        and a.country != b.country
        and bool({x.casefold() for x in a.languages} & {x.casefold() for x in b.languages})
        and frozenset((a.id, b.id)) not in former
    )


@dataclass(frozen=True)
class Possible:
    pairs: int  # a matching of this many pairs exists: it was built and checked
    bound: int  # no matching has more pairs
    classes: int  # (country, languages) classes the round falls into
    matching: tuple[tuple[int, int], ...] = ()  # the pairs built, as ids

    @property
    def exact(self) -> bool:
        return self.pairs == self.bound

    def __str__(self) -> str:
        return f"{self.pairs}" if self.exact else f"{self.pairs}-{self.bound}"


def _classes(people: Sequence[Person]) -> tuple[list[list[Person]], np.ndarray, np.ndarray]:
    """(members of each class, each class's country index, class x language matrix)."""
    members: dict[tuple[str, frozenset[str]], list[Person]] = defaultdict(list)
    for person in sorted(people, key=lambda p: p.id):
        key = (person.country, frozenset(x.casefold() for x in person.languages))
        members[key].append(person)
    keys = sorted(members, key=lambda key: (key[0], sorted(key[1])))
    countries = {country: i for i, country in enumerate(sorted({k[0] for k in keys}))}
    languages = {lang: i for i, lang in enumerate(sorted({x for k in keys for x in k[1]}))}
    speaks = np.zeros((len(keys), max(1, len(languages))), dtype=np.float32)
    for c, (_, spoken) in enumerate(keys):
        speaks[c, [languages[x] for x in spoken]] = 1
    country = np.array([countries[k[0]] for k in keys], dtype=np.int64)
    return [members[key] for key in keys], country, speaks


def _compatible(country: np.ndarray, speaks: np.ndarray) -> np.ndarray:
    """Class x class: another country and a language in common."""
    return ((speaks @ speaks.T) > 0) & (country[:, None] != country[None, :])


def _half_flow(size: np.ndarray, fits: np.ndarray) -> np.ndarray:
    """Class x class, twice the largest fractional matching: y[c, d] + y[d, c] pairs
    between c and d (a maximum flow on the double cover, so every value is whole)."""
    k = len(size)
    source, sink = 2 * k, 2 * k + 1
    rows, cols = np.nonzero(fits)
    caps = np.minimum(size[rows], size[cols])
    tail = np.concatenate([np.full(k, source), rows, k + np.arange(k)])
    head = np.concatenate([np.arange(k), k + cols, np.full(k, sink)])
    capacity = np.concatenate([size, caps, size]).astype(np.int32)
    graph = csr_array((capacity, (tail, head)), shape=(2 * k + 2, 2 * k + 2))
    flow = maximum_flow(graph, source, sink).flow.tocsr()
    given = flow[:k, k : 2 * k].toarray()
    return np.maximum(given, 0).astype(np.int64)


def most_pairs(
    people: Sequence[Person], former: Iterable[frozenset[int]] = frozenset()
) -> Possible:
    """The most pairs any matching of the round can have under the hard rules."""
    former = frozenset(former)
    members, country, speaks = _classes(people)
    k = len(members)
    if k < 2:
        return Possible(0, 0, k)
    size = np.array([len(m) for m in members], dtype=np.int64)
    fits = _compatible(country, speaks)
    given = _half_flow(size, fits)
    twice = given + given.T  # twice y[c, d], symmetric

    # The bound: the fractional optimum of each connected part, rounded down.
    _, part = connected_components(csr_array(fits), directed=False)
    per_class = twice.sum(axis=1)  # twice the fractional pairs each class is in
    bound = sum(int(per_class[part == p].sum()) // 4 for p in np.unique(part))

    # A matching: the whole part of the fractional one, then greedily what is left, then
    # alternating paths between classes while short of the bound.
    whole = np.triu(twice // 2, k=1)
    left = size - whole.sum(axis=0) - whole.sum(axis=1)
    while True:
        open_ = np.flatnonzero(left > 0)
        grown = False
        for c in open_[np.argsort(-left[open_], kind="stable")]:
            if left[c] <= 0:
                continue
            others = np.flatnonzero(fits[c] & (left > 0))
            if not len(others):
                continue
            d = int(others[np.argmax(left[others])])
            take = min(left[c], left[d])
            if c == d or take <= 0:
                continue
            whole[min(c, d), max(c, d)] += take
            left[c] -= take
            left[d] -= take
            grown = True
        if not grown:
            break
    while int(whole.sum()) < bound and _augment(whole, left, fits):
        pass
    pairs = _people(members, whole, former, fits, bound)
    return Possible(len(pairs), bound, k, tuple(pairs))


def _augment(whole: np.ndarray, left: np.ndarray, fits: np.ndarray) -> bool:
    """One more pair of classes by an alternating path: from a class with people left, add
    a pair, take one away, add one, ..., and end at a class with people left. Breadth
    first over (class, side) without Edmonds' blossoms, so it may miss a path that exists;
    the bound then stays apart from the matching and both are reported."""
    pairs = whole + whole.T
    for start in np.flatnonzero(left > 0):
        # even[c]: how the path reached c with one pair too few there (c may add one);
        # odd[c]: how it reached c with one pair too many (c must give one back).
        even = {int(start): None}
        odd: dict[int, int] = {}
        frontier = [int(start)]
        while frontier:
            reached = []
            for c in frontier:
                ends = np.flatnonzero(fits[c] & (left > 0))
                ends = [e for e in ends.tolist() if e != start or left[start] >= 2]
                if ends and _apply(whole, left, even, odd, c, ends[0], int(start)):
                    return True
                for x in np.flatnonzero(fits[c]).tolist():
                    if x in odd:
                        continue
                    odd[x] = c
                    for y in np.flatnonzero(pairs[x] > 0).tolist():
                        if y not in even:
                            even[y] = x
                            reached.append(y)
            frontier = reached
    return False


def _apply(whole, left, even, odd, last: int, end: int, start: int) -> bool:
    """Add and take away the pairs of classes along the path `_augment` found; False, and
    nothing changed, when the path takes away more pairs of two classes than there are."""
    change: dict[tuple[int, int], int] = defaultdict(int)
    change[min(last, end), max(last, end)] += 1
    c = last
    while c != start:
        x = even[c]
        change[min(x, c), max(x, c)] -= 1
        change[min(odd[x], x), max(odd[x], x)] += 1
        c = odd[x]
    if any(whole[edge] + step < 0 for edge, step in change.items()):
        return False
    for edge, step in change.items():
        whole[edge] += step
    left[start] -= 1
    left[end] -= 1
    return True


def _people(
    members: list[list[Person]],
    whole: np.ndarray,
    former: frozenset[frozenset[int]],
    fits: np.ndarray,
    bound: int,
) -> list[tuple[int, int]]:
    """Real pairs for the class counts, former partners avoided, each pair checked. Those a
    former partnership stopped are paired among themselves where the rules allow, then by
    re-pairing (`_repair`) while short of the bound."""
    partners: dict[int, set[int]] = defaultdict(set)
    for pair in former:
        a, b = tuple(pair)
        partners[a].add(b)
        partners[b].add(a)
    pools = [deque(m) for m in members]
    pairs: list[tuple[Person, Person]] = []
    stuck: list[Person] = []
    for c, d in zip(*np.nonzero(whole), strict=True):
        for _ in range(int(whole[c, d])):
            a = pools[c].popleft()
            pool = pools[d]
            at = next((j for j, b in enumerate(pool) if b.id not in partners[a.id]), None)
            if at is None:
                stuck.append(a)
                continue
            pairs.append((a, pool[at]))
            del pool[at]
    # The classes' leftovers cannot pair among themselves (the greedy pass saw to that),
    # only with someone a former partnership stopped.
    alone = [person for pool in pools for person in pool]
    while stuck:
        a = stuck.pop()
        for others in (stuck, alone):
            at = next((j for j, b in enumerate(others) if can_pair(a, b, former)), None)
            if at is not None:
                pairs.append((a, others.pop(at)))
                break
        else:
            alone.append(a)
    klass = {person.id: c for c, m in enumerate(members) for person in m}
    if len(pairs) < bound:
        pairs = _repair(pairs, alone, members, klass, fits, partners, bound)
    seen = [p.id for pair in pairs for p in pair]
    assert len(seen) == len(set(seen)), "someone paired twice"
    assert all(can_pair(a, b, former) for a, b in pairs), "a pair breaks a rule"
    return [(a.id, b.id) for a, b in pairs]


def _repair(
    pairs: list[tuple[Person, Person]],
    alone: list[Person],
    members: list[list[Person]],
    klass: dict[int, int],
    fits: np.ndarray,
    partners: dict[int, set[int]],
    bound: int,
) -> list[tuple[Person, Person]]:
    """More pairs by augmenting paths over people: from someone alone, to anyone they may
    pair with, to that one's partner, and on, until someone else alone is reached; then
    everyone on the path changes partner and two more people are paired. Breadth first,
    each person reached once (a class's people are taken in one sweep, so a search costs
    about the round's size), without Edmonds' blossoms, and within a budget of steps: it
    may stop short of the bound, and both figures are then reported."""
    mate: dict[int, Person] = {}
    for a, b in pairs:
        mate[a.id], mate[b.id] = b, a
    free = {person.id for person in alone}
    steps, budget = 0, 20 * len(klass) + 1_000_000
    made = len(pairs)
    for root in alone:
        if made >= bound or steps > budget:
            break
        if root.id not in free:
            continue
        waiting = [list(m) for m in members]  # not yet reached, by class
        came_from: dict[int, Person] = {}  # reached person -> the one before, on the path
        queue = deque([root])
        reached = {root.id}
        end = None
        while queue and end is None and steps <= budget:
            u = queue.popleft()
            for c in np.flatnonzero(fits[klass[u.id]]).tolist():
                kept = []
                for x in waiting[c]:
                    steps += 1
                    if x.id in reached:
                        continue
                    if x.id in partners[u.id]:
                        kept.append(x)
                        continue
                    reached.add(x.id)
                    came_from[x.id] = u
                    if x.id in free:
                        end = x
                        break
                    y = mate[x.id]
                    if y.id not in reached:
                        reached.add(y.id)
                        queue.append(y)
                if end is not None:
                    break
                waiting[c] = kept
        if end is None:
            continue
        x = end
        while True:  # along the path back: x takes the one before it as partner
            u = came_from[x.id]
            before = mate.get(u.id)
            mate[u.id], mate[x.id] = x, u
            if u is root:
                break
            x = before
        free -= {root.id, end.id}
        made += 1
    by_id = {person.id: person for m in members for person in m}
    return [(by_id[a], b) for a, b in mate.items() if a < b.id]
