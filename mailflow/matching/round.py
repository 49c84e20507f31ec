"""A round: `match` takes the stages in turn, and smaller questions on the same score.

`match` keeps the pairs made by hand, defers those beyond the country cap, builds the
graph (complete, or candidates on large rounds), solves it, grows one group of three
for the odd one out and says why anyone is left alone. `pair_scores`, `best_partner`,
`allowed` and `broken_rules` answer with the same score and the same hard rules.

It never reads the store, the clock or a file: applicants and weights are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from mailflow.matching.candidates import _candidates, _Graph, _joined
from mailflow.matching.coverage import coverage, partners_allowed
from mailflow.matching.model import (
    NOT_ALLOWED,
    Applicant,
    Finding,
    Matching,
    Pair,
    Progress,
    Weights,
)
from mailflow.matching.population import _any_common, _Population
from mailflow.matching.solve import _Matcher
from mailflow.read.countries import country_name

_TRIO_TRIED = 64  # of those alone, the most compared with every pair for a group of three


def _defer_by_country(people: Sequence[Applicant], cap: float) -> set[int]:
    """Indexes beyond the cap for their country, the latest (highest id) first: the real
    program kept one country to a fifth of a round and moved the rest to the next."""
    counts: dict[str, int] = {}
    for person in people:
        counts[person.country] = counts.get(person.country, 0) + 1
    kept = dict(counts)
    while True:  # shrink until every country fits within the share of what remains
        total = sum(kept.values())
        limit = max(1, math.floor(cap * total))
        fitted = {c: min(kept[c], limit) for c in kept}
        if fitted == kept:
            break
        kept = fitted
    deferred, seen = set(), dict.fromkeys(counts, 0)
    for i, person in enumerate(people):
        seen[person.country] += 1
        if seen[person.country] > kept[person.country]:
            deferred.add(i)
    return deferred


def _why_alone(
    population: _Population, alone: list[int], among: np.ndarray, exact: bool
) -> list[Finding]:
    """Why each of those left alone waits. When the pairs reach the most possible, those
    whom the rules allow a partner `among` the people matched wait because no such
    partner was free (or they are the odd one out); when the pairs fall short, those
    people could have been paired."""
    indexes = np.array(alone, dtype=np.int64)
    allowed = partners_allowed(population, indexes, among)
    found = []
    for i, count in zip(alone, allowed.tolist(), strict=True):
        if count:
            kind = "could-pair" if not exact else "odd-one-out" if len(alone) == 1 else "none-free"
            found.append(Finding(kind))
            continue
        abroad = population.country != population.country[i]
        speaks = _any_common(population.languages[[i]], population.languages)[0]
        if (abroad & speaks).any():
            found.append(Finding("all-former"))
        else:
            found.append(Finding("no-language", tuple(sorted(population.people[i].languages))))
    return found


def match(
    applicants: Sequence[Applicant],
    weights: Weights,
    *,
    former: frozenset[frozenset[int]] = frozenset(),
    fixed: Iterable[Sequence[int]] = (),
    country_cap: float | None = None,
    allow_trio: bool | None = None,
    progress: Progress | None = None,
    dense_up_to: int | None = None,
) -> Matching:
    """Pair everyone who can be paired, as well as can be proven, under the hard rules.

    `fixed` pairs (made by hand) are kept as given; `country_cap` defers applicants beyond
    that share of the round from one country; the odd one out joins a group of three when
    `allow_trio` (default: the weights' group_of_three) and a fitting pair exists.
    """
    # In id order, so that the same round gives the same pairs however it was listed.
    people = sorted(applicants, key=lambda person: person.id)
    if len({p.id for p in people}) != len(people):
        raise ValueError("an applicant appears twice")
    population = _Population(people, weights, former)
    country_cap = weights.country_cap if country_cap is None else country_cap
    allow_trio = weights.group_of_three if allow_trio is None else allow_trio
    dense_up_to = weights.dense_up_to if dense_up_to is None else dense_up_to

    pairs: list[Pair] = []
    busy = np.zeros(population.n, dtype=bool)
    fixed_total = 0
    for members in fixed:
        try:
            indexes = [population.index[m] for m in members]
        except KeyError as missing:
            raise ValueError(
                f"a pair made by hand names {missing.args[0]}, not an applicant"
            ) from None
        if len(set(indexes)) != len(indexes) or busy[indexes].any() or len(indexes) < 2:
            raise ValueError(f"a pair made by hand overlaps another or itself: {tuple(members)}")
        busy[indexes] = True
        score = _group_score(population, indexes, hard=False)
        fixed_total += score
        pairs.append(_pair(population, indexes, score, by_hand=True))

    by_hand = len(pairs)
    deferred_idx = set()
    if country_cap:
        free = [i for i in range(population.n) if not busy[i]]
        beyond = _defer_by_country([people[i] for i in free], country_cap)
        deferred_idx = {free[k] for k in beyond}
        busy[list(deferred_idx)] = True
    deferred = tuple(
        (people[i].id, Finding("country-cap", (country_cap, country_name(people[i].country))))
        for i in sorted(deferred_idx)
    )

    nodes = np.flatnonzero(~busy)
    covered = coverage(population, nodes)
    if len(nodes) <= dense_up_to:
        if progress:
            progress("scoring pairs", 0, 1)
        dense = np.full((population.n, population.n), NOT_ALLOWED, dtype=np.int32)
        dense[np.ix_(nodes, nodes)] = population.score_block(nodes, nodes)
        if progress:
            progress("scoring pairs", 1, 1)
        graph, described = _Graph.dense(dense), "complete"
    else:
        dense = None
        graph = _candidates(population, progress)
        if busy.any():
            graph = _Graph(population.n, *graph.subgraph_edges(~busy))
        reach = covered.pairs
        graph = _joined(graph, reach, population.score_pairs(reach[:, 0], reach[:, 1]))
        described = f"sparse top-{weights.candidates}"
    matcher = _Matcher(graph, dense, progress)
    matcher.solve(nodes, covered.pairs)
    possible = covered.possible
    if dense is not None and np.count_nonzero(matcher.mate[nodes] >= 0) < 2 * possible:
        # Every allowed pair is in the graph, so searching it to the end finds the most
        # pairs there are: the classes' bound overlooked former partners.
        matcher.augment(nodes, bounded=False)
        possible = int(np.count_nonzero(matcher.mate[nodes] >= 0)) // 2
    bound = matcher.bound(nodes)

    firsts = nodes[(matcher.mate[nodes] > nodes)]
    seconds = matcher.mate[firsts]
    scores = matcher.weight(firsts, seconds).astype(np.int64)
    total = fixed_total + int(scores.sum())
    matched = [[a, b] for a, b in zip(firsts.tolist(), seconds.tolist(), strict=True)]
    alone = [i for i in nodes.tolist() if matcher.mate[i] < 0]
    grown = _group_of_three(population, alone, matched) if allow_trio and alone else None
    if grown is not None:
        alone.remove(grown[0])
    for g, group in enumerate(matched):
        score = _group_score(population, group) if grown and g == grown[1] else int(scores[g])
        pairs.append(_pair(population, group, score))
    exact = len(matched) >= possible
    unmatched = tuple(
        (people[i].id, why)
        for i, why in zip(alone, _why_alone(population, alone, nodes, exact), strict=True)
    )
    pairs.sort(key=lambda pair: min(pair.members))
    return Matching(
        pairs=tuple(pairs),
        unmatched=unmatched,
        deferred=deferred,
        total=total,
        upper_bound=bound + fixed_total,
        candidate_graph=described,
        possible=possible + by_hand,
        possible_exact=exact,
    )


def _group_of_three(
    population: _Population, alone: list[int], matched: list[list[int]]
) -> tuple[int, int] | None:
    """Add one person left alone to the pair that suits them best, if all three share a
    language and live in three countries. Returns (person, index of the group).

    Each one alone is compared with every pair, so when many are alone (a round where
    one country brings most applicants) only those who have waited longest are tried."""
    if not matched:
        return None
    x, y = np.array(matched).T
    everyone = np.arange(population.n)
    best, choice = -1, None
    waited_longest = sorted(alone, key=lambda i: population.people[i].id)[:_TRIO_TRIED]
    for u in waited_longest:
        fits = population.allowed_block(np.array([u]), everyone)[0]
        together = np.zeros(len(x), dtype=bool)
        languages = population.languages
        for word in range(languages.shape[1]):
            together |= (languages[u, word] & languages[x, word] & languages[y, word]) != 0
        candidates = np.flatnonzero(fits[x] & fits[y] & together)
        if not len(candidates):
            continue
        one = np.array([u])
        gain = (
            population.score_block(one, x[candidates])[0]
            + population.score_block(one, y[candidates])[0]
        )
        k = int(np.argmax(gain))
        if gain[k] > best:
            best, choice = int(gain[k]), (u, int(candidates[k]))
    if choice is None:
        return None
    u, g = choice
    matched[g].append(u)
    return choice


def _group_score(population: _Population, members: Sequence[int], *, hard: bool = True) -> int:
    """A pair's score; for three, the mean of its three pairs, what each member gets."""
    scores = [
        population.score(a, b, hard=hard) for i, a in enumerate(members) for b in members[i + 1 :]
    ]
    return round(sum(scores) / len(scores))


def _pair(
    population: _Population, members: Sequence[int], score: int, *, by_hand: bool = False
) -> Pair:
    ids = tuple(sorted(population.people[m].id for m in members))
    order = sorted(members, key=lambda m: population.people[m].id)
    return Pair(ids, score, population.reasons(order), by_hand)


def pair_scores(
    applicants: Sequence[Applicant],
    weights: Weights,
    *,
    former: frozenset[frozenset[int]] = frozenset(),
) -> dict[tuple[int, int], int]:
    """Every allowed pair (smaller id first) with the score `match` gives it."""
    population = _Population(list(applicants), weights, former)
    everyone = np.arange(population.n)
    scores = population.score_block(everyone, everyone)
    ids = [p.id for p in population.people]
    rows, cols = np.nonzero(np.triu(scores >= 0, k=1))
    return {
        (min(ids[a], ids[b]), max(ids[a], ids[b])): int(scores[a, b])
        for a, b in zip(rows.tolist(), cols.tolist(), strict=True)
    }


def best_partner(
    seeker: Applicant,
    candidates: Sequence[Applicant],
    weights: Weights,
    *,
    former: frozenset[frozenset[int]] = frozenset(),
) -> Pair | None:
    """The seeker's pair with the best allowed partner among `candidates`, scored and
    explained as `match` would (a rematch in mid-term); None when none is allowed. Ties go
    to the smallest id, the one who has waited longest."""
    people = [seeker, *sorted(candidates, key=lambda person: person.id)]
    if len(people) < 2:
        return None
    population = _Population(people, weights, former)
    scores = population.score_block(np.array([0]), np.arange(1, population.n))[0]
    best = int(np.argmax(scores))
    if scores[best] < 0:
        return None
    return _pair(population, [0, best + 1], int(scores[best]))


def allowed(a: Applicant, b: Applicant, former: frozenset[frozenset[int]] = frozenset()) -> bool:
    """The hard constraints: different countries, a language in common, never partners."""
    return a.id != b.id and not broken_rules(a, b, former)


def broken_rules(
    a: Applicant, b: Applicant, former: frozenset[frozenset[int]] = frozenset()
) -> list[Finding]:
    """The hard constraints a pair breaks (a pair by hand), for the coordinator to read."""
    broken = []
    if a.country == b.country:
        broken.append(Finding("same-country"))
    if not {x.casefold() for x in a.languages} & {x.casefold() for x in b.languages}:
        broken.append(Finding("no-language"))
    if frozenset((a.id, b.id)) in former:
        broken.append(Finding("former"))
    return broken
