"""How many pairs the hard rules allow over the whole round, and pairs of people that
reach it, without scoring a pair.

The hard rules (another country, a language in common) cannot tell apart two people of
the same country who speak the same languages: they form one class, and a round of
100,000 has a few hundred classes. In the double cover of the classes (each class once
as a giver and once as a taker, an arc wherever the rules allow a pair) the maximum flow
is twice the best fractional matching of the people, so half of it, rounded down in
each connected group of classes, is at least as many pairs as any matching has: the
pairs possible. Never partners before is left out of the classes; the figure stays an
upper bound, and is exact whenever a matching reaches it.

The flow also says how many of each class to pair with each other class: `reach` turns
it into pairs of people, skipping former partners, which the solver then uses to pair
whoever its own search left alone.

It never reads the store and never scores a pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, maximum_flow

from mailflow.matching.population import _any_common, _Population

_BLOCK = 2048  # classes compared at once when finding which may pair


@dataclass(frozen=True)
class Coverage:
    possible: int  # no matching of these people has more pairs
    pairs: np.ndarray  # (k, 2) person indexes, pairs the rules allow; k is near `possible`


def coverage(population: _Population, nodes: np.ndarray) -> Coverage:
    """The pairs possible among `nodes` (person indexes), and pairs of people near it."""
    none = np.zeros((0, 2), dtype=np.int64)
    if len(nodes) < 2:
        return Coverage(0, none)
    nodes = np.sort(nodes)
    keys = np.column_stack(
        [population.country[nodes].astype(np.int64), population.languages[nodes].view(np.int64)]
    )
    _, first, klass = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    klass = klass.reshape(-1)
    sizes = np.bincount(klass).astype(np.int64)
    k = len(sizes)
    givers, takers = _allowed_classes(population, nodes[first])
    if not len(givers):
        return Coverage(0, none)

    # Source -> giver (its size) -> taker (the smaller size) -> sink (its size).
    source, sink = 2 * k, 2 * k + 1
    rows = np.concatenate([np.full(k, source), givers, k + np.arange(k)])
    cols = np.concatenate([np.arange(k), k + takers, np.full(k, sink)])
    capacity = np.concatenate([sizes, np.minimum(sizes[givers], sizes[takers]), sizes])
    network = csr_matrix((capacity.astype(np.int32), (rows, cols)), shape=(2 * k + 2, 2 * k + 2))
    flow = maximum_flow(network, source, sink).flow.tocsr()
    arcs = flow[:k, k : 2 * k].tocoo()
    positive = arcs.data > 0
    giver, taker, units = arcs.row[positive], arcs.col[positive], arcs.data[positive]

    # Half the flow within each connected group of classes, rounded down.
    groups, group = connected_components(
        csr_matrix((np.ones(len(givers)), (givers, takers)), shape=(k, k)), directed=False
    )
    within = np.bincount(group[giver], weights=units, minlength=groups).astype(np.int64)
    possible = int((within // 2).sum())

    order = np.argsort(klass, kind="stable")
    members = np.split(nodes[order], np.cumsum(sizes)[:-1])
    pairs = _people(population, members, giver, taker, units.astype(np.int64))
    return Coverage(possible, pairs)


def _allowed_classes(population: _Population, heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair of classes (by one member each) whose people may be paired."""
    givers, takers = [], []
    country, languages = population.country[heads], population.languages[heads]
    for start in range(0, len(heads), _BLOCK):
        block = slice(start, start + _BLOCK)
        ok = country[block, None] != country[None, :]
        ok &= _any_common(languages[block], languages)
        g, t = np.nonzero(ok)
        givers.append(g + start)
        takers.append(t)
    return np.concatenate(givers), np.concatenate(takers)


def _people(
    population: _Population,
    members: list[np.ndarray],
    giver: np.ndarray,
    taker: np.ndarray,
    units: np.ndarray,
) -> np.ndarray:
    """Pairs of people from the flow between classes.

    Each unit of flow is an arc from one member of the giving class to one of the taking
    class; every person gives at most one and takes at most one, so the arcs form paths
    and cycles of people. Arcs both ways between two classes pair the same two people
    directly; the rest are split as the solver splits its own cycles: every other arc.
    """
    used = [0] * len(members)
    pairs: list[tuple[int, int]] = []
    flow = dict(zip(zip(giver.tolist(), taker.tolist(), strict=True), units.tolist(), strict=True))
    for (g, t), count in list(flow.items()):
        if g < t and (back := flow.get((t, g), 0)):
            both = min(count, back)
            a = members[g][used[g] : used[g] + both]
            b = members[t][used[t] : used[t] + both]
            used[g] += both
            used[t] += both
            pairs += zip(a.tolist(), b.tolist(), strict=True)
            flow[(g, t)] -= both
            flow[(t, g)] -= both
    # The one-way arcs: each class's remaining members give in order and take in order.
    gives = list(used)
    takes = list(used)
    successor: dict[int, int] = {}
    for (g, t), count in flow.items():
        for _ in range(count):
            a, b = members[g][gives[g]], members[t][takes[t]]
            gives[g] += 1
            takes[t] += 1
            successor[int(a)] = int(b)
    predecessor = set(successor.values())
    seen: set[int] = set()
    # Paths from their first person, then what is left: cycles, from anyone on them.
    starts = [a for a in successor if a not in predecessor] + list(successor)
    for start in starts:
        if start in seen:
            continue
        chain = [start]
        seen.add(start)
        while (after := successor.get(chain[-1])) is not None and after not in seen:
            chain.append(after)
            seen.add(after)
        pairs += zip(chain[0::2], chain[1::2], strict=False)
    found = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return found[~_former(population, found)]


def _former(population: _Population, pairs: np.ndarray) -> np.ndarray:
    """Which of the pairs were partners before."""
    if not population.former.nnz or not len(pairs):
        return np.zeros(len(pairs), dtype=bool)
    return np.asarray(population.former[pairs[:, 0], pairs[:, 1]]).reshape(-1)


def partners_allowed(population: _Population, people: np.ndarray, among: np.ndarray) -> np.ndarray:
    """For each of `people`, how many of `among` the hard rules allow as their partner."""
    if not len(people):
        return np.zeros(0, dtype=np.int64)
    keys = np.column_stack(
        [population.country.astype(np.int64), population.languages.view(np.int64)]
    )
    _, first, klass = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    klass = klass.reshape(-1)
    sizes = np.bincount(klass[among], minlength=len(first)).astype(np.int64)
    theirs = np.unique(klass[people])
    ok = population.country[first[theirs], None] != population.country[None, first]
    ok &= _any_common(population.languages[first[theirs]], population.languages[first])
    position = np.searchsorted(theirs, klass[people])
    count = (ok.astype(np.int64) @ sizes)[position]
    # Less their former partners among those.
    inside = np.zeros(population.n, dtype=bool)
    inside[among] = True
    before = population.former[people].tocoo()
    still = inside[before.col] & ok[position[before.row], klass[before.col]]
    return count - np.bincount(before.row[still], minlength=len(people))
